"""HTML: one self-contained page (tables, notes, every plot embedded as a data: URI); opens offline."""

from __future__ import annotations

import base64
import html
from typing import TextIO

from capacity.render.formats import Format
from capacity.render.model import Report

_STYLE = (
    "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}"
    "td,th{border:1px solid #bbb;padding:3px 7px;text-align:left}th{background:#eee}"
    "img{max-width:100%;display:block;margin:1em 0}</style>"
)


class HTMLFormat(Format):
    name = "html"

    def write(self, report: Report, stream: TextIO) -> None:
        esc = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(report.title)}</title>",
            _STYLE,
            f"</head><body><h1>{esc(report.title)}</h1>",
        ]
        if report.summary:
            parts.append("<table>")
            parts.extend(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in report.summary)
            parts.append("</table>")
        for table in report.tables:
            parts.append(f"<h2>{esc(table.title)}</h2><table><tr>")
            parts.extend(f"<th>{esc(c)}</th>" for c in table.columns)
            parts.append("</tr>")
            for row in table.rows:
                parts.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>")
            parts.append("</table>")
        if report.images:
            parts.append("<h2>Plots</h2>")
        for name, png in report.images:
            encoded = base64.b64encode(png).decode("ascii")
            parts.append(
                f'<img alt="{esc(name)}" id="{esc(name.removesuffix(".png"))}" src="data:image/png;base64,{encoded}">'
            )
        if report.notes:
            parts.append("<h2>Notes</h2><ul>")
            parts.extend(f"<li>{esc(n)}</li>" for n in report.notes)
            parts.append("</ul>")
        parts.append("</body></html>")
        stream.write("\n".join(parts))
