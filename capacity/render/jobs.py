"""Load from several machines with an existing engine: the Kubernetes Indexed Job that runs the
shards of one ``capacity inject`` run (completions = parallelism = N, each pod its shard from
``JOB_COMPLETION_INDEX``), as a Report whose manifests the k8s format prints."""

from __future__ import annotations

import shlex
import time
import uuid
from typing import Any

from capacity.load import s3
from capacity.render.model import Report

#: the Secret the pods read the broker URL from (never written into the manifest)
BROKER_SECRET = "capacity-broker"
#: the claim a shared results volume comes from when the logs do not go to S3
RESULTS_CLAIM = "capacity-results"
RESULTS_MOUNT = "/results"


#: brokers on which the shards can agree on their start when the first pod runs (SET NX)
AGREEING_SCHEMES = ("redis", "rediss", "redis+socket")
#: the image the pods run when --image is not given: Python, with this very version installed
DEFAULT_IMAGE = "python:3.12-slim"


def package_version() -> str:
    """The installed worker-capacity's version: the one the pods pin."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("worker-capacity")
    except PackageNotFoundError:  # a checkout run without installing: the source's own
        return "0.1.0"


def indexed_job_report(
    inject_args: list[str],
    shards: int,
    image: str | None,
    run_id: str | None,
    start_at: str | None,
    log_dir: str,
    scheme: str = "",
) -> Report:
    """The Job for ``capacity inject INJECT_ARGS`` split in ``shards`` shards.

    Every pod gets the same run id. On Redis the shards agree on their start when the first pod
    runs (it claims now + --start-delay through the broker; the others read it), so the
    manifest can be applied any time; elsewhere every pod gets the same start instant (given, or
    two minutes from now so image pulls finish first), and a pod that finds it more than
    --late-grace past refuses. Logs go to ``log_dir`` when that is s3://, else to a shared volume."""
    run_id = run_id or uuid.uuid4().hex[:12]
    agree = start_at is None and scheme in AGREEING_SCHEMES
    start = None if agree else (start_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120)))
    to_s3 = s3.is_s3(log_dir)
    args = [*inject_args, "--shard", f"$(JOB_COMPLETION_INDEX)/{shards}", "--run-id", run_id]
    args += [] if start is None else ["--start-at", start]
    if not any(a == "--log-dir" or a.startswith("--log-dir=") for a in inject_args):
        args += ["--log-dir", log_dir if to_s3 else RESULTS_MOUNT]
    elif not to_s3:
        args = _replace_value(args, "--log-dir", RESULTS_MOUNT)
    # Kubernetes expands $(JOB_COMPLETION_INDEX) in command arguments itself
    command = "capacity inject " + " ".join(shlex.quote(a) if "$(" not in a else a for a in args)
    pinned = package_version()
    image = image or DEFAULT_IMAGE
    if image.startswith("python:"):
        # the version that printed this manifest, not whatever is newest the day a pod starts
        command = f"pip install --quiet 'worker-capacity[brokers]=={pinned}' && " + command
    container: dict[str, Any] = {
        "name": "inject",
        "image": image,
        "command": ["sh", "-c", command],
        "env": [{"name": "CAPACITY_BROKER_URL", "valueFrom": {"secretKeyRef": {"name": BROKER_SECRET, "key": "url"}}}],
    }
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if not to_s3:
        container["volumeMounts"] = [{"name": "results", "mountPath": RESULTS_MOUNT}]
        pod["volumes"] = [{"name": "results", "persistentVolumeClaim": {"claimName": RESULTS_CLAIM}}]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"capacity-inject-{run_id}", "labels": {"app": "capacity-inject", "run": run_id}},
        "spec": {
            "completionMode": "Indexed",
            "completions": shards,
            "parallelism": shards,
            "backoffLimit": 0,  # a retried shard would send its tasks twice
            "template": {"metadata": {"labels": {"app": "capacity-inject", "run": run_id}}, "spec": pod},
        },
    }
    logs = log_dir if to_s3 else f"the {RESULTS_CLAIM} volume"
    when = (
        "from the start the shards agree on through Redis when the first pod runs (its start + --start-delay, "
        "30 s by default): apply this any time"
        if start is None
        else f"from {start}; a pod more than --late-grace (5 s) past it refuses (--late shift or catch-up "
        "to allow it)"
        + ("" if start_at else ": apply within two minutes")
        + (
            ""
            if scheme in AGREEING_SCHEMES
            else f"; {scheme or 'this broker'} cannot hold a start for the shards to agree on"
        )
    )
    notes = (
        f"Create the Secret first: kubectl create secret generic {BROKER_SECRET} --from-literal=url=BROKER_URL "
        "(the broker URL is not written here).",
        f"Each pod sends shard $(JOB_COMPLETION_INDEX) of {shards} of run {run_id} {when}; logs go to {logs}.",
        f"The pods run {image}"
        + (
            f" with worker-capacity=={pinned} installed at start (no internet in the cluster? build the image "
            "from the repository's Dockerfile and give --image)"
            if image.startswith("python:")
            else ""
        )
        + ".",
        "Then: capacity metrics --tasks-log "
        + (f"{log_dir.rstrip('/')}/ " if to_s3 else "RESULTS/*.log ")
        + "--timings ... gives the combined figures.",
    )
    shown_start = start or "agreed through Redis when the first pod runs"
    summary = (("Shards", str(shards)), ("Run id", run_id), ("Start at", shown_start), ("Image", image), ("Logs", logs))
    data = {"run_id": run_id, "shards": shards, "start_at": start, "image": image, "job": job}
    return Report("Kubernetes Indexed Job for a sharded inject", data, summary, (), notes, manifests=(job,))


def _replace_value(args: list[str], flag: str, value: str) -> list[str]:
    out = []
    skip = False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == flag and i + 1 < len(args):
            out += [flag, value]
            skip = True
        elif arg.startswith(flag + "="):
            out.append(f"{flag}={value}")
        else:
            out.append(arg)
    return out
