"""Real components for the tests: a redis-server process, moto's SQS server on 127.0.0.1, and a
`celery worker` subprocess. Nothing here is a fake."""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from capacity.matrix.embedded import free_port, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent


class RedisServer:
    """A redis-server on a loopback port; stop() and start() keep its data directory."""

    def __init__(self, directory: Path, password: str | None = None, durable: bool = False) -> None:
        self.directory = directory
        self.password = password
        self.durable = durable
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def stall_when(self, key: str, length: int, seconds: float) -> None:
        """Once the list ``key`` holds ``length`` items, freeze the server (SIGSTOP) for ``seconds``."""
        client = self.client()
        deadline = time.monotonic() + 30
        while client.llen(key) < length and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(self.process.pid, signal.SIGCONT)

    def queued_task_ids(self, queue: str = "celery") -> list[str]:
        return [json.loads(raw)["headers"]["id"] for raw in self.client().lrange(queue, 0, -1)]


class LateDelivery:
    """A TCP proxy in front of a server that can hold back what one client connection sends and
    deliver it late, whether that client still waits or has given up and closed: the network's
    worst case for "did my request apply?" (a stalled server, a congested link), made exact. A
    test double for the network only; the server behind it is real."""

    def __init__(self, port: int) -> None:
        self.target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._hold: tuple[bytes, float] | None = None
        self._lock = threading.Lock()
        #: set once held bytes have been delivered
        self.delivered = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self, marker: bytes, seconds: float) -> None:
        """The next client chunk containing ``marker``, and whatever follows it on that connection,
        reaches the server ``seconds`` later, even if the client closed meanwhile."""
        with self._lock:
            self._hold = (marker, seconds)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        held: list[bytes] = []
        release = 0.0
        open_ = True
        try:
            while open_ or held:
                wait = max(0.0, release - time.monotonic()) if held else None
                if held and (not open_ or not select.select([client], [], [], wait)[0]):
                    # time's up (or the client is gone): deliver what it sent, late
                    time.sleep(max(0.0, release - time.monotonic()))
                    server.sendall(b"".join(held))
                    held = []
                    self.delivered.set()
                    continue
                chunk = client.recv(1 << 16)
                if not chunk:
                    open_ = False
                    continue
                with self._lock:
                    if not held and self._hold and self._hold[0] in chunk:
                        release = time.monotonic() + self._hold[1]
                        self._hold = None
                        held.append(chunk)
                        continue
                if held:
                    held.append(chunk)
                else:
                    server.sendall(chunk)
        except OSError:
            pass
        time.sleep(0.5)  # let the server read what was delivered before it sees the close
        server.close()

    def _downstream(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while chunk := server.recv(1 << 16):
                client.sendall(chunk)
        except OSError:
            pass
        client.close()

    def settled(self, within: float = 30.0) -> bool:
        """Whether the held bytes were delivered within ``within`` s; then a second for the server
        to execute them before the test looks (a settle time, not a measurement)."""
        if not self.delivered.wait(within):
            return False
        time.sleep(1.0)
        return True

    def __enter__(self) -> LateDelivery:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._listener.close()


class MotoSQS:
    """moto's server mode on 127.0.0.1 (its own process), and a boto3 client to look inside."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"sqs://testing-key:testing-secret@127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoSQS:
        exe = Path(sys.executable).with_name("moto_server")
        self.process = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self, service: str = "sqs") -> Any:
        """A boto3 client for this server (``sqs``, or ``s3``: moto serves both)."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing-key",
            aws_secret_access_key="testing-secret",
        )

    def queue_url(self, name: str) -> str:
        return str(self.client().get_queue_url(QueueName=name)["QueueUrl"])

    def drain_task_ids(self, name: str) -> list[str]:
        """Receive (and delete) every message; the task ids in them, duplicates kept."""
        client, url = self.client(), self.queue_url(name)
        ids: list[str] = []
        empty = 0
        while empty < 2:
            got = client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300
            ).get("Messages", [])
            if not got:
                empty += 1
                continue
            for message in got:
                ids.append(json.loads(base64.b64decode(message["Body"]))["headers"]["id"])
            client.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            )
        return ids


def base_env(broker_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPACITY_", "CELERY_", "SQS_"))}
    env.update(
        CAPACITY_BROKER_URL=broker_url,
        PYTHONPATH=str(ROOT),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing-key",
        AWS_SECRET_ACCESS_KEY="testing-secret",
        COLUMNS="120",
        # the parallel phase's tests beside each other are interference: only the serial phase's
        # interference tests (which remove this) judge it; the others measure what they are about
        CAPACITY_DISTURBED_PERCENT="100",
    )
    return env


@contextmanager
def celery_worker(
    broker_url: str,
    executed: Path,
    concurrency: int = 4,
    queues: str = "celery",
    extra_env: dict[str, str] | None = None,
    pool: str = "threads",
    extra_args: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` on the test app (threads pool unless told); warm shutdown on exit."""
    env = {**base_env(broker_url), "CAPACITY_TEST_EXECUTED": str(executed), **(extra_env or {})}
    log = executed.with_suffix(".worker.log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.celery_app",
                "worker",
                "--pool",
                pool,
                *extra_args,
                "--concurrency",
                str(concurrency),
                "-Q",
                queues,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
                "--hostname",
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            stop_process(process, 30)


def stop_process(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM (a worker's warm shutdown), then SIGKILL after ``grace_s``."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def wait_until_ready(worker_log: Path, timeout_s: float = 60) -> None:
    """Block until the worker says it is ready (so a measured window holds no start-up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker_log.exists() and b" ready." in worker_log.read_bytes():
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready: {worker_log.read_text(errors='replace')[-2000:]}")


def executed_ids(executed: Path) -> list[str]:
    if not executed.exists():
        return []
    return [json.loads(line)["task_id"] for line in executed.read_text().splitlines() if line.strip()]


def wait_for_executed(executed: Path, count: int, timeout_s: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ids = executed_ids(executed)
        if len(ids) >= count:
            time.sleep(0.5)  # let any duplicate show itself
            return executed_ids(executed)
        time.sleep(0.2)
    return executed_ids(executed)


def read_log(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """(run line, task lines, end line or None)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    run = lines[0]
    end = lines[-1] if lines[-1].get("type") == "end" else None
    tasks = [line for line in lines[1:] if "task_id" in line]
    return run, tasks, end


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "capacity", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_script(script: str, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A script under load_tests/ run as a user runs it: `python SCRIPT ARGS`."""
    return subprocess.run(
        [sys.executable, script, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def start_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """`python -m capacity ARGS` running in the background, its output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "capacity", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class RabbitServer:
    """A real rabbitmq-server (Debian's package, started by capacity's LocalRabbitMQ) on a port
    and data folder of its own that survive kill() and start() again: durable queues come back."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.server: Any = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs beside the URL (the management API, for the unacked count)."""
        return {"CAPACITY_RABBITMQ_MANAGEMENT": self.server.management_url}

    def start(self) -> RabbitServer:
        from capacity.matrix.embedded import LocalRabbitMQ

        self.server = LocalRabbitMQ(self.port, self.directory).__enter__()
        return self

    @property
    def pid(self) -> int:
        return int(self.server.process.pid)

    def kill(self) -> None:
        """kill -9 of the whole server (its script and the Erlang VM)."""
        os.killpg(self.pid, signal.SIGKILL)
        self.server.process.wait(10)

    def pause(self, seconds: float) -> None:
        os.killpg(self.pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.killpg(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.server is not None:
            self.server.__exit__(None, None, None)

    def channel(self) -> Any:
        import amqp

        connection = amqp.Connection(f"127.0.0.1:{self.port}")
        connection.connect()
        return connection.channel()

    def depth(self, queue: str) -> int:
        channel = self.channel()
        try:
            return int(channel.queue_declare(queue, passive=True).message_count)
        finally:
            channel.connection.close()

    def queued_task_ids(self, queue: str) -> list[str]:
        """Every message on ``queue``, taken off it (basic_get, acked): their Celery task ids."""
        channel = self.channel()
        ids = []
        try:
            while True:
                message = channel.basic_get(queue, no_ack=True)
                if message is None:
                    return ids
                ids.append(message.headers["id"])
        finally:
            channel.connection.close()
