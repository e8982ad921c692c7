"""k8s: the Kubernetes manifests of the results that have them (Deployments, KEDA ScaledObjects)."""

from __future__ import annotations

import textwrap
from typing import TextIO

import yaml

from capacity.render.formats import Format, jsonable
from capacity.render.model import Report


class K8sFormat(Format):
    name = "k8s"

    def supports(self, report: Report) -> bool:
        return report.manifests is not None

    def write(self, report: Report, stream: TextIO) -> None:
        # the notes (the Secret to create first, when the pods start) as YAML comments: kubectl
        # apply reads past them, and whoever keeps the file in a repository keeps them too
        for note in report.notes:
            for line in textwrap.wrap(note, 98):
                stream.write(f"# {line}\n")
        yaml.safe_dump_all([jsonable(m) for m in report.manifests or ()], stream, sort_keys=False)
