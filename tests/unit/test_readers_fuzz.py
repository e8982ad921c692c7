"""Every file format the tool reads, fed malformed files (issue #23): each reader's valid example is
mutated (cut short, bytes inserted or replaced, lines repeated or dropped, a value of a parsed
JSON or YAML document swapped for a hostile one) and read by the command a user runs on it. The
answer is a documented exit code with exactly one error line, never a traceback and never exit 70
("internal error" is a bug, however politely it is worded)."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzcli import problems, run_in_process, seed_files

EXAMPLES = int(os.environ.get("CAPACITY_READER_EXAMPLES", "40"))
HOSTILE: list[Any] = [None, -1, 0, 1e308, "NaN", "-inf", "", "x" * 300, [], {}, True, "10/0s", 2**70, "💥"]

TASK_LOG = "\n".join(
    [json.dumps({"type": "run", "mode": "burst", "run_id": "r", "count": 3})]
    + [json.dumps({"task_id": f"t{i}", "sent_at": "2023-11-14T22:13:20+00:00", "size_bytes": 1}) for i in range(3)]
    + [json.dumps({"type": "end", "status": "completed", "sent": 3, "target": 3})]
)
PER_TASK_CSV = "task_id,sent,wait_s,service_s\nt0,1700000000.0,0.5,1.2\nt1,1700000001.0,0.2,0.9\n"
METRICS_JSON = json.dumps({"sent": 3, "completed": 3, "throughput_per_min": 60.0, "service_time_mean_s": 1.5})
FLEET = (
    "classes:\n  - {name: e, queue: e, arrivals: {kind: poisson, rate: 2/s, count: 50},\n"
    "     service: {kind: constant, mean: 1s}}\n"
    "pools:\n  - {name: p, queues: [e], concurrency: 2, policy: keda-redis, target: 5, max_replicas: 3}\n"
)
MATRIX = "task: capacity.worker.process_file\nsizes: [100KB]\nconcurrencies: [1, 2]\nmodes: [{mode: burst, count: 4}]\n"
STAGES = "- {duration: 10s, rate: 2/s}\n- {duration: 10s, from: 2/s, to: 6/s}\n"
PAYLOAD = '{"args": ["$uuid", "img-$seq.png"], "kwargs": {"n": 1}}\n{"args": ["b"], "kwargs": {}}\n'
INSTANCES = (Path(__file__).resolve().parents[2] / "capacity" / "profiles" / "instances.yaml").read_text()

#: format -> (file name, valid content, the command line that reads it: {f} is the file, {d} its folder)
READERS: dict[str, tuple[str, str, str]] = {
    "task log": ("worker_tasks_1.log", TASK_LOG, "metrics --tasks-log {f} --timings probe:{probe} -f json"),
    "per-task CSV": (
        "tasks.csv",
        PER_TASK_CSV,
        "simulate --workers 2 --count 20 --service empirical --from-metrics {f}",
    ),
    "metrics JSON": (
        "metrics.json",
        METRICS_JSON,
        "plan --arrival-rate 60/min --from-metrics {f} --target-p95-wait 30s",
    ),
    "fleet": ("fleet.yaml", FLEET, "autoscale --fleet {f} -f json"),
    "matrix": ("matrix.yaml", MATRIX, "matrix plan {f}"),
    "stages": ("stages.yaml", STAGES, "autoscale --concurrency 2 --arrival stages --stages {f} -f json"),
    "payload file": (
        "payloads.jsonl",
        PAYLOAD,
        "inject --payload-file {f} --task t --shards 2 -f k8s --broker redis://h/0",
    ),
    "profiles": ("instances.yaml", INSTANCES, "recommend --instance medium --profiles-dir {d}"),
}


def _structured(text: str, name: str, rng: random.Random) -> str | None:
    """The document parsed, one value (found by a random walk) replaced by a hostile one."""
    is_json = name.endswith((".json", ".jsonl", ".log"))
    lines = text.splitlines() if name.endswith((".jsonl", ".log")) else [text]
    index = rng.randrange(len(lines))
    try:
        document = json.loads(lines[index]) if is_json else yaml.safe_load(lines[index])
    except ValueError:
        return None
    if not isinstance(document, (dict, list)) or not document:
        return None
    node: Any = document
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return None
        key = rng.choice(keys)
        child = node[key]
        if isinstance(child, (dict, list)) and child and rng.random() < 0.6:
            node = child
            continue
        node[key] = rng.choice(HOSTILE)
        break
    lines[index] = json.dumps(document) if is_json else yaml.safe_dump(document)
    return "\n".join(lines) + "\n"


def _mutate(text: str, name: str, rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    data = text.encode()
    if kind == 0:
        return data[: rng.randrange(len(data) + 1)]  # cut short (a crash while writing, a full disk)
    if kind == 1:
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.randbytes(rng.randrange(1, 12)) + data[at:]
    if kind == 2:
        at = rng.randrange(len(data))
        return data[:at] + rng.choice([b"\x00", b"\xff\xfe", b"{", b"]", b",", b"\n\n", b"\t:"]) + data[at + 1 :]
    if kind == 3:
        lines = text.splitlines(keepends=True)
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
        if len(lines) > 1 and rng.random() < 0.5:
            del lines[rng.randrange(len(lines))]
        return "".join(lines).encode()
    if kind == 4:
        return rng.choice([b"", b"\n", b"null", b"[]", b"{}", b"- 1\n", rng.randbytes(64)])
    return (_structured(text, name, rng) or text[::-1]).encode()


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_malformed_file_is_one_line_never_internal(
    kind: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, valid, line = READERS[kind]
    for key in [k for k in os.environ if k.startswith(("CAPACITY_", "CELERY_", "SQS_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CAPACITY_MEMORY_LIMIT", "2GB")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    seeds = seed_files(tmp_path_factory.mktemp("seeds"))
    found: list[str] = []

    def read(content: bytes) -> None:
        folder = tmp_path_factory.mktemp("case")
        path = folder / name
        path.write_bytes(content)
        argv = line.format(f=path, d=folder, probe=seeds["probe"]).split()
        monkeypatch.chdir(folder)
        found.extend(problems(argv, run_in_process(argv)))

    read(valid.encode())  # the valid example is read without complaint
    assert found == [] or kind == "profiles", found

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.randoms(use_true_random=False))
    def case(rng: Any) -> None:
        read(_mutate(valid, name, rng))

    case()
    assert found == [], "\n".join(found[:10])


def test_the_mutations_reach_every_kind_of_damage() -> None:
    """The strategy above is not vacuous: every kind of mutation changes the file."""
    rng = random.Random(3)
    mutate: Callable[[str, str, random.Random], bytes] = _mutate
    outcomes = [mutate(FLEET, "fleet.yaml", rng) for _ in range(60)]
    # a line repeated then that very line dropped gives the file back: rarely
    assert len(set(outcomes)) > 40 and outcomes.count(FLEET.encode()) <= 3
