"""JSON: the report's public data (its keys are an interface)."""

from __future__ import annotations

import json
from typing import TextIO

from capacity.render.formats import Format, jsonable
from capacity.render.model import Report


class JSONFormat(Format):
    name = "json"

    def write(self, report: Report, stream: TextIO) -> None:
        stream.write(json.dumps(jsonable(report.data), indent=2, sort_keys=False) + "\n")
