"""Markdown: the summary, every table and the notes (what seed 003's results table looks like)."""

from __future__ import annotations

from typing import TextIO

from capacity.render.formats import Format
from capacity.render.model import Report


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown_table(columns: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
    lines = ["| " + " | ".join(_escape(c) for c in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class MarkdownFormat(Format):
    name = "markdown"

    def write(self, report: Report, stream: TextIO) -> None:
        stream.write(f"## {report.title}\n")
        if report.summary:
            stream.write(markdown_table(("Figure", "Value"), report.summary))
        for table in report.tables:
            stream.write(f"\n### {table.title}\n\n" + markdown_table(table.columns, table.rows))
        if report.notes:
            stream.write("\n" + "".join(f"- {note}\n" for note in report.notes))
