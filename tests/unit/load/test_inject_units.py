"""Unit tests for the pieces of inject that need no broker: secrets, payloads, task log, registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capacity.brokers import BrokerOptions, open_broker, resolve_broker_url
from capacity.errors import InputError
from capacity.load.payload import default_payload, existing_file, load_template, substitute, synthetic_file
from capacity.load.tasklog import TaskLogWriter, log_path
from capacity.secrets import mask, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw1234@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:pw1234@host/1", "redis://user:***@host/1"),
        ("sqs://AKIAEXAMPLE:abc%2Fdef@127.0.0.1:5000", "sqs://***:***@127.0.0.1:5000"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis+socket:///tmp/redis.sock", "redis+socket:///tmp/redis.sock"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redacted_secrets_are_masked_elsewhere_too() -> None:
    redact_url("redis://:another-secret-99@h:1/0")
    assert mask("auth failed for another-secret-99 at h") == "auth failed for *** at h"


def test_broker_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CAPACITY_BROKER_URL", "CELERY_BROKER_URL", "SQS_QUEUE_NAME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InputError, match="no broker"):
        resolve_broker_url(None)
    monkeypatch.setenv("SQS_QUEUE_NAME", "videos")  # seed 003's environment
    assert resolve_broker_url(None) == ("sqs://", "videos")
    # issue #12: $SQS_QUEUE_NAME names the queue whenever it is set, whatever gives the URL
    monkeypatch.setenv("CELERY_BROKER_URL", "sqs://c")
    assert resolve_broker_url(None) == ("sqs://c", "videos")
    monkeypatch.setenv("CAPACITY_BROKER_URL", "redis://a")
    assert resolve_broker_url(None) == ("redis://a", "videos")
    assert resolve_broker_url("redis://flag") == ("redis://flag", "videos")
    monkeypatch.delenv("SQS_QUEUE_NAME")
    assert resolve_broker_url("redis://flag") == ("redis://flag", None)


def test_unknown_scheme_suggests() -> None:
    with pytest.raises(InputError, match=r"did you mean sqs://\?"):
        open_broker("sqss://x", BrokerOptions())


def test_synthetic_file_is_created_once(tmp_path: Path) -> None:
    first = synthetic_file(3_000_000, str(tmp_path))
    second = synthetic_file(3_000_000, str(tmp_path))
    assert first.created and not second.created
    assert Path(first.reference).stat().st_size == 3_000_000


def test_a_payload_larger_than_the_free_disk_is_refused_before_writing(tmp_path: Path) -> None:
    # a fuzzed --size 99999999999999 wrote until the disk was full
    from capacity.errors import WriteFailed

    with pytest.raises(WriteFailed, match=r"No space left for the payload file: --size 1000000 TB, .* has .* free"):
        synthetic_file(10**18, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_existing_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        existing_file(str(tmp_path / "missing.mp4"))
    (tmp_path / "a.mp4").write_bytes(b"12345")
    assert existing_file(str(tmp_path / "a.mp4")).size_bytes == 5


def test_payload_template_and_placeholders(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"args": ["$file"], "kwargs": {"n": "$size_bytes", "nested": ["$user_id"]}}')
    args, kwargs = load_template(path)
    values = {"$file": "/f", "$size_bytes": 7, "$user_id": "u"}
    assert substitute(args, values) == ["/f"]
    assert substitute(kwargs, values) == {"n": 7, "nested": ["u"]}
    path.write_text("{nope")
    with pytest.raises(InputError, match=r"t.json:1: not valid JSON"):
        load_template(path)
    assert default_payload({"priority": "high"})[1]["priority"] == "high"


def test_task_log_lines(tmp_path: Path) -> None:
    path = log_path(tmp_path, 0.0)
    assert path.name == "worker_tasks_19700101_000000.log"
    writer = TaskLogWriter(path, {"run_id": "r"})
    writer.write_batch(["a", "b"], ["t0", "t1"], "s", 10, 'q"x')
    writer.close({"status": "completed"})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"type": "run", "version": 1, "run_id": "r"}
    assert lines[1] == {"task_id": "a", "scheduled_at": "t0", "sent_at": "s", "size_bytes": 10, "queue": 'q"x'}
    assert lines[-1] == {"type": "end", "tasks": 2, "status": "completed"}
    assert log_path(tmp_path, 0.0).name == "worker_tasks_19700101_000000_2.log"


def test_trend_verdict_follows_seed_003() -> None:
    from capacity.load.monitor import Sample, trend

    flat = [Sample(t=float(t), visible=5 + (t % 2), in_flight=1, sent_so_far=t) for t in range(0, 300, 5)]
    growing = [Sample(t=float(t), visible=t // 6, in_flight=1, sent_so_far=t) for t in range(0, 300, 5)]
    stable = trend(flat, 0, 300, rate_per_min=60)
    assert stable.verdict == "stable" and abs(stable.slope_per_min or 0) < 1
    grows = trend(growing, 0, 300, rate_per_min=60)  # 10 tasks/min left behind of 60 arriving
    assert grows.verdict == "growing" and grows.slope_per_min == pytest.approx(10, rel=0.05)
    assert trend(flat[:2], 0, 300, 60).verdict == "not enough samples"


def test_task_log_shared_schedule_time_gives_the_same_lines(tmp_path: Path) -> None:
    one, many = tmp_path / "one.log", tmp_path / "many.log"
    for path, scheduled in ((one, "t0"), (many, ["t0", "t0", "t0"])):
        writer = TaskLogWriter(path, {})
        writer.write_batch(["a", "b", "c"], scheduled, "s", 1, "q")
        writer.close({})
    assert one.read_text() == many.read_text()
    assert [json.loads(line)["task_id"] for line in one.read_text().splitlines()[1:4]] == ["a", "b", "c"]


def test_placeholders_inside_strings_and_per_task_values_match_celerys_own_message() -> None:
    # issue #12: "lt-$injected_at" stayed literal and there was no $task_id or $seq; every task of
    # a burst got identical arguments. Each spliced message must equal what Celery's send_task
    # builds for that task's own arguments.
    import base64
    import json as json_module
    from datetime import UTC, datetime

    from kombu import Connection

    from capacity.brokers.messages import capture, per_task_marker
    from capacity.load.payload import PerTaskValue

    values = {"$run_id": "r1", "$file": "/f", **{f"${n}": PerTaskValue(n) for n in ("task_id", "seq", "uuid")}}
    args = substitute(["$uuid", "img-$seq.png", "$seq", "$$seq", "$run_id/$file"], values, per_task_marker)
    kwargs = substitute({"id": "$task_id", "n": "$seq"}, values, per_task_marker)
    now = datetime.now(UTC)
    with Connection("memory://") as conn:
        template = capture(conn.default_channel, "resize.async_resize", "celery", args, kwargs)
        columns = {"task_id": ["T-1", "T-2"], "seq": ["7", "8"], "uuid": ["U-1", "U-2"]}
        messages = template.render(["T-1", "T-2"], args, kwargs, now, columns)
        for i, raw in enumerate(messages):
            message = json_module.loads(raw)
            body = json_module.loads(base64.b64decode(message["body"]))
            seq = 7 + i
            assert body[0] == [f"U-{i + 1}", f"img-{seq}.png", seq, "$seq", "r1//f"]
            assert body[1] == {"id": f"T-{i + 1}", "n": seq}
            assert message["headers"]["id"] == f"T-{i + 1}"
            assert message["headers"]["argsrepr"] == repr(body[0])
            assert message["headers"]["kwargsrepr"] == repr(body[1])
            reference = capture(conn.default_channel, "resize.async_resize", "celery", body[0], body[1])
            expected = json_module.loads(reference.render([f"T-{i + 1}"], body[0], body[1], now)[0])
            for m in (expected, message):  # per producing app
                m["properties"].pop("reply_to")
                m["headers"].pop("origin")
            assert expected == message


def test_payload_spec_sends_reference_defaults_only_to_the_reference_task(tmp_path: Path) -> None:
    from capacity.errors import InputError as Bad
    from capacity.load.payload import REFERENCE_TASK, PayloadSpec

    assert PayloadSpec().resolve("app.resize")[:2] == ([], {})
    assert PayloadSpec(args=["$uuid"]).resolve("app.resize")[:2] == (["$uuid"], {})
    assert set(PayloadSpec(kwargs={"x": 1}).resolve(REFERENCE_TASK)[1]) == {
        "file",
        "size_bytes",
        "user_id",
        "injected_at",
        "x",
    }
    lines = tmp_path / "payloads.jsonl"
    lines.write_text('{"args": ["a", 1]}\n\n{"kwargs": {"k": "$seq"}}\n')
    args, kwargs, rows = PayloadSpec(file=lines).resolve("app.resize")
    assert rows == ((["a", 1], {}), ([], {"k": "$seq"})) and (args, kwargs) == (["a", 1], {})
    with pytest.raises(Bad, match="exclude"):
        PayloadSpec(args=[1], file=lines).resolve("app.resize")
    lines.write_text('{"args": "nope"}\n')
    with pytest.raises(Bad, match=r"payloads.jsonl:1: args must be a list"):
        PayloadSpec(file=lines).resolve("app.resize")


def test_the_log_reserve_falls_back_to_zeros_where_fallocate_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # some network and FUSE file systems answer EOPNOTSUPP: the reserve must still be held
    import errno
    import os

    from capacity.load.tasklog import RESERVE_BYTES, TaskLogWriter

    def unsupported(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    writer = TaskLogWriter(tmp_path / "worker_tasks_x.log", {"run_id": "r"})
    reserve = tmp_path / "worker_tasks_x.log.reserve"
    assert reserve.stat().st_size == RESERVE_BYTES
    writer.write_batch(["a", "b"], "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00", 1, "q")
    writer.close({"status": "completed"})
    assert not reserve.exists()
    lines = (tmp_path / "worker_tasks_x.log").read_text().splitlines()
    assert len(lines) == 4 and '"tasks": 2' in lines[-1]


def test_a_queue_with_jobs_delayed_for_retry_is_not_drained(tmp_path: Path) -> None:
    # #21: `inject --monitor` said "drained" with 5 BullMQ jobs still delayed for retry
    import threading

    from capacity.brokers import QueueDepth
    from capacity.load.monitor import Monitor

    depths = iter([QueueDepth(0, 0, delayed=5), QueueDepth(0, 0, delayed=5), QueueDepth(0, 0, delayed=0)])
    last = QueueDepth(0, 0, delayed=0)

    def depth() -> QueueDepth:
        return next(depths, last)

    monitor = Monitor(depth, lambda: 10, tmp_path / "monitor.csv", interval_s=0.01)
    monitor.sample()  # 5 delayed: not drained
    assert monitor.wait_drained(0.05, threading.Event()) is None
    monitor.sample()
    third = monitor.sample()  # nothing delayed any more
    assert third is not None and monitor.wait_drained(1.0, threading.Event()) == third.t
    monitor.stop()


def test_a_link_at_the_payload_files_name_is_not_followed(tmp_path: Path) -> None:
    # #23: a symlink at the payload file's name was reused: the tasks pointed at its target
    from capacity.load.payload import synthetic_file

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x" * 100)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "capacity_payload_100.bin").symlink_to(secret)
    made = synthetic_file(100, str(uploads))
    assert made.created and made.reference == str(uploads.resolve() / "capacity_payload_100.bin")
    assert not Path(made.reference).is_symlink() and Path(made.reference).stat().st_size == 100
    assert secret.read_bytes() == b"x" * 100  # the target is untouched
