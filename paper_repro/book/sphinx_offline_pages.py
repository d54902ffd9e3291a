"""Sphinx extension: every built page works offline and loads each script once.

- Thebe (live code in the browser) needs a kernel on a server; this book has none, and the
  ``sphinx-thebe`` that Jupyter Book always loads adds its inline configuration twice on every page
  (``Identifier 'THEBE_JS_URL' has already been declared`` in the browser's console). Its scripts are
  left out of the pages.
- A script included twice is included once.
- A script or stylesheet fetched from the network (``http://`` or ``https://``) fails the build,
  naming the page and the address: the book must read the same without a connection.

Enable it in ``_config.yml`` with ``sphinx: extra_extensions: [paper_repro.book.sphinx_offline_pages]``.
"""
from __future__ import annotations

from sphinx.errors import ExtensionError

REMOTE = ("http://", "https://", "//")


def _is_thebe(script) -> bool:
    return "thebe" in str(script.filename or "") or "THEBE_JS_URL" in script.attributes.get("body", "")


def offline_assets(app, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Drop thebe and repeated scripts from a page; refuse one that loads anything from the network."""
    scripts = context.get("script_files") or []
    kept, seen = [], set()
    for script in scripts:
        if _is_thebe(script) or script in seen:
            continue
        seen.add(script)
        kept.append(script)
    scripts[:] = kept
    remote = [str(asset.filename) for asset in [*kept, *(context.get("css_files") or [])]
              if str(asset.filename or "").startswith(REMOTE)]
    if remote:
        raise ExtensionError(f"page {pagename} would load {', '.join(remote)} from the network; "
                             "the book must work offline")


def setup(app):
    app.connect("html-page-context", offline_assets, priority=900)   # after the themes added theirs
    return {"parallel_read_safe": True, "parallel_write_safe": True}
