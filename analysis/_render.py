"""A tiny document model rendered twice: Markdown (report.md) and self-contained HTML (report.html)."""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Document", "to_markdown", "to_html", "format_value"]


@dataclass
class Document:
    """An ordered list of blocks: ``("h", level, text)``, ``("p", text)``, ``("ul", [text])``,
    ``("table", frame)``, ``("img", path, caption)``. Text may use ``**bold**`` and ``` `code` ```."""

    title: str
    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        """Append a heading (level 1 renders as ``##``: the title is the only ``#``)."""
        self.blocks.append(("h", level, text))

    def para(self, text: str) -> None:
        """Append a paragraph."""
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        """Append a bulleted list."""
        self.blocks.append(("ul", items))

    def table(self, frame: pd.DataFrame) -> None:
        """Append a table; floats are shown to 4 significant digits."""
        self.blocks.append(("table", frame))

    def image(self, path: Path, caption: str) -> None:
        """Append a PNG: linked from Markdown, embedded as base64 in HTML."""
        self.blocks.append(("img", path, caption))


def format_value(value: Any) -> str:
    """Return a table cell as short text: floats to 4 significant digits, NaN/NA as empty."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    return str(value)


def _cells(frame: pd.DataFrame) -> list[list[str]]:
    return [[format_value(v) for v in row] for row in frame.itertuples(index=False, name=None)]


def to_markdown(doc: Document) -> str:
    """Return the document as Markdown; images are linked by file name (they sit beside report.md)."""
    out = [f"# {doc.title}", ""]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out += [f"{'#' * (block[1] + 1)} {block[2]}", ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "ul":
            out += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            frame: pd.DataFrame = block[1]
            if frame.empty:
                out += ["(none)", ""]
                continue
            esc = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in _cells(frame)]
            out += ["| " + " | ".join(map(str, frame.columns)) + " |",
                    "|" + "|".join("---" for _ in frame.columns) + "|"]
            out += ["| " + " | ".join(row) + " |" for row in esc] + [""]
        elif kind == "img":
            out += [f"![{block[2]}]({Path(block[1]).name})", "", f"*{block[2]}*", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}img{max-width:100%}figcaption{font-style:italic;font-size:13px;color:#555}
code{background:#f4f4f4;padding:0 3px}"""


def to_html(doc: Document) -> str:
    """Return the document as one HTML page with every image embedded as base64 PNG."""
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>", f"<title>{html.escape(doc.title)}</title>",
           f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(doc.title)}</h1>"]
    for block in doc.blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1] + 1}>{_inline(block[2])}</h{block[1] + 1}>")
        elif kind == "p":
            out.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            frame = block[1]
            if frame.empty:
                out.append("<p>(none)</p>")
                continue
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                           for row in _cells(frame))
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            out.append(f"<figure><img alt='{html.escape(block[2])}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)
