"""Generated and mutated command lines for every command (issue #11's fuzz), shared by the test in
the default suite (few examples) and the soak in ``benchmarks/soak_fuzz.py`` (many).

The command tree is read from the CLI itself (every option of every command, so a new flag is
fuzzed without editing this file); values come from a pool of hostile inputs: bad units, huge and
non-finite numbers, malformed and unreachable URLs, and files that are non-UTF-8, BOM-prefixed,
deeply nested, empty, binary, directories, missing or unwritable."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

#: documented exit codes (docs/concepts/exit-codes.md); 70 means an exception nothing translated: a bug
DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 130}
#: commands that run real work for minutes when their input happens to be valid: fuzzed through a
#: fixed list of bad inputs in subprocesses instead (tests/unit/test_fuzz_cli.py)
LONG_RUNNING = {
    ("bench",),
    ("matrix", "run"),
    ("collect",),
    ("scaled-run",),
    ("broker", "redis"),
    ("broker", "sqs"),
    ("broker", "rabbitmq"),
    ("top",),  # refreshes until Ctrl-C (its --once is fuzzed through the seeds)
}


@dataclass(frozen=True)
class Param:
    flag: str | None  # None: a positional argument
    is_flag: bool  # a boolean switch: no value


def command_tree() -> dict[tuple[str, ...], list[Param]]:
    """Every leaf command's path and parameters, from the typer app."""
    import typer.main

    from capacity.cli import app

    root = typer.main.get_command(app)
    found: dict[tuple[str, ...], list[Param]] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        params = [
            Param(None if p.param_type_name == "argument" else p.opts[0], bool(getattr(p, "is_flag", False)))
            for p in command.params
            if not p.hidden and (p.param_type_name == "argument" or p.opts[0] not in ("--help", "--version"))
        ]
        if path:
            found[path] = params
        for name, sub in (subcommands or {}).items():
            walk(sub, (*path, name))

    walk(root, ())
    return found


def hostile_files(directory: Path) -> list[str]:
    """Files and paths every file-taking option is given."""
    directory.mkdir(parents=True, exist_ok=True)
    deep = "[" * 100_000 + "]" * 100_000
    contents = {
        "latin1.yaml": "name: caf\xe9\n".encode("latin-1"),
        "bom.yaml": b"\xef\xbb\xbfcells: []\n",
        "bom.csv": b"\xef\xbb\xbfconcurrency,throughput\n1,2\n",
        "deep.json": deep.encode(),
        "deep.jsonl": (json.dumps({"task_id": "a"})[:-1] + ', "x": ' + deep + "}\n").encode(),
        "empty.txt": b"",
        "binary.bin": bytes(range(256)) * 4,
        "nan.csv": b"concurrency,throughput\n0,nan\n1,inf\n2,-1\n",
        "zero.csv": b"concurrency,throughput\n0,0\n0,0\n",
        "stages.yaml": b"- {duration: 1e309s, rate: nan/s}\n- 5\n",
        "tasklog.log": b'{"type":"run"}\n{"task_id":"a","sent_at":"9999-12-31T23:59:59Z"}\n{"task_id":1}\n',
        "yamltag.yaml": b"!!python/object/apply:os.system ['echo pwned']\n",
        "records.csv": b"id,uploaded_at,updated_at,state\na,2020-01-01,notadate,SUCCESS\n",
    }
    paths = []
    for name, data in contents.items():
        path = directory / name
        path.write_bytes(data)
        paths.append(str(path))
    (directory / "a_dir").mkdir(exist_ok=True)
    return [*paths, str(directory / "a_dir"), str(directory / "missing" / "x.yaml"), "/dev/full", "/dev/null"]


SCALARS = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "3",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "99999999999999",
    "100000000000",
    "99999999999999h",
    "abc",
    "%",
    "1/0",
    "0/s",
    "10/min",
    "-5/s",
    "500MB",
    "4XB",
    "0.5",
    "1-0",
    "completion<%",
    "p95>",
    "s.mean>1s",
    "json",
    "k8s",
    "\x00",
    "é" * 3,
    "{}",
    "[]",
    '{"a": ' * 5000 + "1" + "}" * 5000,
    "redis://127.0.0.1:1/0",
    "redis://:pw@127.0.0.1:99999/0",
    "redis://[::1",
    "redis://h/0?password=x",
    "rediss://127.0.0.1:1/0",
    "sqs://",
    "sqs://AKIAIOSFODNN7EXAMPLE:secret@localhost",
    "amqp://127.0.0.1:1//",
    "http://127.0.0.1:1/queue/x",
    "s3://",
    "probe:",
    "prob:/x",
    "redis:",
    "2099-01-01T00:00:00Z",
    "not-a-date",
    "0/1",
    "3/2",
    "medium",
    "2D Render",
]


#: valid command lines (the docs') that mutations start from, so hostile values reach the code
#: past the parser; {tasklog}, {csv}, ... are replaced with files made by ``seed_files``
SEEDS = [
    "recommend --instance medium",
    "recommend resources --cpu 2 --memory 4GiB --mem-per-job 500MB",
    "recommend --photos 5000 --service-time 8s --api-rate-limit 60/min",
    "recommend --queue-depth 500 --concurrency 5 --latency 60s --service-time 12s",
    "recommend --users 120 -f json",
    "recommend topology --task-type emails --concurrency 2-4",
    "assess --queue-depth 150 --wait 12s --cpu-util 40",
    "cost --hours-per-month 720 -f markdown",
    "cost --throughput 300/min --service-time 12s --policy -f markdown",
    "plan --arrival-rate 120/min --service-time 12s --target-p95-wait 30s --instance medium",
    "simulate --workers 4 --arrival burst --count 50 --service lognormal --service-time 12s --service-cv 0.5",
    "simulate --workers 4 --arrival poisson --arrival-rate 2/s --count 100 --service-time 1s",
    "usl {usl}",
    "metrics --tasks-log {tasklog} --timings probe:{probe} -f json",
    "metrics --tasks-log {tasklog} --timings {records} --id-col id --start-col uploaded_at --end-col updated_at",
    "inject --broker redis://127.0.0.1:1/0 --count 5 --quiet --log-dir {dir}/logs",
    "inject --broker redis://127.0.0.1:1/0 --mode sustained --rate 10/s --count 5 --quiet --log-dir {dir}/logs",
    "inject --mode sustained --rate 400/s --count 800 --queue q --shards 4 -f k8s",
    "autoscale --concurrency 4 --count 500 --max-replicas 5 --startup 5s --volume 1x --speedup 1",
    "autoscale --concurrency 4 --count 300 --goal-p95-wait 60s -f k8s",
    "autoscale --fleet {fleet} -f json",
    "simulate --fleet {fleet}",
    "recommend topology --users 120 --arrival-rate emails=1/s --service-time 1s -f fleet",
    "matrix plan",
    "report {dir}/no-run",
    "compare {dir}/a {dir}/b",
    # the newer commands and options (issue #23): each a valid line the mutations start from
    "probe write {dir}/probe-out",
    "inject --broker redis://127.0.0.1:1/0 --protocol bullmq --kwargs {{}} --count 5 --quiet --log-dir {dir}/logs",
    "inject --broker redis://127.0.0.1:1/0 --protocol bullmq --job-options {{}} --count 5 -q --log-dir {dir}/logs",
    "inject --broker redis://127.0.0.1:1/0 --shard 0/2 --run-id r1 --count 5 --quiet --log-dir {dir}/logs",
    "inject --broker redis://127.0.0.1:1/0 --start-at 2020-01-01T00:00:00Z --late shift --count 5 -q --log-dir {dir}/l",
    "inject --broker amqp://guest:guest@127.0.0.1:1// --count 5 --quiet --log-dir {dir}/logs",
    "autoscale --concurrency 2 --count 100 --policy keda-rabbitmq --rabbitmq-protocol http -f k8s --broker amqp://h/v",
    "autoscale --concurrency 2 --count 100 -f k8s --broker redis://:pw@redis.prod:6379/0",
    "top --broker redis://127.0.0.1:1/0 --once -f json",
]


def seed_files(directory: Path) -> dict[str, str]:
    """The valid inputs the seeds name."""
    directory.mkdir(parents=True, exist_ok=True)
    t0 = 1_700_000_000.0
    log = directory / "worker_tasks_1.log"
    lines = [json.dumps({"type": "run", "mode": "burst"})]
    lines += [
        json.dumps({"task_id": f"t{i}", "sent_at": "2023-11-14T22:13:20+00:00", "size_bytes": 1}) for i in range(5)
    ]
    log.write_text("\n".join(lines) + "\n")
    probe = directory / "probe"
    probe.mkdir(exist_ok=True)
    rows = [
        {"task_id": f"t{i}", "event": "done", "started": t0 + 1, "finished": t0 + 2, "state": "SUCCESS"}
        for i in range(5)
    ]
    (probe / "timings-h-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = directory / "records.csv"
    records.write_text("id,uploaded_at,updated_at\nt0,2023-11-14T22:13:21Z,2023-11-14T22:13:22Z\n")
    usl = directory / "points.csv"
    usl.write_text("concurrency,throughput\n1,10\n2,19\n4,34\n8,50\n")
    fleet = directory / "fleet.yaml"
    fleet.write_text(
        "classes:\n  - {name: e, queue: e, arrivals: {kind: poisson, rate: 2/s, count: 200}, "
        "service: {kind: constant, mean: 1s}}\npools:\n  - {name: p, queues: [e], concurrency: 2, replicas: 2}\n"
    )
    return {
        "tasklog": str(log), "probe": str(probe), "records": str(records), "usl": str(usl), "dir": str(directory),
        "fleet": str(fleet),
    }  # fmt: skip


def mutated_strategy(
    tree: dict[tuple[str, ...], list[Param]], files: list[str], seeds: dict[str, str]
) -> st.SearchStrategy[list[str]]:
    """A documented command line with one value replaced by a hostile one, or a hostile option added."""
    values = st.sampled_from(SCALARS + files) | st.text(max_size=12)
    lines = [shlex.split(line.format(**seeds)) for line in SEEDS]

    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        argv = list(draw(st.sampled_from(lines)))
        path = next(tuple(argv[:n]) for n in (2, 1) if tuple(argv[:n]) in tree)
        for _ in range(draw(st.integers(1, 2))):
            if draw(st.booleans()) and len(argv) > len(path):
                index = draw(st.integers(len(path), len(argv) - 1))
                if not argv[index].startswith("-"):
                    argv[index] = draw(values)
                    continue
            options = [p for p in tree[path] if p.flag is not None]
            if options:
                param = draw(st.sampled_from(options))
                argv += [param.flag] if param.is_flag else [param.flag, draw(values)]  # type: ignore[list-item]
        return argv

    return build()


def argv_strategy(tree: dict[tuple[str, ...], list[Param]], files: list[str]) -> st.SearchStrategy[list[str]]:
    """A command and up to five of its parameters, each with a hostile value."""
    values = st.sampled_from(SCALARS + files) | st.text(max_size=12)
    paths = sorted(p for p in tree if p not in LONG_RUNNING)

    @st.composite
    def build(draw: st.DrawFn) -> list[str]:
        path = draw(st.sampled_from(paths))
        params = tree[path]
        argv = list(path)
        if params:
            chosen = draw(st.lists(st.sampled_from(params), max_size=5))
            for param in chosen:
                if param.flag is None:
                    argv.append(draw(values))
                elif param.is_flag:
                    argv.append(param.flag)
                else:
                    argv += [param.flag, draw(values)]
        if draw(st.booleans()):
            argv.append(draw(st.sampled_from(["--bogus", "-o", "--format", "extra-arg"])))
        return argv

    return build()


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def run_in_process(argv: list[str]) -> Outcome:
    """``capacity ARGV`` in this process, its output captured."""
    from capacity.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(argv)
    return Outcome(code, out.getvalue(), err.getvalue())


def problems(argv: list[str], outcome: Outcome) -> list[str]:
    """What is wrong with an outcome: an undocumented code, a traceback, an error not on one line."""
    found = []
    if outcome.code not in DOCUMENTED:
        found.append(f"exit {outcome.code}")
    if "Traceback" in outcome.stderr or "Traceback" in outcome.stdout:
        found.append("traceback")
    errors = [line for line in outcome.stderr.splitlines() if line.startswith(("error:", "failed:"))]
    helped = outcome.code == 2 and "Usage:" in outcome.stdout  # a group given no command shows its help
    if outcome.code not in (0, 130) and len(errors) != 1 and not helped:
        found.append(f"{len(errors)} error lines")
    if any(box in outcome.stderr for box in ("╭", "│ ")):
        found.append("a box, not a line")
    return [f"{' '.join(argv)!r}: {p}: {outcome.stderr.strip()[-300:]!r}" for p in found]


def environment(directory: Path) -> dict[str, str]:
    """No broker, profiles or AWS settings from the caller's shell leak into a case."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPACITY_", "CELERY_", "SQS_", "AWS_"))}
    env.update(AWS_DEFAULT_REGION="us-east-1", COLUMNS="100", HOME=str(directory))
    # a case runs in a test worker (or under a 3 GB address-space limit): a simulation of a
    # mutated --count of 199,999,999 tasks (~25 GB) is refused here, not attempted
    env["CAPACITY_MEMORY_LIMIT"] = "2GB"
    return env
