"""The committed front pages as a reader sees them on GitHub: the markdown rendered as GitHub
renders it (CommonMark, GFM tables, inline HTML such as <br>), in the width GitHub gives a
README beside the file tree on a laptop and on a phone, opened in headless Chromium (Debian's
package). Nothing may overflow sideways, every figure must load, and its text must read (9 px or
more as shown); on the laptop the tables fit, on the phone they scroll inside themselves. The
figures' own text (axis labels, legend) is checked in the SVG the browser loaded. (Snakemake's
HTML report of a run opens in the same browser, with the same checks, in tests/test_pipeline.py,
where a run exists.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium: envs/setup.sh installs Debian's package as root")

# GitHub's markdown styles that decide the width: a table is a block of its content's width that
# scrolls inside itself when wider than the page; images shrink to the page.
# window px -> (the README's width, its padding): a folder's README on github.com in a 1280 px
# window, beside the file tree; on a 390 px phone, 358 px of content.
SCREENS = {1280: (880, 32), 390: (390, 16)}
SMALLEST_TEXT_PX = 9
STYLE = """
body {{ margin: 0; }}
.markdown-body {{ box-sizing: border-box; width: {width}px; padding: {padding}px;
  font-family: -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif;
  font-size: 16px; line-height: 1.5; word-wrap: break-word; }}
.markdown-body table {{ display: block; width: max-content; max-width: 100%; overflow: auto;
  border-spacing: 0; border-collapse: collapse; }}
.markdown-body td, .markdown-body th {{ padding: 6px 13px; border: 1px solid #d1d9e0; }}
.markdown-body img {{ max-width: 100%; box-sizing: content-box; }}
"""
# Runs once the page and its images have loaded; its findings go into #result.
PROBE = """
window.addEventListener("load", () => {
  const page = document.querySelector(".markdown-body");
  document.getElementById("result").textContent = JSON.stringify({
    page: [page.scrollWidth, page.clientWidth],
    tables: [...page.querySelectorAll("table")].map(t => [t.scrollWidth, t.clientWidth]),
    images: [...document.images].map(i => [i.getAttribute("src"), i.complete,
                                           i.naturalWidth, i.clientWidth])});
});
"""


def _html(markdown: str, window: int = 1280) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    width, padding = SCREENS[window]
    style = STYLE.format(width=width, padding=padding)
    return (f"<!doctype html><html><head><meta charset='utf-8'><style>{style}</style>"
            f"<script>{PROBE}</script></head><body><article class='markdown-body'>{body}"
            "</article><pre id='result'></pre></body></html>")


def chromium(page: Path, *args: str, window: int = 1280) -> str:
    run = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--window-size={window},2400", "--virtual-time-budget=20000", *args, page.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


# Snakemake's report draws itself with scripts: measured once they have run.
REPORT_PROBE = """<script>window.addEventListener("load", () => setTimeout(() => {
  const page = document.documentElement, out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify({page: [page.scrollWidth, page.clientWidth],
    images: [...document.images].map(i => [i.getAttribute("src").slice(0, 40), i.complete,
                                           i.naturalWidth])});
  document.body.appendChild(out);
}, 1000));</script>"""


def _probe_result(dom: str) -> dict:
    return json.loads(re.search(r"<pre id=\"result\">(.*?)</pre>", dom, re.S).group(1))


def open_report(report: Path, screenshot: Path) -> str:
    """Snakemake's HTML report of a run in the browser at the laptop width: it must not
    overflow sideways and its images must load; a screenshot is taken. The rendered DOM."""
    html = report.read_text()
    head, tail = html.rsplit("</body>", 1)  # the last: the report's scripts hold the string
    probed = screenshot.with_name("report-probed.html")
    probed.write_text(head + REPORT_PROBE + "</body>" + tail)
    dom = chromium(probed, "--dump-dom")
    found = _probe_result(dom)
    width, visible = found["page"]
    assert width <= visible, f"the report is {width} px wide in {visible} px"
    for src, complete, natural in found["images"]:
        assert complete and natural > 0, f"{src} did not load"
    chromium(probed, f"--screenshot={screenshot}")
    assert screenshot.stat().st_size > 10_000
    return dom


def _svg_text(path: Path) -> set[str]:
    return {t.text for t in ElementTree.parse(path).iter("{http://www.w3.org/2000/svg}text")
            if t.text}


FRONT_PAGES = sorted(REPO.glob("reports/*/README.md"))


def _smallest_text(svg: Path) -> float:
    """The SVG's smallest font size, in its own units (matplotlib's points)."""
    sizes = re.findall(r"font(?:-size)?:\s*([0-9.]+)px", svg.read_text())
    return min(map(float, sizes))


@pytest.mark.parametrize("window", sorted(SCREENS, reverse=True))
@pytest.mark.parametrize("front", FRONT_PAGES, ids=[p.parent.name for p in FRONT_PAGES])
def test_front_page_fits_and_its_figures_load(front: Path, window: int, tmp_path: Path) -> None:
    for name in [front.name, *re.findall(r"!\[[^]]*\]\(([^)]+)\)", front.read_text())]:
        shutil.copy(front.parent / name, tmp_path / name)
    page = tmp_path / "front.html"
    page.write_text(_html(front.read_text(), window))
    dom = chromium(page, "--dump-dom", window=window)
    found = _probe_result(dom)
    width, visible = found["page"]
    assert width <= visible, f"the page is {width} px wide in {visible} px"
    assert found["tables"], "no summary table"
    if window == 1280:  # on a phone a wide table scrolls inside itself, the page does not
        for scroll, client in found["tables"]:
            assert scroll <= client, f"a table needs {scroll} px in {client} px: it would scroll"
    assert len(found["images"]) >= 3
    for src, complete, natural, shown in found["images"]:
        assert complete and natural > 0, f"{src} did not load"
        # An SVG's natural width is its points at 96 px per inch: 4/3 px per unit.
        smallest = _smallest_text(tmp_path / src) * 4 / 3 * shown / natural
        assert smallest >= SMALLEST_TEXT_PX, \
            f"{src}: text of {smallest:.1f} px at a {window} px window"
    # What a reader reads off the figures: axis labels and the legend's entries.
    texts = _svg_text(tmp_path / "latency-accuracy.svg")
    assert {"network latency, median ms (log scale)", "pytorch", "onnxruntime", "fp32"} <= texts
    assert any(t.startswith("COCO") or t.startswith("mIoU") for t in texts)
    assert {"median ms per image, stage by stage", "network"} <= _svg_text(
        tmp_path / "stages.svg")
    assert "network latency per call, ms (log scale)" in _svg_text(
        tmp_path / "latency-distribution.svg")
    if (tmp_path / "throughput.svg").exists():  # drawn where a batch above 1 was measured
        assert {"batch size", "images / s", "onnxruntime"} <= _svg_text(
            tmp_path / "throughput.svg")
    # The screenshot a reviewer would look at, at that width.
    chromium(page, f"--screenshot={tmp_path / 'front.png'}", window=window)
    assert (tmp_path / "front.png").stat().st_size > 10_000
