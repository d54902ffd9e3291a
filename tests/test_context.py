"""One module reads PAPER_REPRO_* (paper_repro.environment), the run context is built from it and from
explicit settings, and get_config is a pure function of its arguments."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import torch

from conftest import REPO
from paper_repro import environment as variables
from paper_repro.config import DRY_RUN_CAPS, PROFILES, SCALES, get_config
from paper_repro.context import RunContext, as_context, configured
from paper_repro.environment import Environment, exported

PACKAGE = REPO / "paper_repro"
ENVIRONMENT_FILE = PACKAGE / "environment.py"
ODD_ENVIRONMENT = {variables.SCALE_ENV: "demo", variables.DRY_RUN_ENV: "1", variables.PRECISION_ENV: "bf16",
                   variables.SD_MODEL_ENV: "/elsewhere/sd", variables.SD_DOWNLOAD_ENV: "1",
                   variables.INCEPTION_WEIGHTS_ENV: "/elsewhere/inception.pth",
                   variables.BACKBONE_WEIGHTS_ENV: "/elsewhere/backbones",
                   variables.REPOSITORY_ENV: "https://example.org/fork"}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _variable_names_in_code(source: str) -> list[str]:
    """String constants in code that are a PAPER_REPRO_ variable's name (a key one could read it by;
    help texts and messages that mention ``$PAPER_REPRO_...`` in a sentence are not)."""
    tree = ast.parse(source)
    docstrings = _docstring_nodes(tree)
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            and re.fullmatch(r"\s*PAPER_REPRO_[A-Z0-9_]*\s*", node.value)]


def _environment_reads(source: str) -> list[str]:
    """Every read of one variable by name: os.environ[...] / .get(...) / os.getenv(...)."""
    reads = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ" and isinstance(node.ctx, ast.Load):
            reads.append(ast.unparse(node.slice))
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv", "os.environ.pop"):
            reads.append(ast.unparse(node.args[0]) if node.args else "")
    return reads


def test_no_module_but_the_environments_names_or_reads_a_paper_repro_variable():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == ENVIRONMENT_FILE:
            continue
        source = path.read_text()
        named = _variable_names_in_code(source)
        # a name imported from the environment module (SD_MODEL_ENV ...) read directly would bypass it too
        imported = {alias.asname or alias.name for node in ast.walk(ast.parse(source))
                    if isinstance(node, ast.ImportFrom) and node.module == "paper_repro.environment"
                    for alias in node.names if alias.name.endswith("_ENV")}
        bypass = [r for r in _environment_reads(source) if r in imported]
        if named or bypass:
            offenders[str(path.relative_to(REPO))] = named + bypass
    assert offenders == {}
    assert _variable_names_in_code(ENVIRONMENT_FILE.read_text())   # the scan does see them where they are


def test_no_chapter_reads_the_environment():
    for path in sorted((REPO / "book").rglob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        code = "\n".join(line.split("#")[0] for c in cells if c["cell_type"] == "code"
                         for line in "".join(c["source"]).splitlines())   # comments may name a variable
        assert "os.environ" not in code and "getenv" not in code and "PAPER_REPRO_" not in code, path


def test_get_config_is_the_same_under_any_environment(monkeypatch):
    for name in variables.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    clean = {(p, s): get_config(p, s) for p in PROFILES for s in SCALES}
    for name, value in ODD_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    assert {(p, s): get_config(p, s) for p in PROFILES for s in SCALES} == clean
    # ... while a context built in that environment does take what it asks for
    full = RunContext.create("full")
    assert full.dry_run and full.precision == "bf16" and full.sd_model == "/elsewhere/sd"
    assert full.config("dadnet").epochs == DRY_RUN_CAPS["dadnet"]["epochs"]
    assert full.config("dadnet").sd_model_id == "/elsewhere/sd" and full.config("defect_gan").precision == "bf16"


def test_the_environment_is_read_into_one_record():
    env = Environment.read(ODD_ENVIRONMENT)
    assert env == Environment(scale="demo", dry_run=True, precision="bf16", sd_model="/elsewhere/sd", sd_download=True,
                              inception_weights="/elsewhere/inception.pth", backbone_weights="/elsewhere/backbones",
                              repository_url="https://example.org/fork")
    assert Environment.read({}) == Environment()
    for off in ("", "0", "false", "No", " off "):
        assert not Environment.read({variables.DRY_RUN_ENV: off}).dry_run
    assert Environment.read({variables.CACHE_ENV: "  "}).cache is None   # blank is unset


def test_flags_and_parameters_win_over_the_environment():
    env = Environment.read(ODD_ENVIRONMENT)
    ctx = RunContext.create("smoke", device="cpu", seed=7, sd_model="standin", precision="fp32", dry_run=False, env=env)
    assert (ctx.scale, ctx.seed, ctx.sd_model, ctx.precision, ctx.dry_run) == ("smoke", 7, "standin", "fp32", False)
    assert ctx.device == torch.device("cpu")
    assert RunContext.create(env=env).scale == "demo"                  # no scale given: the environment's
    assert RunContext.create(env=Environment()).scale == "smoke"       # neither: smoke
    with pytest.raises(ValueError, match="bogus"):
        RunContext.create("bogus", env=Environment())


def test_a_bare_scale_is_the_context_with_nothing_else_asked_for(monkeypatch):
    for name, value in ODD_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    ctx = as_context("full")
    assert (ctx.scale, ctx.dry_run, ctx.precision, ctx.sd_model) == ("full", False, None, None)
    assert ctx.config("dadnet") == get_config("dadnet", "full")
    given = RunContext.create("demo")
    assert as_context(given) is given


def test_configured_applies_caps_only_to_a_full_dry_run_and_overrides_win():
    assert configured("dadnet", "full", dry_run=True).epochs == DRY_RUN_CAPS["dadnet"]["epochs"]
    assert configured("dadnet", "demo", dry_run=True) == get_config("dadnet", "demo")
    assert configured("dadnet", "full", dry_run=True, epochs=3).epochs == 3
    assert configured("gan_tables", "demo", fid_features="random").fid_features == "random"
    assert configured("baselines", "demo", precision="bf16") == get_config("baselines", "demo")  # no such field


def test_a_dry_runs_bundled_data_is_capped_too(monkeypatch):
    asked = {}

    def fake_bundled_root(layout, scale, seed=42, sizes=None):
        asked.update(layout=layout, scale=scale, sizes=sizes)
        return Path("/nowhere")

    monkeypatch.setattr("paper_repro.data.roots.bundled_root", fake_bundled_root)
    RunContext.create("full", dry_run=True, env=Environment()).data("mvtec")
    assert asked["sizes"].n_train == DRY_RUN_CAPS["bundled_data"]["n_train"]
    RunContext.create("full", dry_run=False, env=Environment()).data("mvtec")
    assert asked["sizes"] == get_config("bundled_data", "full")


def test_exported_hands_a_batch_its_flags_and_puts_the_old_values_back(monkeypatch):
    monkeypatch.setenv(variables.PRECISION_ENV, "fp32")
    monkeypatch.delenv(variables.DRY_RUN_ENV, raising=False)
    with exported(dry_run=True, precision="bf16"):
        inside = RunContext.create("full")
        assert inside.dry_run and inside.precision == "bf16"
    after = RunContext.create("full")
    assert not after.dry_run and after.precision == "fp32"
