"""Processes a matrix cell runs beside the injector: the worker (started from a command template
in its own process group and stopped with it, or the user's up/down templates) and, for
``--timings events``, a Celery events collector in a thread."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from capacity import files
from capacity.errors import BrokerError, InputError, Interrupted, RunFailed
from capacity.measure.sources import split_kind
from capacity.secrets import mask, redact_url
from capacity.workerside.probe import ENV_VAR as PROBE_ENV_VAR

#: the reference worker, as ``capacity bench`` starts it ({python} is this interpreter)
REFERENCE_WORKER = (
    "{python} -m celery -A capacity.worker worker --pool {pool} --concurrency {concurrency} -Q {queue} "
    "--without-gossip --without-mingle --without-heartbeat --loglevel INFO "
    "--hostname bench-{cell}-{replica}@%h {events}"
)


#: the reference BullMQ worker (Node), for ``--protocol bullmq`` ({node_worker} is its script)
REFERENCE_NODE_WORKER = (
    "node {node_worker} --queue {queue} --concurrency {concurrency} --redis {broker} --job-types {job_types} {limiter}"
)
NODE_WORKER_DIR = Path(__file__).resolve().parent.parent / "workerside" / "node"


def reference_worker(protocol: str) -> str:
    return REFERENCE_NODE_WORKER if protocol == "bullmq" else REFERENCE_WORKER


@dataclass(frozen=True)
class WorkerControl:
    """How a cell gets its worker: a command we start and stop, or the user's up/down templates.

    Templates take {concurrency}, {queue}, {broker}, {cell}, {timings}, {python}, {pool},
    {replicas} (and {replica}, 0..replicas-1, for a command; for BullMQ {node_worker},
    {job_types}). ``command`` is split like a shell line and run without a shell, once per replica
    (their process trees are sampled with psutil);
    ``up``/``down`` run in a shell (``kubectl scale ...``, ``systemctl restart ...``)."""

    command: str | None = None
    up: str | None = None
    down: str | None = None
    ready_timeout_s: float = 60.0
    settle_s: float = 5.0  # after ``up``: no log to watch, so wait this long
    env: dict[str, str] = field(default_factory=dict)
    #: how readiness is seen: Celery's "ready." log line, or for BullMQ a worker connected to the
    #: queue (its named Redis client, as BullMQ's Queue.getWorkers counts them)
    ready: Callable[[], bool] | None = None
    #: add ``--include capacity.probe`` to a ``celery worker`` command that does not load it (#22)
    probe: bool = False


def with_probe(argv: list[str]) -> list[str] | None:
    """A ``celery ... worker`` command line loading capacity.probe: ``--include capacity.probe``
    after ``worker``, or the module added to an ``--include``/``-I`` it has (Celery adds them to
    the app's own includes); unchanged when it loads it already. None when the command is not a
    Celery worker we can recognise (a wrapper script, a Node worker): the user loads it there."""
    celery = next((i for i, word in enumerate(argv) if Path(word).name == "celery"), None)
    if celery is None or "worker" not in argv[celery + 1 :]:
        return None
    worker = argv.index("worker", celery + 1)
    out = list(argv)
    for i in range(worker + 1, len(out)):
        word = out[i]
        if word in ("--include", "-I") and i + 1 < len(out):
            at, prefix, value = i + 1, "", out[i + 1]
        elif word.startswith("--include="):
            at, prefix, value = i, "--include=", word.removeprefix("--include=")
        elif word.startswith("-I") and len(word) > 2:
            at, prefix, value = i, "-I", word[2:]
        else:
            continue
        if PROBE_MODULE not in value.split(","):
            out[at] = f"{prefix}{value},{PROBE_MODULE}"
        return out
    return [*out[: worker + 1], "--include", PROBE_MODULE, *out[worker + 1 :]]


PROBE_MODULE = "capacity.probe"


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return []


class EventsCollector:
    """``capacity collect`` in a thread for the length of a cell (brokers with events: Redis, AMQP)."""

    def __init__(self, broker_url: str, out: Path) -> None:
        self.broker_url = broker_url
        self.out = out
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="capacity-collect", daemon=True)

    def _run(self) -> None:
        from capacity.measure.collect import collect

        try:
            collect(self.broker_url, self.out, None, self._stop, self._ready)
        except BaseException as exc:  # handed to the main thread in start()/stop()
            self._error = exc
            self._ready.set()

    def start(self) -> None:
        self.out.touch()
        self._thread.start()
        if not self._ready.wait(15) and self._error is None:
            raise BrokerError(f"no event receiver on {redact_url(self.broker_url)} within 15 s")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        if self._error is not None:
            raise self._error


class WorkerProcess:
    """The cell's worker: started from the command template (its own process group), or up/down."""

    def __init__(self, control: WorkerControl, fields: dict[str, str], log: Path, broker_url: str, timings: str):
        self.control = control
        self.fields = fields
        self.log = log
        self.processes: list[subprocess.Popen[bytes]] = []
        self._pumps: list[_RedactingPump] = []
        self._log_lock = threading.Lock()
        files.write_bytes(log, b"")
        self.env = {**os.environ, "CAPACITY_BROKER_URL": broker_url}  # the broker the cell injects to
        self.env.pop(PROBE_ENV_VAR, None)
        kind, sink = split_kind(timings)
        if kind in ("", "probe"):
            self.env[PROBE_ENV_VAR] = sink  # where the probe writes
        self.env.update(control.env)
        #: when the probe could not be added to the command (not a `celery worker` line): the hint
        #: a cell whose tasks never get a timing ends with
        self.probe_hint = ""
        if control.probe and control.command and with_probe(_words(control.command)) is None:
            self.probe_hint = (
                "; no timing came back: is capacity.probe loaded in that worker (celery worker --include "
                "capacity.probe)? it could not be added to --worker-cmd, which is not a `celery ... worker` command"
            )
        if control.command:
            self.description = {"command": _redacted(control.command, fields)}
        else:
            self.description = {
                "up": _redacted(control.up or "", fields),
                "down": _redacted(control.down or "", fields),
            }

    @property
    def pids(self) -> list[int]:
        """The worker processes started (one per replica); their trees hold the pools."""
        return [p.pid for p in self.processes]

    def start(self, stop: threading.Event, replicas: int = 1) -> None:
        if self.control.command:
            for replica in range(replicas):
                self._start_one({**self.fields, "replica": str(replica)})
            self._wait_ready(stop, replicas)
        else:
            self._shell(self.control.up or "", "--worker-up")
            stop.wait(self.control.settle_s)

    def launch(self, fields: dict[str, str]) -> None:
        """Start one more worker process from the command template, without waiting for it."""
        self._start_one(fields)

    def ready_now(self) -> bool:
        """Whether every process started has logged Celery's "ready." line."""
        return self.log.read_bytes().count(b" ready.") >= len(self.processes)

    def exited(self) -> bool:
        return all(p.poll() is not None for p in self.processes)

    def terminate(self) -> None:
        """SIGTERM to every process group (Celery's warm shutdown), without waiting."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)

    def tail(self) -> str:
        return self._tail()

    def _start_one(self, fields: dict[str, str]) -> None:
        assert self.control.command is not None
        try:
            # each field stays one argument whatever it holds (a queue name with spaces)
            argv = shlex.split(self.control.command.format(**_quoted(fields)))
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"--worker-cmd: bad template ({exc}); fields: {', '.join(fields)}") from None
        # `VAR=value cmd ...`, as a shell would take it (#22: WORKER_CONCURRENCY={concurrency} node worker.js)
        env = dict(self.env)
        while argv and _ASSIGNMENT.match(argv[0]):
            name, _, value = argv.pop(0).partition("=")
            env[name] = value
        if not argv:
            raise InputError("--worker-cmd: only VAR=value assignments, no command to start")
        if self.control.probe:
            argv = with_probe(argv) or argv
        try:
            process = subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:
            raise InputError(f"--worker-cmd: cannot start {argv[0]!r}: {exc.strerror}") from None
        assert process.stdout is not None
        self.processes.append(process)
        self._pumps.append(_RedactingPump(process.stdout, self.log, self._log_lock))

    def _wait_ready(self, stop: threading.Event, replicas: int = 1) -> None:
        """Celery logs "<name> ready." at INFO once it consumes (once per replica); the worker
        must log at INFO."""
        deadline = time.monotonic() + self.control.ready_timeout_s
        while time.monotonic() < deadline and not stop.is_set():
            for process in self.processes:
                if process.poll() is not None:
                    hint = ""
                    if self.control.probe and "No module named 'capacity" in self.log.read_text(errors="replace"):
                        hint = (
                            " (the probe, --include capacity.probe, is not installed where the worker runs: "
                            "pip install worker-capacity there, or load the file `capacity probe write` makes)"
                        )
                    raise RunFailed(f"the worker exited with code {process.returncode}{hint}: {self._tail()}")
            if self.control.ready is not None:
                if self.control.ready():
                    return
            elif self.log.read_bytes().count(b" ready.") >= replicas:
                return
            stop.wait(0.1)
        if stop.is_set():
            raise Interrupted("interrupted; finished cells are kept, rerun to go on")
        if self.control.ready is not None:
            raise RunFailed(
                f"no worker connected to the queue within {self.control.ready_timeout_s:.0f} s: {self._tail()}"
            )
        command = self.control.command or ""
        if _NODE_COMMAND.search(command):
            # #22: a BullMQ worker never prints Celery's banner; the matrix waited a minute for it
            raise RunFailed(
                f"the worker did not log Celery's 'ready.' within {self.control.ready_timeout_s:.0f} s, and its "
                f"command looks like a Node worker: give --protocol bullmq (a BullMQ worker is ready once it "
                f"connects to the queue): {self._tail()}"
            )
        raise RunFailed(
            f"the worker did not log 'ready.' within {self.control.ready_timeout_s:.0f} s "
            f"(run it with --loglevel INFO): {self._tail()}"
        )

    def check_task_known(self) -> None:
        """RunFailed when the worker logged Celery's "Received unregistered task of type 'X'"
        (a forgotten --task, a module not imported): names X and what the worker registered."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        found = _UNREGISTERED.search(text)
        if found is None:
            return
        known = registered_tasks(text)
        listed = ", ".join(known) if known else "none listed (run it with --loglevel INFO to see its [tasks])"
        raise RunFailed(
            f"the worker does not know task {found.group(1)!r} (Celery: 'Received unregistered task'); "
            f"it registered: {listed}. Give the task's name with the matrix file's task:"
        )

    def _tail(self) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return mask(" | ".join(text[-3:])) if text else "(no output)"

    def _shell(self, template: str, flag: str) -> None:
        try:
            # the fields are data, not shell: quoted, so "q;touch pwned" stays a queue name
            line = template.format(**_quoted(self.fields))
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"{flag}: bad template ({exc}); fields: {', '.join(self.fields)}") from None
        done = subprocess.run(
            line, shell=True, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
        )
        with files.append(self.log, binary=True) as out:
            out.write(mask(done.stdout.decode("utf-8", "replace")).encode())
        if done.returncode != 0:
            raise RunFailed(f"{flag} exited with code {done.returncode}: {self._tail()}")

    def stop(self) -> None:
        if not self.processes:
            if self.control.down:
                self._shell(self.control.down, "--worker-down")
            return
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # warm shutdown of the group: worker and pool
                    os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        for pump in self._pumps:
            pump.join()


_UNREGISTERED = re.compile(r"Received unregistered task of type '([^']+)'")


def registered_tasks(banner: str) -> list[str]:
    """The task names under Celery's start-up banner's ``[tasks]`` (``  . name``), Celery's own
    (``celery.*``) left out."""
    _, found, rest = banner.partition("[tasks]")
    if not found:
        return []
    names: list[str] = []
    for line in rest.splitlines()[1:]:
        match = re.match(r"\s+\. (\S+)", line)
        if match is None:
            if names or line.strip():
                break
            continue
        if not match.group(1).startswith("celery."):
            names.append(match.group(1))
    return names


#: a leading ``NAME=value`` word of a command line (an environment assignment, as in a shell)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: a command that starts a Node program: node, npm/npx/yarn/pnpm, or a .js/.mjs/.ts file
_NODE_COMMAND = re.compile(r"(^|[\s/=])(node|nodejs|npm|npx|yarn|pnpm|tsx|ts-node)(\s|$)|\.(m?js|ts)(\s|$)")


class _RedactingPump:
    """Copies a worker's output to its log line by line through ``secrets.mask``: Celery's banner
    prints the broker URL (an SQS access key id in it), a custom worker may print its argv with
    a password; what the tool stores from a worker is redacted like its own output."""

    def __init__(self, stream: IO[bytes], log: Path, lock: threading.Lock) -> None:
        self._stream = stream
        self._log = log
        self._lock = lock  # replicas share the cell's worker.log, a whole line at a time
        self._thread = threading.Thread(target=self._run, name="capacity-worker-log", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._stream, files.append(self._log, binary=True) as out:
            for raw in self._stream:
                line = mask(raw.decode("utf-8", "replace")).encode()
                with self._lock:
                    out.write(line)
                    out.flush()

    def join(self) -> None:
        self._thread.join(10)


#: fields that are command-line fragments we build ourselves ("-E", "--limiter-max 10 ..."), not data
FRAGMENTS = frozenset({"events", "limiter"})


def _quoted(fields: dict[str, str]) -> dict[str, str]:
    """The template fields quoted for a shell line: a queue, broker or path is one word whatever
    it holds (so "q;touch pwned" stays a queue name); our own flag fragments are left as they are."""
    return {key: value if key in FRAGMENTS else shlex.quote(value) for key, value in fields.items()}


def _redacted(template: str, fields: dict[str, str]) -> str:
    """A template as recorded in result.json: the broker without its password, known secrets masked."""
    return mask(template.replace("{broker}", redact_url(fields["broker"])))
