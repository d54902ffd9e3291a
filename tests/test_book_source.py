"""show_source: package listings in the chapters; long ones start folded behind a summary line."""
import inspect
import re

from IPython.core.formatters import DisplayFormatter

from paper_repro import compose
from paper_repro.book.notebook import OPEN_LISTING_LINES, show_source
from paper_repro.dadnet import dram
from paper_repro.dadnet.dram import DRAM


def _bundle(obj):
    data, _ = DisplayFormatter().format(obj)
    return data


def test_text_repr_is_the_source_so_nbval_compares_code():
    for obj in (compose, DRAM, dram):
        listing = show_source(obj)
        assert _bundle(listing)["text/plain"] == inspect.getsource(obj).rstrip("\n")
        assert _bundle(show_source(obj, collapsed=True))["text/plain"] == inspect.getsource(obj).rstrip("\n")


def test_long_listing_is_folded_behind_a_one_line_summary():
    source = inspect.getsource(DRAM)
    assert len(source.splitlines()) > OPEN_LISTING_LINES  # (a long listing, or pick another object)
    html = _bundle(show_source(DRAM))["text/html"]
    match = re.fullmatch(r"<details><summary>(.*?)</summary>(.*)</details>", html, flags=re.S)
    assert match, html[:200]
    summary, code = match.groups()
    assert "\n" not in summary
    assert "paper_repro.dadnet.dram.DRAM" in summary
    assert f"{len(source.splitlines())} lines" in summary
    assert "paper_repro/dadnet/dram.py" in summary
    assert not re.search(r"/(work|tmp|root|home)/", summary)  # relative to the package, never a machine path
    assert "highlight" in code and "DRAM" in code  # the Pygments listing itself


def test_short_listing_stays_open():
    assert len(inspect.getsource(compose).splitlines()) <= OPEN_LISTING_LINES
    html = _bundle(show_source(compose))["text/html"]
    assert "<details" not in html and "highlight" in html


def test_collapsed_argument_forces_either_way():
    assert _bundle(show_source(compose, collapsed=True))["text/html"].startswith("<details><summary>")
    assert "<details" not in _bundle(show_source(DRAM, collapsed=False))["text/html"]


def test_a_module_listing_names_the_module():
    html = _bundle(show_source(dram, collapsed=True))["text/html"]
    assert re.match(r"<details><summary>paper_repro\.dadnet\.dram · \d+ lines · paper_repro/dadnet/dram\.py</summary>",
                    html)


def test_a_decorated_function_names_its_own_file():
    from paper_repro.experiments import bridge

    assert hasattr(bridge.defect_gan_bank, "__wrapped__")  # (decorated; else pick another)
    html = _bundle(show_source(bridge.defect_gan_bank, collapsed=True))["text/html"]
    assert "paper_repro.experiments.bridge.defect_gan_bank · " in html
    assert " · paper_repro/experiments/bridge.py</summary>" in html


def test_a_figure_kept_for_the_landing_page_comes_back_at_its_scale_only(tmp_path, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    from paper_repro.book.notebook import keep_for_landing_page, landing_figure

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path))
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    keep_for_landing_page(fig, "maps", "demo")
    plt.close(fig)
    shown = landing_figure("maps", "demo")
    assert shown is not None and shown.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert landing_figure("maps", "smoke") is None
    assert capsys.readouterr().out.strip() == "maps: not drawn yet at smoke scale (its chapter has not run)"
