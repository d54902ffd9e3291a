"""The papermill runner on a tiny book of its own: tables written, skips, --force, failures reported."""
import json
from pathlib import Path

import pytest

from conftest import make_notebook
from paper_repro.cli import main
from paper_repro.errors import UserError
from paper_repro.book.chapters import chapter_name, list_chapters, select
from paper_repro.book.reproduce import reproduce

PARAMETERS = 'scale = None\ndevice = "cpu"\ndata_root = None\nseed = 42\nresults_dir = None'


@pytest.fixture
def tiny_book(tmp_path):
    root = tmp_path / "book_root"
    make_notebook(root / "book" / "ok.ipynb", [
        ("code", "import pandas as pd\nfrom paper_repro.results import save_table\n"
                 "save_table(pd.DataFrame({'scale': [scale], 'seed': [seed]}), 'ok_table', results_dir)"),
    ], parameters=PARAMETERS)
    make_notebook(root / "book" / "part" / "broken.ipynb", [
        ("code", "x = 1"),
        ("code", "raise ValueError('deliberately broken chapter')"),
    ], parameters=PARAMETERS)
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/ok\nparts:\n  - caption: P\n    chapters:\n      - file: book/part/broken\n")
    return root


def test_chapters_come_in_toc_order_and_are_selected_by_name(tiny_book):
    chapters = list_chapters(tiny_book)
    assert [chapter_name(c) for c in chapters] == ["ok", "part/broken"]
    assert select(chapters, ["broken"]) == chapters[1:]
    assert select(chapters, ["part/broken,ok"]) == chapters
    with pytest.raises(UserError, match="no such chapter"):
        select(chapters, ["missing"])


def test_runs_writes_tables_skips_and_forces(tiny_book, tmp_path):
    out = tmp_path / "out"
    first = reproduce("smoke", out, only=["ok"], book_root=tiny_book)
    assert [o.status for o in first] == ["done"]
    table = (out / "tables" / "ok_table.csv").read_text().splitlines()
    assert table == ["scale,seed", "smoke,42"]  # the injected parameters reached the chapter
    assert (out / "tables" / "ok_table.md").is_file()
    assert (out / "notebooks" / "ok.ipynb").is_file()
    assert json.loads((out / ".done" / "ok.json").read_text())["parameters"]["scale"] == "smoke"

    assert [o.status for o in reproduce("smoke", out, only=["ok"], book_root=tiny_book)] == ["skipped"]
    assert [o.status for o in reproduce("smoke", out, only=["ok"], force=True, book_root=tiny_book)] == ["done"]
    # Other parameters are another run: not skipped.
    assert [o.status for o in reproduce("smoke", out, only=["ok"], seed=7, book_root=tiny_book)] == ["done"]


def test_a_failing_chapter_does_not_stop_the_batch_and_is_named(tiny_book, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["reproduce", "--scale", "smoke", "--out", str(out), "--book", str(tiny_book)])
    assert status == 1
    err = capsys.readouterr().err
    # the raising cell is the 3rd of the source notebook (parameters, `x = 1`, raise)
    assert "book/part/broken.ipynb: cell 3 (raise ValueError('deliberately broken chapter'))" in err
    assert "ValueError: deliberately broken chapter" in err
    assert (out / "tables" / "ok_table.csv").is_file()  # the chapter before it still ran
    assert not (out / ".done" / "part" / "broken.json").exists()


def test_bad_arguments_are_one_line_errors(tiny_book, tmp_path, capsys):
    status = main(["reproduce", "--scale", "smoke", "--out", str(tmp_path), "--book", str(tiny_book),
                   "--only", "nope"])
    assert status == 2 and "no such chapter" in capsys.readouterr().err
    status = main(["reproduce", "--scale", "smoke", "--out", str(tmp_path), "--book", str(tiny_book),
                   "--data-root", str(tmp_path / "absent")])
    assert status == 2 and "absent" in capsys.readouterr().err


def test_a_chapter_runs_again_when_its_code_or_the_package_code_it_runs_changes(tiny_book, tmp_path, monkeypatch,
                                                                                 capsys):
    """The batch's markers go stale as the book's cache does: a finished chapter is skipped only while its
    own cells and the package modules it imports are the ones it ran with; the line names what changed."""
    from paper_repro.runs import cached

    out = tmp_path / "out"
    assert [o.status for o in reproduce("smoke", out, only=["ok"], book_root=tiny_book)] == ["done"]
    assert [o.status for o in reproduce("smoke", out, only=["ok"], book_root=tiny_book)] == ["skipped"]
    real = cached._manifest

    def edited(modules, exclude, root, package):
        return tuple((f, "edited" if f == "results/tables.py" else h) for f, h in real(modules, exclude, root, package))

    monkeypatch.setattr(cached, "_manifest", edited)
    capsys.readouterr()
    assert [o.status for o in reproduce("smoke", out, only=["ok"], book_root=tiny_book)] == ["done"]
    assert "ok: running again, the package code it runs changed (results/tables.py)" in capsys.readouterr().out
    monkeypatch.undo()
    assert [o.status for o in reproduce("smoke", out, only=["ok"], book_root=tiny_book)] == ["done"]  # code back
    notebook = tiny_book / "book" / "ok.ipynb"
    nb = json.loads(notebook.read_text())
    nb["cells"][-1]["source"] += "\nprint('one more line')"
    notebook.write_text(json.dumps(nb))
    assert [o.status for o in reproduce("smoke", out, only=["ok"], book_root=tiny_book)] == ["done"]
    assert [o.status for o in reproduce("smoke", out, only=["ok"], book_root=tiny_book)] == ["skipped"]


def test_the_batch_and_the_book_share_one_runner_order_and_record(tmp_path, monkeypatch):
    """``reproduce`` runs a chapter after the chapters it reads (as ``book`` does), and its markers hold
    the same record the book's cache does: parameters, settings, the chapter's code and the package code."""
    import nbformat

    from paper_repro.book import runner
    from paper_repro.book.chapters import chapter_code, notebook_digest

    root = tmp_path / "book_root"
    make_notebook(root / "book" / "first.ipynb", [("code", "import time\ntime.sleep(2)\n"
                  "open('handoff.txt', 'w').write('from first')")], parameters=PARAMETERS)
    second = make_notebook(root / "book" / "second.ipynb", [("code", "print(open('handoff.txt').read())")],
                           parameters=PARAMETERS)
    notebook = nbformat.read(second, as_version=4)
    notebook.metadata["paper_repro"] = {"after": ["first"]}
    nbformat.write(notebook, second)
    # reading order puts `second` first; it must still wait for `first`
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/second\nchapters:\n  - file: book/first\n")
    monkeypatch.setattr(runner.os, "cpu_count", lambda: 2)
    lines: list[str] = []
    out = tmp_path / "out"
    outcomes = runner.run_chapters(root, [Path("book/second.ipynb"), Path("book/first.ipynb")],
                                   runner.MarkerFolder(out), scale="smoke", parameters={"seed": 42},
                                   devices=["cpu", "cpu"], log=lines.append)
    assert [o.status for o in outcomes] == ["done", "done"], lines
    executed = [line.split()[1] for line in lines if line.strip().startswith("executed ")]
    assert executed == ["first", "second"]
    assert any("2 at a time, 1 thread(s) each" in line for line in lines)
    marker = json.loads((out / ".done" / "second.json").read_text())
    assert marker["parameters"] == {"seed": 42, "device": "cpu"} and marker["settings"] == {"scale": "smoke"}
    source = nbformat.read(second, as_version=4)
    assert marker["notebook"] == notebook_digest(source) and marker["code"] == chapter_code(source)
    assert "from first" in (out / "notebooks" / "second.ipynb").read_text()
