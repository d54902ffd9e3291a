"""The package's shape (issue "one shape"): every per-scale number in config.py, imports at the top of
research modules, and an import graph without cycles."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import paper_repro
from paper_repro.config import PROFILES, SCALES

PACKAGE = Path(paper_repro.__file__).parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
# Command-line and book-tooling modules may import lazily (start-up time of `python -m paper_repro`), and
# so may the wrappers of optional dependencies (anomalib is the `baselines` extra; torch-fidelity's
# Inception is only needed with its weights).
LAZY_ALLOWED = {"cli.py", "reproduce.py", "build.py", "runner.py", "chapters.py", "browser_check.py", "sphinx_offline_mathjax.py", "anomalib_models.py", "fid.py",
                "progress.py"}  # progress.py: the Hugging Face libraries only when their bars are to be silenced


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _per_scale_numbers(tree: ast.AST, where: str) -> list[str]:
    """Dicts keyed by two or more scales, and numbers chosen by comparing a scale (``64 if scale == "smoke"
    else 128``): per-scale settings that belong in config.py's profiles."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if len(keys & set(SCALES)) >= 2:
                found.append(f"{where}:{node.lineno}")
        if isinstance(node, ast.IfExp) and _compares_a_scale(node.test) and any(
                isinstance(branch, ast.Constant) and isinstance(branch.value, (int, float))
                for branch in (node.body, node.orelse)):
            found.append(f"{where}:{node.lineno} (a number chosen by scale)")
    return found


def test_config_is_the_one_place_with_per_scale_tables():
    offenders = []
    for path in MODULES:
        if path.name != "config.py":
            offenders += _per_scale_numbers(ast.parse(path.read_text()), str(path.relative_to(PACKAGE)))
    assert not offenders, f"per-scale settings outside config.py: {offenders}"
    assert {"defect_gan", "defect_gan_tables", "detection", "dadnet", "dadnet_tables", "baselines",
            "gan_tables", "bundled_data"} <= set(PROFILES)


def test_no_chapter_chooses_a_number_by_scale():
    offenders = []
    for path in sorted((PACKAGE.parent / "book").rglob("*.ipynb")):
        for k, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code":
                code = "\n".join(line for line in "".join(cell["source"]).splitlines()
                                 if not line.lstrip().startswith(("%", "!")))   # IPython magics
                offenders += _per_scale_numbers(ast.parse(code), f"{path.relative_to(PACKAGE.parent)} cell {k}")
    assert not offenders, f"per-scale settings in chapters (use the run context's config): {offenders}"


def _compares_a_scale(test: ast.AST) -> bool:
    return any(isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value in SCALES
                                                     for c in node.comparators) for node in ast.walk(test))


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("paper_repro"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("paper_repro"))
    return names


def test_research_modules_import_at_the_top():
    lazy = []
    for path in MODULES:
        if path.name in LAZY_ALLOWED or path.parent.name == "commands":   # the command line loads what a command needs
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy += [f"{path.relative_to(PACKAGE)}:{n.lineno}" for n in ast.walk(node)
                         if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not lazy, f"imports inside functions: {lazy}"


# The package's layers, lowest first: a module may import its own layer and the ones below, never above.
# The papers sit on the shared machinery; the experiments (one module per results table) on the papers;
# the book's helpers and the command line on top of everything they run.
LAYERS = (
    ("errors", "config", "environment"),                               # settings, read once
    ("runs", "data", "compose", "weights"),                            # training loop, data sets, weights
    ("context",),                                                      # a run's settings resolved
    ("evaluation", "defect_gan", "dadnet", "standin", "baselines"),    # the papers and what scores them
    ("experiments", "results"),                                        # the results tables and their reading
    ("book", "commands", "cli", "__main__", ""),                       # chapters' helpers, command line
)


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else ""
    for level, names in enumerate(LAYERS):
        if top in names:
            return level
    raise AssertionError(f"{module}: in no layer of LAYERS; add it")


def test_no_module_imports_one_from_a_higher_layer():
    upward = []
    for path in MODULES:
        name = module_name(path)
        for target in _imports(path, top_level_only=False):
            target = target if target in {module_name(p) for p in MODULES} else target.rsplit(".", 1)[0]
            if target.startswith("paper_repro") and _layer(target) > _layer(name):
                upward.append(f"{name} imports {target}")
    assert not upward, upward
    # the paper packages hold no command-line code and no chapter helper
    for paper in ("defect_gan", "dadnet", "standin", "evaluation", "experiments"):
        assert not any(p.name in ("cli.py", "showcase.py", "painter.py") for p in (PACKAGE / paper).glob("*.py"))


def test_no_module_is_imported_under_a_one_letter_alias():
    aliased = [f"{path.relative_to(PACKAGE)}: {alias.name} as {alias.asname}" for path in MODULES
               for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, (ast.Import, ast.ImportFrom))
               for alias in node.names if alias.asname and len(alias.asname) == 1 and alias.asname != "F"]
    assert not aliased  # F is torch.nn.functional's conventional name


def test_the_import_graph_has_no_cycle():
    names = {module_name(p): p for p in MODULES}
    def ancestors(module: str) -> set[str]:
        parts = module.split(".")
        return {".".join(parts[:k]) for k in range(1, len(parts))}

    # Importing a module first imports its packages; a module's own packages are already being imported.
    graph = {}
    for name, path in names.items():
        targets = {m for m in _imports(path, top_level_only=True) if m in names and m != name}
        targets |= {a for m in targets for a in ancestors(m) if a in names}
        graph[name] = targets - ancestors(name) - {name}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if nxt not in state and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    assert not any(visit(n, []) for n in sorted(graph) if n not in state), f"import cycle: {cycle}"
