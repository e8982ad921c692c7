"""Output formats: one module per format behind one interface, each writing a Report to a stream.

A format says which reports it can show (``supports``: env and k8s exist only for the results
that carry variables or manifests); a command declares the formats it offers, so a format it
cannot produce is refused before any work is done. ``-`` is stdout. The terminal table is the
CLI's (rich lives there); every format here is plain text.
"""

from __future__ import annotations

import difflib
import importlib
import io
import math
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, TextIO

from capacity import files
from capacity.errors import InputError
from capacity.render.model import Report

# name -> "module:Class", imported when used
REGISTRY: dict[str, str] = {
    "json": "capacity.render.formats.json:JSONFormat",
    "yaml": "capacity.render.formats.yaml:YAMLFormat",
    "markdown": "capacity.render.formats.markdown:MarkdownFormat",
    "csv": "capacity.render.formats.csv:CSVFormat",
    "env": "capacity.render.formats.env:EnvFormat",
    "k8s": "capacity.render.formats.k8s:K8sFormat",
    "html": "capacity.render.formats.html:HTMLFormat",
    "bullmq": "capacity.render.formats.bullmq:BullMQFormat",
    "fleet": "capacity.render.formats.fleet:FleetFormat",
}
#: what most commands offer besides the terminal table
DATA_FORMATS = ("json", "yaml", "markdown", "csv")


class Format(ABC):
    name: str = ""

    def supports(self, report: Report) -> bool:
        """Whether this report has what the format shows."""
        return True

    @abstractmethod
    def write(self, report: Report, stream: TextIO) -> None:
        """Write the report to ``stream``."""


def jsonable(value: Any) -> Any:
    """Plain JSON values: non-finite floats as null/"inf"/"-inf", tuples as lists, keys as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def get(name: str) -> Format:
    """The format called ``name``; InputError with a did-you-mean for an unknown one."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f"did you mean {close[0]}?" if close else f"use one of {', '.join(REGISTRY)}"
        raise InputError(f"unknown format {name!r}; {hint}")
    module_name, _, class_name = REGISTRY[name].partition(":")
    found: Format = getattr(importlib.import_module(module_name), class_name)()
    return found


def write(report: Report, fmt: str, stream: TextIO) -> None:
    """The report in ``fmt`` on ``stream``; InputError when the format cannot show this report."""
    exporter = get(fmt)
    if not exporter.supports(report):
        raise InputError(f"--format {fmt} is not available for {report.title.lower()}")
    exporter.write(report, stream)


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt`` as text."""
    out = io.StringIO()
    write(report, fmt, out)
    return out.getvalue()


def write_to(report: Report, fmt: str, output: str | Path) -> None:
    """The report in ``fmt`` written to a path, or to stdout for ``-``. Rendered first, so a
    format that refuses the report leaves no file behind."""
    text = render(report, fmt)
    if str(output) == "-":
        sys.stdout.write(text)
    else:
        files.write_text(output, text)
