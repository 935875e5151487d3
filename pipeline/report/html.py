"""``report/report.html``: the report as one self-contained page to open from disk or mail.

The Markdown report rendered to HTML (Python-Markdown, with its tables extension), every
figure embedded as a data URI with a sentence on how to read it, and every table sortable
by a click on its header (a few lines of inline script; nothing is fetched).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

# how to read each figure the report embeds (docs/results.md says more)
CAPTIONS = {
    "pareto.png": "How to read it: one panel per target; x is the latency measured on that target, y the test "
    "accuracy. Coloured circles are the architectures searched for the target (colour: λ), the red staircase "
    "their Pareto front; diamonds are random architectures of the same predicted latency, the cross the network "
    "without convolutions, stars the published genotypes. Up and to the left is better.",
    "methods.png": "How to read it: every search method's architectures (mean test accuracy over training seeds, "
    "bars: their spread) against measured latency, each method's front as a staircase in its colour.",
    "specialisation.png": "How to read it: per deployed target, the green bar is the latency there of the "
    "architecture searched for it; the bars beside it are the latency there of the ones searched for the other "
    "targets, at the same λ and seed. A taller bar is what searching for the wrong target costs.",
}

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f0f0f0; cursor: pointer; user-select: none; }
th[data-order]::after { content: attr(data-order); }
figure { margin: 1.5em 0; } img { max-width: 100%; } figcaption { color: #555; font-size: 13px; }
code { background: #f4f4f4; padding: 0 3px; }
"""

# click a header: sort its table's rows by that column, numbers as numbers, again to reverse
SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.title = "sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows), up = th.dataset.order !== " \\u25b2";
      var key = function (r) { var t = r.cells[col] ? r.cells[col].textContent.trim() : "";
        var n = parseFloat(t.replace(/[^0-9.eE+-]/g, "")); return isNaN(n) ? t : n; };
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
        return up ? c : -c; });
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.order; });
      th.dataset.order = up ? " \\u25b2" : " \\u25bc";
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

IMAGE = re.compile(r'(<p>)?<img alt="(?P<alt>[^"]*)" src="(?P<src>[\w.-]+\.png)"\s*/?>(</p>)?')


def _figure(folder: Path, m: re.Match) -> str:
    path = folder / m["src"]
    if not path.is_file():
        return f"<p><em>({html.escape(m['src'])} was not written for this run.)</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    caption = CAPTIONS.get(m["src"], "")
    return (f'<figure><img alt="{m["alt"]}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip


def render(folder: Path, report_md: str, title: str) -> str:
    """The page: ``report_md`` as HTML with ``folder``'s figures embedded."""
    body = markdown.markdown(report_md, extensions=["tables", "fenced_code"])
    body = IMAGE.sub(lambda m: _figure(folder, m), body)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n<script>{SCRIPT}</script>\n</body></html>\n")  # fmt: skip
