"""Build tiny books with the project's own _config.yml: math is typeset offline, errors fail the build."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_notebook

JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
pytestmark = pytest.mark.skipif(not JUPYTER_BOOK.exists(), reason="the 'book' extra is not installed")


def _book(tmp_path: Path, cells) -> Path:
    root = tmp_path / "book_root"
    (root / "book").mkdir(parents=True)
    shutil.copy(REPO / "_config.yml", root / "_config.yml")
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
    mathjax = [s for s in scripts if "MathJax.js" in s]
    assert mathjax == ["../_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"]
    assert (root / "_build" / "html" / "_static" / "mathjax" / "MathJax.js").is_file()
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
    assert 'class="MathJax_Display"' in dom  # MathJax ran and replaced the TeX with typeset output
