"""Open every page of a built book in headless Chromium, offline, as a reader would, and report what breaks.

    python -m paper_repro book --check [--screenshots DIR]      # after a build, on _build/html

For each page (driven through the Chrome DevTools Protocol over a websocket):

- ``merror``: MathJax error boxes (TeX MathJax could not typeset);
- ``raw_tex``: ``\\(``, ``\\[`` or ``$$`` left in the visible text (math that was never typeset);
- ``failed_requests``: requests that failed (with the network off, anything the page fetches from
  outside the build fails, so this also catches a CDN script or font);
- ``console_errors``: exceptions and ``console.error`` messages;
- ``overflow_px``: how far the page is wider than the window (horizontal scrolling at ``width``);
- ``wide_tables``: a table wider than the page's text column that is cut off or spills over instead of
  wrapping or scrolling inside the column (the table's caption or first header, and by how many px).

and, read from each page's HTML itself (:func:`text_problems`, no browser needed):

- ``log_lines``: a cell output that prints one of the package's own log lines (``disk: checkpoints of
  ...``, ``... computed ... in 13 s``): lines for the command line, not for a reader;
- ``long_floats``: a number in a table or a printed output shown with more digits than any table of the
  book means (``10.000000``, ``0.000001``, ``2.3e+03``), or a count shown as a float
  (``iterations 3000.0``);
- ``uncaptioned_figures``: a picture that is not a figure with a caption.

:func:`screenshot` saves a PNG of a page at the same window width.
"""
from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from paper_repro.errors import UserError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
WIDTH, HEIGHT = 1280, 900
SETTLE_SECONDS = 20.0   # at most this long for MathJax to finish a page

# Run in the page once it has loaded: MathJax done, then the numbers the report needs.
PAGE_PROBE = r"""
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  // MathJax 3 (the book's): wait for its startup promise; MathJax 2: for its queue
  const hasMathJax = !!document.querySelector('script[src*="tex-chtml"], script[src*="MathJax.js"]');
  const start = Date.now();
  while (hasMathJax && !(window.MathJax && (MathJax.startup || MathJax.isReady)) && Date.now() - start < SETTLE_MS)
    await sleep(100);
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  else if (window.MathJax && MathJax.Hub) await new Promise(r => MathJax.Hub.Queue(r));
  const typeset = document.querySelectorAll('mjx-container, .MathJax').length;
  // a table wider than the text column, unless a box inside the column scrolls it
  function wideTables() {
    const column = document.querySelector('article.bd-article, main article, [role="main"], main') || document.body;
    const right = column.getBoundingClientRect().right;
    const found = [];
    column.querySelectorAll('table').forEach(table => {
      const over = Math.round(table.getBoundingClientRect().right - right);
      if (over <= 1) return;
      for (let box = table.parentElement; box && box !== column; box = box.parentElement) {
        const style = getComputedStyle(box).overflowX;
        if ((style === 'auto' || style === 'scroll') && box.getBoundingClientRect().right <= right + 1) return;
      }
      const label = (table.querySelector('caption') || table.querySelector('th') || table).textContent;
      found.push(`${label.trim().replace(/\s+/g, ' ').slice(0, 60)} (${over} px)`);
    });
    return found;
  }
  // the reader's text: code listings and MathJax's own sources and previews are not prose
  const main = (document.querySelector('main') || document.body).cloneNode(true);
  main.querySelectorAll('pre, code, script, style, .MathJax_Preview').forEach(e => e.remove());
  const raw = (main.textContent.match(/\\\(|\\\[|\$\$/g) || []).length;
  return JSON.stringify({
    merror: document.querySelectorAll('merror, .MathJax_Error, mjx-merror').length,
    raw_tex: raw,
    typeset: typeset,
    overflow_px: Math.max(0, document.documentElement.scrollWidth - window.innerWidth),
    wide_tables: wideTables(),
  });
})()
""".replace("SETTLE_MS", str(int(SETTLE_SECONDS * 1000)))


@dataclass
class PageReport:
    page: str
    merror: int = 0
    raw_tex: int = 0
    typeset: int = 0  # formulas MathJax typeset
    overflow_px: int = 0
    failed_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    wide_tables: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    long_floats: list[str] = field(default_factory=list)
    uncaptioned_figures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.merror or self.raw_tex or self.overflow_px or self.failed_requests or self.console_errors
                    or self.wide_tables or self.log_lines or self.long_floats or self.uncaptioned_figures)

    def __str__(self) -> str:
        if self.ok:
            return f"ok    {self.page}" + (f" ({self.typeset} formulas typeset)" if self.typeset else "")
        problems = [f"{self.merror} MathJax error(s)" if self.merror else "",
                    f"{self.raw_tex} raw TeX delimiter(s)" if self.raw_tex else "",
                    f"{self.overflow_px} px wider than the window" if self.overflow_px else "",
                    *(f"failed request {u}" for u in self.failed_requests),
                    *(f"console: {m}" for m in self.console_errors),
                    *(f"table wider than its column: {t}" for t in self.wide_tables),
                    *(f"log line in an output: {line!r}" for line in self.log_lines),
                    *(f"too many digits: {n!r}" for n in self.long_floats),
                    *(f"figure without a caption: {f}" for f in self.uncaptioned_figures)]
        return f"FAIL  {self.page}: " + "; ".join(p for p in problems if p)


# The package's own log lines (for the command line): a chapter shows what they say in prose, or not at all.
LOG_LINE = re.compile(r"^\s*(disk: checkpoints? of\b.*|.*\bcomputed\b.*\bin \d+(\.\d+)? ?s\b.*)$", re.M)
# More digits than any table of the book means: six or more decimals (10.000000, 0.000001), Python's
# exponent form (2.3e+03, 1e-05), or a count printed as a float (iterations 3000.0).
COUNT_WORDS = r"iterations?|epochs?|steps?|seeds?|runs?|images?|samples?|batch(?: size)?|px|pixels?"
LONG_FLOAT = re.compile(r"(?<![\w.])-?\d+\.\d{6,}(?![\w.])"
                        r"|(?<![\w.])-?\d+(?:\.\d+)?e[+-]\d{2,}(?![\w.])"
                        rf"|\b(?:{COUNT_WORDS})\b\s*[=:]?\s*\d+\.0(?![\w.])", re.I)


# A table cell that is a whole number printed as a float, in a row or column whose name ends with a count
# (iterations, image_size, n_critic; not image_auroc, a mean of counts such as epochs_trained).
FLOAT_COUNT = re.compile(r"-?\d+\.0+")
COUNT_LABEL = re.compile(r"(?:^|[\s_])(?:iterations?|epochs?|steps?|seeds?|images?|samples?|normals|batch|"
                         r"size|dim|blocks|repeat|hidden|critic|count)$", re.I)   # the label's last word


def _text_of(element) -> str:
    return element.get_text(" ", strip=False)


def text_problems(page_html: str) -> dict[str, list[str]]:
    """The rules read from a page's HTML (no browser): ``log_lines``, ``long_floats`` and
    ``uncaptioned_figures`` (see the module's docstring), each a list of what was found.

    Printed outputs (``stream``, ``text_plain``) and every table are read; code listings and prose are not
    (prose may say ``lr 1e-3``, a listing may hold any number)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page_html, "html.parser")
    main = soup.find("main") or soup
    outputs = [e for e in main.select(".cell_output .output, .cell_output > div")
               if {"stream", "text_plain", "stderr"} & set(e.get("class", []))]
    log_lines = [m.group(0).strip()[:100] for out in outputs for m in LOG_LINE.finditer(_text_of(out))]
    texts = [_text_of(out) for out in outputs] + [_text_of(cell) for cell in main.select("table td, table th")]
    long_floats = [m.group(0) for text in texts for m in LONG_FLOAT.finditer(text)]
    for table in main.find_all("table"):   # a count as a float in a table: its row or column names a count
        rows = [[cell.get_text(" ", strip=True) for cell in row.find_all(["th", "td"])] for row in table.find_all("tr")]
        header = next((r for r in rows if r), [])
        for row in rows[1:]:
            for j, cell in enumerate(row):
                label = (row[0] if row else "", header[j] if j < len(header) else "")
                if FLOAT_COUNT.fullmatch(cell) and any(COUNT_LABEL.search(text) for text in label):
                    long_floats.append(f"{label[0] if COUNT_LABEL.search(label[0]) else label[1]} {cell}")
    long_floats = list(dict.fromkeys(long_floats))
    uncaptioned = []
    for image in main.find_all("img"):
        figure = image.find_parent("figure")
        caption = figure.find("figcaption") if figure else None
        if caption is None or not caption.get_text(strip=True):
            uncaptioned.append(image.get("alt") or image.get("src", "?")[:80])
    return {"log_lines": list(dict.fromkeys(log_lines)), "long_floats": long_floats,
            "uncaptioned_figures": uncaptioned}


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """A headless Chromium with its network switched off, driven over the DevTools protocol."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT):
        import websocket  # websocket-client, a Jupyter dependency

        chromium = find_chromium()
        if chromium is None:
            raise UserError("no Chromium on this machine: apt-get install chromium (or put chrome on PATH)")
        self.profile = tempfile.mkdtemp(prefix="paper-repro-chromium-")
        port = _free_port()
        self.process = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--window-size={width},{height}", f"--remote-debugging-port={port}",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = self._page_target(port)
        self.ws = websocket.create_connection(target, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1,
                  uploadThroughput=-1)
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def _page_target(self, port: int) -> str:
        from urllib.request import urlopen

        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urlopen(f"http://127.0.0.1:{port}/json", timeout=2) as reply:
                    pages = [t for t in json.load(reply) if t.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except OSError:
                time.sleep(0.2)
        self.close()
        raise UserError("headless Chromium did not start within 30 s")

    def call(self, method: str, **params):
        self.next_id += 1
        ident = self.next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within ``seconds``."""
        end = time.time() + seconds
        self.ws.settimeout(0.2)
        try:
            while time.time() < end:
                try:
                    self.events.append(json.loads(self.ws.recv()))
                except Exception:  # noqa: BLE001 - a receive timeout: nothing more yet
                    pass
        finally:
            self.ws.settimeout(60)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        end = time.time() + 30
        while time.time() < end and not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.drain(0.3)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _report(browser: Browser, page: str) -> PageReport:
    probe = browser.call("Runtime.evaluate", expression=PAGE_PROBE, awaitPromise=True, returnByValue=True,
                         timeout=int(SETTLE_SECONDS * 1000) + 5000)
    browser.drain(0.5)
    values = json.loads(probe.get("result", {}).get("value") or "{}")
    report = PageReport(page, **values)
    requests = {}
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            requests[params["requestId"]] = params["request"]["url"]
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            report.failed_requests.append(f"{requests.get(params['requestId'], '?')} ({params.get('errorText')})")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.console_errors.append(details.get("exception", {}).get("description") or details.get("text", "?"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            words = (str(a.get("value", a.get("description", ""))) for a in params["args"])
            report.console_errors.append(" ".join(words))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            if entry.get("source") != "network":  # failed requests are reported above, once
                report.console_errors.append(entry.get("text", "?"))
    return report


def check_pages(html_root: str | Path, pages: list[str] | None = None, width: int = WIDTH) -> list[PageReport]:
    """Open each page (relative to ``html_root``; default every ``*.html`` but search and genindex)."""
    html_root = Path(html_root)
    if not (html_root / "index.html").is_file():
        raise UserError(f"{html_root}: no index.html; build the book first (python -m paper_repro book)")
    skip = {"search.html", "genindex.html"}
    pages = pages or sorted(str(p.relative_to(html_root)) for p in html_root.rglob("*.html")
                            if p.name not in skip and "_static" not in p.parts and "_sources" not in p.parts)
    reports = []
    with Browser(width) as browser:
        for page in pages:
            browser.open((html_root / page).resolve().as_uri())
            report = _report(browser, page)
            for rule, found in text_problems((html_root / page).read_text(encoding="utf-8")).items():
                setattr(report, rule, found)
            reports.append(report)
    return reports


def screenshot(html_root: str | Path, page: str, out: str | Path, width: int = WIDTH,
               full_page: bool = False) -> Path:
    """A PNG of ``page`` as the reader sees it at ``width`` px (the whole page with ``full_page``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with Browser(width) as browser:
        browser.open((Path(html_root) / page).resolve().as_uri())
        _report(browser, page)  # wait for MathJax
        params = {"format": "png"}
        if full_page:   # a window as tall as the page: a clip beyond the viewport shifted the theme's layout
            height = int(browser.call("Page.getLayoutMetrics")["cssContentSize"]["height"])
            browser.call("Emulation.setDeviceMetricsOverride", width=width, height=min(height, 16000),
                         deviceScaleFactor=1, mobile=False)
            browser.drain(1.0)
        data = browser.call("Page.captureScreenshot", **params)["data"]
    out.write_bytes(base64.b64decode(data))
    return out


__all__ = ["PageReport", "text_problems", "LOG_LINE", "LONG_FLOAT", "find_chromium", "Browser", "check_pages", "screenshot"]
