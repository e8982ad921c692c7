"""RabbitMQ end to end on a real rabbitmq-server (Debian's package, installed by the test
command's set-up) with a real ``celery worker``: every id the task log names was confirmed by the
broker and runs once; the message is the one Celery's ``send_task`` publishes; faults on the real
server (kill -9 with a restart, SIGSTOP, a full queue refusing) leave the log exact (issue #24)."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.common import BrokerContract, only_log
from tests.realbrokers import (
    RabbitServer,
    base_env,
    celery_worker,
    read_log,
    run_cli,
    start_cli,
    wait_for_executed,
)


class TestRabbitMQ(BrokerContract):
    @pytest.fixture(autouse=True)
    def _server(self, rabbitmq: RabbitServer) -> None:
        self.server = rabbitmq
        self.queue = "q-" + uuid.uuid4().hex[:10]

    def env(self) -> dict[str, str]:
        return {**base_env(self.url()), **self.server.env}

    def url(self) -> str:
        return self.server.url

    def queued_ids(self) -> list[str]:
        return self.server.queued_task_ids(self.queue)

    def test_message_is_what_send_task_publishes(self) -> None:
        """Our frames, read back off the queue, equal the message Celery's own send_task puts
        there (properties, headers, body), but for what differs per producing app."""
        from celery import Celery

        from capacity.brokers import BrokerOptions, open_broker

        args, kwargs = ["photo-1.jpg", 3], {"size": "large"}
        with open_broker(self.url(), BrokerOptions(queue=self.queue)) as broker:
            template = broker.template("resize.async_resize", self.queue, args, kwargs, None, None)
            broker.send_batch(["TASK-1"], template.render(["TASK-1"], args, kwargs, datetime.now(UTC)))
        app = Celery("other", broker=self.url(), set_as_current=False)
        app.send_task("resize.async_resize", args=args, kwargs=kwargs, task_id="TASK-1", queue=self.queue)
        time.sleep(0.2)
        channel = self.server.channel()
        try:
            mine, real = (channel.basic_get(self.queue, no_ack=True) for _ in range(2))
        finally:
            channel.connection.close()
        assert mine is not None and real is not None
        for message in (mine, real):
            message.properties.pop("reply_to")  # unique per producing app
            message.properties["application_headers"].pop("origin")
        assert mine.properties == real.properties
        assert mine.body == real.body
        assert mine.delivery_info["routing_key"] == real.delivery_info["routing_key"] == self.queue

    def test_frames_are_py_amqps_frames(self) -> None:
        """The frames packed per task are byte for byte what py-amqp's own writer produces for the
        same message (headers in the same order), with a per-task value and a body split in frames."""
        from amqp.basic_message import Message
        from amqp.method_framing import frame_writer
        from celery.utils.saferepr import saferepr

        from capacity.brokers import BrokerOptions, open_broker
        from capacity.brokers.amqp import _PER_BATCH, _PER_TASK
        from capacity.brokers.messages import per_task_marker

        kwargs = {"blob": "x" * 300_000, "n": per_task_marker("seq", whole_number=True)}
        with open_broker(self.url(), BrokerOptions(queue=self.queue)) as broker:
            template = broker.template("t.big", self.queue, [], kwargs, None, 30.0)
            now = datetime.now(UTC)
            mine = template.render(["A" * 36, "B" * 40], [], kwargs, now, {"seq": ["7", "12345"]})
            captured = broker._template_args[0]  # the message Celery prepared
        written: list[bytes] = []

        class Transport:
            def write(self, data: Any) -> None:
                written.append(bytes(data))

        class Connection:
            frame_max = template.frame_max
            bytes_sent = 0

        write = frame_writer(Connection(), Transport())
        for task_id, n, frames in zip(["A" * 36, "B" * 40], [7, 12345], mine, strict=True):
            headers = {
                k: v
                for k, v in captured.properties["application_headers"].items()
                if k not in (*_PER_TASK, *_PER_BATCH)
            }
            headers |= {
                "id": task_id,
                "root_id": task_id,
                "argsrepr": "()",
                "kwargsrepr": saferepr({**kwargs, "n": n}, 1024),
            }
            headers["eta"] = (now + timedelta(seconds=30)).isoformat()
            properties = {**captured.properties, "application_headers": headers, "correlation_id": task_id}
            embed = '{"callbacks": null, "errbacks": null, "chain": null, "chord": null}'
            body = f'[[], {{"blob": "{"x" * 300_000}", "n": {n}}}, {embed}]'
            message = Message(body.encode(), **properties)
            written.clear()
            write(1, template.channel_id, (60, 40), _publish_args(self.queue), message)
            assert b"".join(written) == frames

    def test_full_queue_refusal_is_exit_3_with_an_exact_log(self, tmp_path: Path) -> None:
        """x-max-length with reject-publish: RabbitMQ nacks what does not fit; the log names
        exactly the tasks the queue holds and the run exits 3 (broker refused)."""
        channel = self.server.channel()
        channel.queue_declare(
            self.queue, durable=True, auto_delete=False, arguments={"x-max-length": 120, "x-overflow": "reject-publish"}
        )
        channel.connection.close()
        log, proc = self.inject(tmp_path, "--mode", "burst", "--count", "500", "--quiet")
        assert proc.returncode == 3, proc.stderr
        assert "refused" in proc.stderr and "Traceback" not in proc.stderr
        _, tasks, end = read_log(log)
        assert end is not None and end["status"] == "broker_refused"
        assert sorted(t["task_id"] for t in tasks) == sorted(self.queued_ids())
        assert len(tasks) == 120

    def test_pause_of_10_s_is_waited_for(self, tmp_path: Path) -> None:
        """SIGSTOP of the server for 10 s mid-burst: the run waits (retry time 30 s), completes, and
        the queue holds exactly the logged tasks."""
        pauser = threading.Thread(target=self._pause_when_queue_has, args=(2000, 10.0))
        pauser.start()
        log, proc = self.inject(tmp_path, "--mode", "burst", "--count", "20000", "--quiet")
        pauser.join()
        assert proc.returncode == 0, proc.stderr
        _, tasks, end = read_log(log)
        assert end is not None and end["status"] == "completed" and end["sent"] == 20000
        queued = self.queued_ids()
        assert len(queued) == len(set(queued)) == 20000
        assert set(queued) == {t["task_id"] for t in tasks}

    def _pause_when_queue_has(self, count: int, seconds: float) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.server.depth(self.queue) >= count:
                    break
            except Exception:  # the queue is not declared yet
                pass
            time.sleep(0.01)
        self.server.pause(seconds)

    def test_nothing_consumes_the_queue_warning(self, tmp_path: Path) -> None:
        _, proc = self.inject(
            tmp_path,
            "--count",
            "5",
            "--monitor",
            "--monitor-for",
            "4s",
            "--idle-after",
            "1s",
            "--monitor-interval",
            "200ms",
        )
        assert proc.returncode == 1
        assert "no worker seems to consume that queue" in proc.stderr

    def test_registered_task_check_and_monitor_on_rabbitmq(self, tmp_path: Path) -> None:
        """Celery's inspect broadcast works over AMQP: a misspelt task name is refused before
        sending (exit 2) with the names the worker knows; a right one is drained with the
        management API's unacked count (in flight) in the samples."""
        executed = tmp_path / "executed.jsonl"
        with celery_worker(self.url(), executed, queues=self.queue):
            from tests.realbrokers import wait_until_ready

            wait_until_ready(executed.with_suffix(".worker.log"))
            wrong = run_cli(
                [
                    "inject",
                    "--broker",
                    self.url(),
                    "--queue",
                    self.queue,
                    "--task",
                    "capacity.worker.proces_file",
                    "--count",
                    "3",
                    "--log-dir",
                    str(tmp_path / "wrong"),
                ],
                base_env(self.url()),
                tmp_path,
            )
            assert wrong.returncode == 2 and "capacity.worker.process_file" in wrong.stderr, wrong.stderr
            assert not (tmp_path / "wrong").exists() or not list((tmp_path / "wrong").glob("*.log"))
            log, proc = self.inject(
                tmp_path, "--count", "30", "--monitor", "--monitor-interval", "200ms", "--monitor-for", "60s"
            )
            assert proc.returncode == 0, proc.stderr
            ran = wait_for_executed(executed, 30)
        _, tasks, _ = read_log(log)
        assert collections.Counter(ran) == collections.Counter(t["task_id"] for t in tasks)
        # the in-flight column is the management API's unacked count: unknown (empty) until the new
        # queue's statistics appear, a number from then on; the drain is judged on known counts only
        in_flight = [
            line.split(",")[2] for line in log.with_name(log.stem + "_monitor.csv").read_text().splitlines()[1:]
        ]
        known = [i for i, value in enumerate(in_flight) if value.isdigit()]
        assert known and all(value.isdigit() for value in in_flight[known[0] :]), in_flight
        assert "queue drained" in proc.stderr and "management API" not in proc.stderr


def _publish_args(routing_key: str) -> bytes:
    from amqp.serialization import dumps

    return bytes(dumps("Bssbb", (0, "", routing_key, False, False)))


def test_kill_9_mid_burst_and_restart(tmp_path: Path) -> None:
    """kill -9 of RabbitMQ mid-burst, then a restart on the same data (durable queue, persistent
    messages): every id the log names is on the queue after the restart, none twice; the ids in
    doubt are the only others that may be there; the run says broker unreachable (exit 3)."""
    server = RabbitServer(tmp_path / "rabbit").start()
    queue = "q-kill"
    try:
        env = {**base_env(server.url), **server.env}
        proc = start_cli(
            [
                "inject",
                "--broker",
                server.url,
                "--queue",
                queue,
                "--mode",
                "burst",
                "--count",
                "60000",
                "--log-dir",
                str(tmp_path / "results"),
                "--quiet",
                "--retry-for",
                "3s",
            ],
            env,
            tmp_path,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if server.depth(queue) >= 5000:
                    break
            except Exception:  # not declared yet
                pass
            time.sleep(0.01)
        server.kill()
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 3, stderr
        assert "Traceback" not in stderr
        server.start()
        _, tasks, end = read_log(only_log(tmp_path / "results"))
        assert end is not None and end["status"] == "broker_unreachable"
        logged = {t["task_id"] for t in tasks}
        # the queue's count includes messages not yet confirmed (persisted): fewer may be logged
        assert len(logged) == len(tasks) >= 1000
        queued = server.queued_task_ids(queue)
        counts = collections.Counter(queued)
        assert max(counts.values()) == 1
        assert logged <= set(queued)
        assert set(queued) - logged <= set(end["in_doubt"])
    finally:
        server.stop()


def test_broker_rabbitmq_command(tmp_path: Path) -> None:
    """`capacity broker rabbitmq` prints the URL first, then the environment; a Celery worker and
    an inject on that URL work; Ctrl-C stops it (exit 0); a busy port is one line, exit 2."""
    import signal

    from capacity.matrix.embedded import free_port

    port = free_port()
    env = base_env("")
    proc = start_cli(["broker", "rabbitmq", "--port", str(port), "--dir", str(tmp_path / "data")], env, tmp_path)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url == f"amqp://guest:guest@127.0.0.1:{port}//"
        exports = dict(proc.stdout.readline().strip().removeprefix("export ").split("=", 1) for _ in range(2))
        assert exports["CELERY_BROKER_URL"] == url
        busy = run_cli(["broker", "rabbitmq", "--port", str(port)], env, tmp_path)
        assert busy.returncode == 2 and len(busy.stderr.strip().splitlines()) == 1, busy.stderr
        user_env = {**base_env(url), "CAPACITY_RABBITMQ_MANAGEMENT": exports["CAPACITY_RABBITMQ_MANAGEMENT"]}
        sent = run_cli(["inject", "--count", "5", "--queue", "celery", "--no-check", "--quiet"], user_env, tmp_path)
        assert sent.returncode == 0, sent.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "rabbitmq-server stopped" in stderr


def test_ctrl_c_while_rabbitmq_starts_stops_it(tmp_path: Path) -> None:
    """Issue #23: Ctrl-C during the ~6 s start-up is acted on at once (exit 130, no traceback), and
    the server being started is stopped with it: its port is free again, no process left."""
    import signal
    import socket

    from capacity.matrix.embedded import free_port

    port = free_port()
    proc = start_cli(
        ["broker", "rabbitmq", "--port", str(port), "--dir", str(tmp_path / "data")], base_env(""), tmp_path
    )
    time.sleep(1.5)
    asked = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert time.monotonic() - asked < 15  # the server's own shutdown included
    node = f"capacity-{port}@localhost".encode()
    time.sleep(8)  # an orphaned server would be listening by now (it starts in ~6 s)
    left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _has(p, node)]
    assert left == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there


def _has(cmdline: Path, needle: bytes) -> bool:
    try:
        return needle in cmdline.read_bytes()
    except OSError:  # the process ended meanwhile
        return False
