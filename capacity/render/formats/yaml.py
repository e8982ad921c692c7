"""YAML: the same data as JSON."""

from __future__ import annotations

from typing import TextIO

import yaml

from capacity.render.formats import Format, jsonable
from capacity.render.model import Report


class YAMLFormat(Format):
    name = "yaml"

    def write(self, report: Report, stream: TextIO) -> None:
        yaml.safe_dump(jsonable(report.data), stream, sort_keys=False)
