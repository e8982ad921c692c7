"""Exporters: a Report to text in one format. One function per format behind ``render``.

The rich console table lives in the CLI (the only place rich is allowed); everything here is
plain text so it can be written to a file or stdout alike.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from typing import Any

import yaml

from capacity.errors import InputError
from capacity.render.model import Report


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(report: Report) -> str:
    return json.dumps(_jsonable(report.data), indent=2, sort_keys=False) + "\n"


def to_yaml(report: Report) -> str:
    return yaml.safe_dump(_jsonable(report.data), sort_keys=False)


def _md_escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def markdown_table(columns: tuple[str, ...], rows: tuple[tuple[str, ...], ...]) -> str:
    lines = ["| " + " | ".join(_md_escape(c) for c in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_markdown(report: Report) -> str:
    parts = [f"## {report.title}\n"]
    if report.summary:
        parts.append(markdown_table(("Figure", "Value"), report.summary))
    for table in report.tables:
        parts.append(f"\n### {table.title}\n\n" + markdown_table(table.columns, table.rows))
    if report.notes:
        parts.append("\n" + "".join(f"- {note}\n" for note in report.notes))
    return "".join(parts)


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if report.tables:
        table = report.tables[0]
        writer.writerow(table.columns)
        writer.writerows(table.rows)
    else:
        writer.writerow(("figure", "value"))
        writer.writerows(report.summary)
    return out.getvalue()


def to_env(report: Report) -> str:
    if report.env is None:
        raise InputError(f"--format env is not available for {report.title.lower()}")
    return "".join(f"{key}={value}\n" for key, value in report.env.items())


def to_k8s(report: Report) -> str:
    if report.manifests is None:
        raise InputError(f"--format k8s is not available for {report.title.lower()}")
    return yaml.safe_dump_all([_jsonable(m) for m in report.manifests], sort_keys=False)


EXPORTERS: dict[str, Callable[[Report], str]] = {
    "json": to_json,
    "yaml": to_yaml,
    "markdown": to_markdown,
    "csv": to_csv,
    "env": to_env,
    "k8s": to_k8s,
}


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt`` (one of EXPORTERS); InputError for an unknown format."""
    try:
        exporter = EXPORTERS[fmt]
    except KeyError:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(EXPORTERS)}") from None
    return exporter(report)
