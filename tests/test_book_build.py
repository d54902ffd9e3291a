"""Build tiny books with the project's own _config.yml: math is typeset offline, errors fail the build."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_notebook
from paper_repro.environment import REPOSITORY_ENV

JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
pytestmark = pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="the 'book' extra is not installed")


def _with_config(root: Path) -> None:
    """The project's _config.yml and the files it names (the bibliography)."""
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
    (root / "book" / "reference").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "book" / "reference" / "references.bib", root / "book" / "reference" / "references.bib")


def _book(tmp_path: Path, cells) -> Path:
    root = tmp_path / "book_root"
    (root / "book").mkdir(parents=True)
    _with_config(root)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/page\n")
    make_notebook(root / "book" / "page.ipynb", cells)
    return root


def _build(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(JUPYTER_BOOK), "build", str(root), "--builder", "html"],
                          capture_output=True, text=True, timeout=600)


def test_math_is_served_from_the_build_not_a_cdn(tmp_path):
    root = _book(tmp_path, [("markdown", "# Page\n\n$$ d = n \\odot (1 - m_d) + f_d \\odot m_d \\tag{2} $$"),
                            ("code", "print(1 + 1)")])
    result = _build(root)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    html = (root / "_build" / "html" / "book" / "page.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', html)
    assert not [s for s in scripts if re.match(r"(https?:)?//", s)], scripts
    mathjax = [s for s in scripts if "mathjax" in s.lower()]
    assert mathjax == ["../_static/mathjax/tex-chtml.js"]  # MathJax 3, from sphinx-mathjax-offline
    static = root / "_build" / "html" / "_static" / "mathjax"
    assert (static / "tex-chtml.js").is_file()
    assert list((static / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))  # its fonts, offline too
    assert "d = n \\odot" in html


def test_a_raising_chapter_fails_the_build(tmp_path):
    root = _book(tmp_path, [("markdown", "# Broken"), ("code", "raise RuntimeError('this chapter is broken')")])
    result = _build(root)
    assert result.returncode != 0
    assert "this chapter is broken" in result.stdout + result.stderr


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine (apt-get install chromium)")
def test_math_is_typeset_offline_in_headless_chromium(tmp_path):
    root = _book(tmp_path, [("markdown", "# Page\n\n$$ A = I \\odot (1 - M_g) + D \\odot M_g \\tag{6} $$")])
    assert _build(root).returncode == 0
    page = root / "_build" / "html" / "book" / "page.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom"]
    dom = subprocess.run([CHROMIUM, *flags, page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert re.search(r'<mjx-container class="MathJax"[^>]*display="true"', dom)  # MathJax typeset it
    assert "<mjx-merror" not in dom  # (its CSS names the element; an error would be one)


# ------------------------------------------------------------------------------------------
# python -m paper_repro book: stale chapters executed side by side into the scale's cache
# ------------------------------------------------------------------------------------------
def _two_lane_book(tmp_path: Path) -> Path:
    """Three chapters: ``first`` writes a file slowly, ``second`` (after: first) reads it, ``other``
    is independent; each writes the scale and its thread count."""
    import nbformat

    root = tmp_path / "book_root"
    (root / "book").mkdir(parents=True)
    _with_config(root)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/first\nchapters:\n  - file: book/other\n"
                                   "  - file: book/second\n")
    env = "import os, time\nprint(os.environ['PAPER_REPRO_SCALE'], os.environ['OMP_NUM_THREADS'])\n"
    make_notebook(root / "book" / "first.ipynb", [("markdown", "# First"), ("code", env + "time.sleep(3)\n"
                  "open('handoff.txt', 'w').write('from first')")])
    make_notebook(root / "book" / "other.ipynb", [("markdown", "# Other"), ("code", env)])
    second = make_notebook(root / "book" / "second.ipynb", [("markdown", "# Second"),
                           ("code", env + "print(open('handoff.txt').read())")])
    notebook = nbformat.read(second, as_version=4)
    notebook.metadata["paper_repro"] = {"after": ["first"]}
    nbformat.write(notebook, second)
    return root


def test_book_executes_stale_chapters_in_parallel_after_what_they_read(tmp_path, monkeypatch):
    from jupyter_cache import get_cache

    from paper_repro.book import build, runner

    root = _two_lane_book(tmp_path)
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    lines: list[str] = []
    here = os.getcwd()
    results = build.execute_stale(root, "smoke", jobs=2, log=lines.append)
    assert [r.error for r in results] == [None, None, None], lines
    assert os.getcwd() == here  # chapters run in their folders; this process never leaves its own
    order = [line.split()[1] for line in lines if line.strip().startswith("executed ")]
    assert order.index("second") > order.index("first")  # `after` waited for the file it reads
    assert any("2 at a time, 1 thread(s) each" in line for line in lines)
    cache = get_cache(str(build.cache_folder(root, "smoke")))
    outputs = {Path(r.uri).stem: "".join(o.get("text", "") for c in cache.get_cache_bundle(r.pk).nb.cells
                                         for o in c.get("outputs", []))
               for r in cache.list_cache_records()}
    assert outputs["second"] == "smoke 1\nfrom first\n"
    assert outputs["other"] == "smoke 1\n"
    # nothing changed: nothing runs; the demo scale has its own cache
    assert build.stale_chapters(root, "smoke") == []
    assert len(build.stale_chapters(root, "demo")) == 3
    again: list[str] = []
    assert build.execute_stale(root, "smoke", jobs=2, log=again.append) == []
    assert "nothing to execute" in again[0]


def test_a_chapter_is_re_executed_when_the_package_code_it_imports_changes(tmp_path, monkeypatch):
    """jupyter-cache keys a chapter by its cells only; the build also compares the fingerprint of the
    package modules the chapter imports, and names the changed file."""
    from paper_repro.book import build, chapters, runner
    from paper_repro.runs import cached

    root = tmp_path / "book_root"
    (root / "book").mkdir(parents=True)
    _with_config(root)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/uses\nchapters:\n  - file: book/plain\n")
    make_notebook(root / "book" / "uses.ipynb", [("markdown", "# Uses"), ("code", "%matplotlib inline\n"
                  "from paper_repro.dadnet.losses import focal_loss\nfrom paper_repro.dadnet import dram\nprint(1)")])
    make_notebook(root / "book" / "plain.ipynb", [("markdown", "# Plain"), ("code", "print(2)")])
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    notebook = chapters.read_notebook(root / "book" / "uses.ipynb")
    assert chapters.chapter_modules(notebook) == ["paper_repro.dadnet", "paper_repro.dadnet.dram",
                                               "paper_repro.dadnet.losses"]
    assert [r.error for r in build.execute_stale(root, "smoke", jobs=2, log=lambda line: None)] == [None, None]
    assert build.stale_chapters(root, "smoke") == []
    real = cached._manifest

    def edited(modules, exclude, folder, package):
        return tuple((f, "edited" if f == "dadnet/losses.py" else h) for f, h in real(modules, exclude, folder, package))

    monkeypatch.setattr(cached, "_manifest", edited)
    lines: list[str] = []
    assert build.stale_chapters(root, "smoke", log=lines.append) == [Path("book/uses.ipynb")]
    assert lines == ["uses: running again, the package code it runs changed (dadnet/losses.py)"]


def test_critical_paths_add_the_longest_chain_waiting_on_a_chapter():
    from paper_repro.book.schedule import critical_paths

    seconds = {"train": 500, "tables": 1800, "ablation": 1700, "other": 900, "closing": 5}
    needs = {"train": [], "tables": ["train"], "ablation": ["train"], "other": [], "closing": ["tables", "ablation"]}
    assert critical_paths(seconds, needs) == {"train": 2305, "tables": 1805, "ablation": 1705, "other": 900,
                                              "closing": 5}


def test_simulated_finish_waits_for_what_a_chapter_reads():
    from paper_repro.book.schedule import simulated_finish

    seconds = {"first": 3, "second": 1, "other": 1}
    needs = {"first": [], "second": ["first"], "other": []}
    # two slots: first | other, then second waits for first (3 s) and runs 1 s
    assert simulated_finish(["first", "second", "other"], seconds, needs, 2) == 4
    assert simulated_finish(["first", "second", "other"], seconds, needs, 1) == 5


def test_planned_order_beats_longest_first_where_it_leaves_a_core_idle():
    from paper_repro.book.schedule import critical_paths, planned_order, simulated_finish

    # longest first puts 3 | 3, then 2 | 2, then the last 2 alone: 7; 3 + 3 | 2 + 2 + 2 is 6
    seconds = {"a": 3, "b": 3, "c": 2, "d": 2, "e": 2}
    needs = {name: [] for name in seconds}
    longest_first = sorted(seconds, key=lambda c: -critical_paths(seconds, needs)[c])
    assert simulated_finish(longest_first, seconds, needs, 2) == 7
    order = planned_order(seconds, needs, 2, list(seconds))
    assert sorted(order) == sorted(seconds) and simulated_finish(order, seconds, needs, 2) == 6
    # with one slot every order takes the sum; the critical-path order is kept
    assert planned_order(seconds, needs, 1, list(seconds)) == longest_first
    # a chapter never runs before what it reads, whatever the order says
    needs = {**needs, "a": ["e"]}
    assert simulated_finish(["a", "b", "c", "d", "e"], seconds, needs, 2) >= seconds["e"] + seconds["a"]


def test_the_chapter_heading_the_longest_chain_starts_first_and_times_are_kept(tmp_path, monkeypatch):
    import json

    import nbformat

    from paper_repro.book import build, schedule

    root = _two_lane_book(tmp_path)
    # `other` comes before `second` in reading order, but `second` states a longer time
    for name, seconds in (("other", 1), ("first", 50), ("second", 100)):
        path = root / "book" / f"{name}.ipynb"
        notebook = nbformat.read(path, as_version=4)
        notebook.metadata.setdefault("paper_repro", {})["seconds"] = {"smoke": seconds}
        nbformat.write(notebook, path)
    lines: list[str] = []
    results = build.execute_stale(root, "smoke", jobs=1, log=lines.append)
    order = [line.split()[1] for line in lines if line.strip().startswith("executed ")]
    assert order == ["first", "second", "other"], lines
    recorded = json.loads(schedule.seconds_file(root, "smoke").read_text())
    assert set(recorded) == {"first", "second", "other"} and recorded["first"] >= 3  # it sleeps 3 s
    # the next build trusts this machine's measurement over the metadata
    assert schedule.expected_seconds(root, [Path("book/second.ipynb")], "smoke") == {"second": recorded["second"]}
    assert [r.error for r in results] == [None, None, None]


def test_a_failing_chapter_is_named_its_readers_are_not_run_and_the_others_are(tmp_path):
    from paper_repro.book import build

    root = _two_lane_book(tmp_path)
    make_notebook(root / "book" / "first.ipynb", [("markdown", "# First"), ("code", "raise ValueError('no handoff')")])
    lines: list[str] = []
    results = {r.chapter: r for r in build.execute_stale(root, "smoke", jobs=1, log=lines.append)}
    assert results["first"].status == "failed" and "no handoff" in results["first"].error
    assert "book/first.ipynb: cell 2 (raise ValueError('no handoff')) raised ValueError" in results["first"].error
    # `second` reads what `first` should have written: not started, and said so
    assert results["second"].status == "blocked" and "it reads first, which failed" in results["second"].error
    assert results["other"].status == "done" and results["other"].error is None  # independent: it ran
    assert build.stale_chapters(root, "smoke") == [Path("book/first.ipynb"), Path("book/second.ipynb")]


def test_book_command_renders_from_the_cache_without_executing_again(tmp_path):
    root = _two_lane_book(tmp_path)
    command = [sys.executable, "-m", "paper_repro", "book", "--scale", "smoke", "--jobs", "2", "--book", str(root)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=root)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "executed  second" in first.stdout
    assert (root / "_build" / "html" / "book" / "second.html").is_file()
    html = (root / "_build" / "html" / "book" / "second.html").read_text()
    assert "from first" in html
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=root)
    assert again.returncode == 0 and "nothing to execute" in again.stdout
    assert "Executing notebook" not in again.stdout + again.stderr  # Jupyter Book only read the cache


def test_built_pages_drop_thebe_and_repeats_and_refuse_network_assets():
    from sphinx.builders.html._assets import _CascadingStyleSheet, _JavaScript
    from sphinx.errors import ExtensionError

    from paper_repro.book.sphinx_offline_pages import offline_assets

    body = 'const THEBE_JS_URL = "https://unpkg.com/thebe/lib/index.js"'
    local = _JavaScript("_static/doctools.js")
    context = {"script_files": [local, _JavaScript(None, body=body), _JavaScript(None, body=body),
                                _JavaScript("_static/sphinx-thebe.js", **{"async": "async"}), _JavaScript("_static/doctools.js")],
               "css_files": [_CascadingStyleSheet("_static/theme.css")]}
    offline_assets(None, "intro", "page.html", context, None)
    assert context["script_files"] == [local]
    for remote in (_JavaScript("https://cdn.example.org/require.min.js"), _CascadingStyleSheet("//cdn.example.org/x.css")):
        key = "script_files" if isinstance(remote, _JavaScript) else "css_files"
        page = {"script_files": [local], "css_files": [], key: [remote]}
        with pytest.raises(ExtensionError, match="intro would load .*cdn.example.org"):
            offline_assets(None, "intro", "page.html", page, None)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine (apt-get install chromium)")
def test_browser_check_finds_math_errors_and_horizontal_scrolling(tmp_path):
    from paper_repro.book.browser_check import check_pages, screenshot

    root = tmp_path / "book_root"
    (root / "book").mkdir(parents=True)
    _with_config(root)
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/clean\nchapters:\n  - file: book/broken\n"
                                   "  - file: book/wide\n")
    make_notebook(root / "book" / "clean.ipynb", [("markdown", "# Clean\n\nProse only.")])
    make_notebook(root / "book" / "broken.ipynb",
                  [("markdown", "# Broken\n\n$$ a \\tag{1} \\qquad b \\tag{2} $$")])   # two tags: a MathJax error
    make_notebook(root / "book" / "wide.ipynb",
                  [("markdown", "# Wide\n\n<div style='width: 3000px; height: 10px; background: red'></div>")])
    assert _build(root).returncode == 0
    html = root / "_build" / "html"
    reports = {r.page: r for r in check_pages(html, ["book/clean.html", "book/broken.html", "book/wide.html"])}
    assert reports["book/clean.html"].ok, str(reports["book/clean.html"])
    assert reports["book/broken.html"].merror > 0 and not reports["book/broken.html"].ok
    assert reports["book/wide.html"].overflow_px > 1000
    shot = screenshot(html, "book/clean.html", tmp_path / "clean.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("remote, url", [
    ("git@github.com:someone/paper-repro.git", "https://github.com/someone/paper-repro"),
    ("https://github.com/someone/paper-repro.git", "https://github.com/someone/paper-repro"),
    ("https://token@gitlab.example.org/group/paper-repro/", "https://gitlab.example.org/group/paper-repro"),
    ("ssh://git@github.com/someone/paper-repro.git", "https://github.com/someone/paper-repro"),
    ("/work/main", None),
    ("file:///srv/git/paper-repro.git", None),
])
def test_the_repository_link_comes_from_a_web_remote_only(remote, url):
    from paper_repro.book.build import web_url

    assert web_url(remote + "\n") == url


def test_the_built_config_links_the_repository_when_it_is_known(tmp_path, monkeypatch):
    import yaml

    from paper_repro.book import build

    root = tmp_path / "book_root"
    root.mkdir()
    _with_config(root)
    monkeypatch.delenv(REPOSITORY_ENV, raising=False)
    config = yaml.safe_load(build.scale_config(root, "demo").read_text())   # not a git clone: no link
    assert "url" not in config.get("repository", {})
    monkeypatch.setenv(REPOSITORY_ENV, "https://github.com/someone/paper-repro")
    config = yaml.safe_load(build.scale_config(root, "demo").read_text())
    assert config["repository"]["url"] == "https://github.com/someone/paper-repro"
    assert config["html"]["use_repository_button"] is True


@pytest.mark.parametrize("executed, expect_all", [([], False), (["dadnet/tables_1_3"], True)])
def test_a_render_after_re_executed_chapters_rereads_every_page(executed, expect_all, tmp_path, monkeypatch):
    """Sphinx re-reads a page only when its source changed; a chapter re-executed for a package change
    keeps its source, and a rebuild showed its old outputs (a fixed "2.5e+02" still on the page)."""
    from paper_repro.book import build
    from paper_repro.book.runner import Outcome

    calls = []
    monkeypatch.setattr(build, "execute_stale", lambda *a, **k: [Outcome(c, "done", 1.0) for c in executed])
    monkeypatch.setattr(build, "scale_config", lambda root, scale: tmp_path / "config.yml")
    monkeypatch.setattr(build.subprocess, "call", lambda command, **kwargs: calls.append(command) or 0)
    assert build.build_book(tmp_path, "smoke", jobs=1) == 0
    assert ("--all" in calls[0]) is expect_all
