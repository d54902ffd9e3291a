"""The rules of `book --check` that read a page's HTML (no browser), on small pages shaped as Jupyter Book
1 renders a chapter; and the table-width rule in headless Chromium when there is one."""
from __future__ import annotations

import shutil

import pytest

from paper_repro.book.browser_check import PageReport, text_problems

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def page(*cells: str, prose: str = "") -> str:
    """A page as Jupyter Book writes it: prose, then code cells with their outputs."""
    body = "".join(f'<div class="cell docutils container"><div class="cell_input docutils container">'
                   f'<div class="highlight-ipython3 notranslate"><div class="highlight"><pre>x = 1e-05</pre></div>'
                   f'</div></div><div class="cell_output docutils container">{cell}</div></div>' for cell in cells)
    return f"<html><body><main><article class='bd-article'><p>{prose}</p>{body}</article></main></body></html>"


def stream(text: str) -> str:
    return (f'<div class="output stream highlight-myst-ansi notranslate"><div class="highlight"><pre><span></span>'
            f'{text}</pre></div></div>')


def table(*cells: str) -> str:
    return ('<div class="output text_html"><table><caption>paper: Table 1</caption><tr><th>row</th></tr>'
            + "".join(f"<tr><td>{c}</td></tr>" for c in cells) + "</table></div>")


def figure(caption: str | None) -> str:
    image = '<img alt="_images/a.png" src="_images/a.png" />'
    if caption is None:
        return image
    return f'<figure class="align-default">{image}<figcaption><p>{caption}</p></figcaption></figure>'


def test_a_clean_page_has_no_problem():
    clean = page(stream("scale=smoke · device=cpu\n4 (method, category, run) evaluations"),
                 table("96.7", "89.8", "—", "0.0184", "2010"), figure("Fig. 1 The maps."),
                 prose="trained at lr 1e-3 for 3000 iterations; 10.000000 in prose is the author's business")
    assert text_problems(clean) == {"log_lines": [], "long_floats": [], "uncaptioned_figures": []}
    assert PageReport("p.html", **text_problems(clean)).ok


def test_the_package_log_lines_are_caught_in_outputs_only():
    found = text_problems(page(stream("disk: checkpoints of ~641.1 kB each, the last 2 kept: at most 3, ~1.9 MB; "
                                      "12 GB free in /tmp/run\nloss 0.3"),
                               stream("comparison computed (or read from the cache) in 13 s"),
                               prose="disk: checkpoints of ~641.1 kB each (quoted in prose)"))
    assert len(found["log_lines"]) == 2
    assert found["log_lines"][0].startswith("disk: checkpoints of") and "computed" in found["log_lines"][1]
    report = PageReport("t.html", **found)
    assert not report.ok and "log line in an output" in str(report)


@pytest.mark.parametrize("text", ["10.000000", "0.000001", "2.3e+03", "1e-05", "iterations 3000.0",
                                  "L_rec = 0.000000", "epochs: 36.0"])
def test_floats_with_more_digits_than_meant_are_caught(text):
    assert text_problems(page(stream(f"value {text} here")))["long_floats"], text
    assert text_problems(page(table(text)))["long_floats"], text


@pytest.mark.parametrize("text", ["96.7", "0.0184", "0.00087", "p = 0.031", "3000 iterations", "641.1 kB",
                                  "torch 2.14.1+cu130", "iterations 3000", "FID 2010.0", "[1, 2]"])
def test_numbers_at_a_table_precision_pass(text):
    assert text_problems(page(stream(text), table(text)))["long_floats"] == [], text


def test_a_picture_needs_a_figure_with_a_caption():
    found = text_problems(page(figure(None), figure(""), figure("Fig. 2 Rows: inputs; columns: maps.")))
    assert found["uncaptioned_figures"] == ["_images/a.png", "_images/a.png"]
    assert "figure without a caption" in str(PageReport("f.html", **found))


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium on this machine (apt-get install chromium)")
def test_a_table_wider_than_its_column_fails_unless_it_scrolls_there(tmp_path):
    from paper_repro.book.browser_check import check_pages

    column = "<main><article class='bd-article' style='width: 600px'>{}</article></main>"
    wide = "<table><caption>the wide one</caption><tr>" + "<td>96.789.8</td>" * 80 + "</tr></table>"
    (tmp_path / "index.html").write_text("<html><body><main><p>home</p></main></body></html>")
    (tmp_path / "cut.html").write_text(column.format(f"<div style='overflow: hidden'>{wide}</div>"))
    (tmp_path / "spill.html").write_text(column.format(wide))
    (tmp_path / "scrolls.html").write_text(column.format(f"<div style='overflow-x: auto'>{wide}</div>"))
    (tmp_path / "narrow.html").write_text(column.format("<table><tr><td>96.7</td><td>89.8</td></tr></table>"))
    reports = {r.page: r for r in check_pages(tmp_path, ["cut.html", "spill.html", "scrolls.html", "narrow.html"])}
    assert reports["cut.html"].wide_tables and reports["cut.html"].wide_tables[0].startswith("the wide one")
    assert reports["spill.html"].wide_tables and not reports["spill.html"].ok
    assert reports["scrolls.html"].wide_tables == [] and reports["narrow.html"].ok, str(reports["narrow.html"])


def test_a_count_printed_as_a_float_in_a_table_row_or_column_is_caught():
    by_row = ('<table><tr><th></th><th>this run</th><th>paper (full)</th></tr>'
              '<tr><th>iterations</th><td>10.0</td><td>500000.0</td></tr>'
              '<tr><th>lr</th><td>0.0002</td><td>0.0002</td></tr><tr><th>lambda_gp</th><td>10.0</td><td>10.0</td></tr>'
              '</table>')
    assert text_problems(page(by_row))["long_floats"] == ["iterations 10.0", "iterations 500000.0"]
    by_column = '<table><tr><th>row</th><th>epochs</th><th>FID</th></tr><tr><td>a</td><td>36.0</td><td>2010.0</td></tr></table>'
    assert text_problems(page(by_column))["long_floats"] == ["epochs 36.0"]


def test_the_helpers_chapters_use_to_stay_clean():
    """A folded reference table, a model card with its headings demoted, a warning as an admonition."""
    import pandas as pd

    from paper_repro.book.notebook import MarkdownText, folded, warning_admonition
    from paper_repro.results.tables import mixed_view

    table = pd.DataFrame({"demo": {"iterations": 3000, "lr": 0.0002, "lr_end": 1e-6, "w": 2.0}}, dtype=object)
    box = folded(mixed_view(table, caption="settings"), "all 4 settings")._repr_html_()
    assert box.startswith("<details><summary>all 4 settings</summary>") and box.endswith("</details>")
    assert text_problems(page(box)) == {"log_lines": [], "long_floats": [], "uncaptioned_figures": []}
    assert ">3000<" in box and ">1e-6<" in box and ">2<" in box
    card = MarkdownText("# Card\n\n## Training\n\n| a | b |\n| --- | --- |\n| 1 | 2 |\n")._repr_html_()
    assert "<h4>Card</h4>" in card and "<h5>Training</h5>" in card and "<table>" in card and "| a |" not in card
    shown = warning_admonition("falling back to\nthe background re-crops", "UserWarning")
    assert 'class="admonition warning"' in shown["text/html"] and "falling back to the background" in shown["text/html"]


@pytest.mark.parametrize("header, value", [("image_auroc", "40.0"), ("image AUROC (%)", "78.0"),
                                           ("epochs_trained", "1.0"), ("this run", "10.0")])
def test_a_measured_number_named_after_images_is_not_a_count(header, value):
    table = f"<table><tr><th>source</th><th>{header}</th></tr><tr><td>DGM</td><td>{value}</td></tr></table>"
    assert text_problems(page(table))["long_floats"] == []
