"""fleet: the fleet file (YAML) of a topology, for ``capacity simulate --fleet`` and
``capacity autoscale --fleet`` (its schema: ``capacity.sizing.fleetfile``)."""

from __future__ import annotations

from typing import TextIO

import yaml

from capacity.render.formats import Format, jsonable
from capacity.render.model import Report


class FleetFormat(Format):
    name = "fleet"

    def supports(self, report: Report) -> bool:
        return report.fleet is not None

    def write(self, report: Report, stream: TextIO) -> None:
        stream.write("# capacity fleet file: capacity simulate --fleet THIS, capacity autoscale --fleet THIS\n")
        yaml.safe_dump(jsonable(report.fleet), stream, sort_keys=False)
