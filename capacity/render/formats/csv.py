"""CSV: the report's main table (its ``csv_table``, else its first table, else the summary)."""

from __future__ import annotations

import csv
from typing import TextIO

from capacity.render.formats import Format
from capacity.render.model import Report


class CSVFormat(Format):
    name = "csv"

    def write(self, report: Report, stream: TextIO) -> None:
        writer = csv.writer(stream, lineterminator="\n")
        table = report.csv_table or (report.tables[0] if report.tables else None)
        if table is not None:
            writer.writerow(table.columns)
            writer.writerows(table.rows)
        else:
            writer.writerow(("figure", "value"))
            writer.writerows(report.summary)
