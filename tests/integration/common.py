"""What every broker must do, written once and subclassed per broker (kombu's
t/integration/common.py): a burst and a sustained run through ``capacity inject`` against the real
broker, each logged task executed exactly once by a real ``celery worker``. Subclasses say how to
reach their broker (``url``, ``queue_args``, ``queued_ids``)."""

from __future__ import annotations

import collections
import subprocess
from pathlib import Path

import pytest

from tests.realbrokers import base_env, celery_worker, read_log, run_cli, wait_for_executed


def only_log(log_dir: Path) -> Path:
    logs = sorted(log_dir.glob("worker_tasks_*.log"))
    assert len(logs) == 1, logs
    return logs[0]


class BrokerContract:
    """What every broker must do; subclasses say how to reach theirs."""

    queue = "celery"

    def url(self) -> str:
        raise NotImplementedError

    def queue_args(self) -> list[str]:
        return ["--queue", self.queue]

    def queued_ids(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """The environment of the processes the tests start (the CLI, the worker)."""
        return base_env(self.url())

    def inject(self, tmp_path: Path, *args: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
        log_dir = tmp_path / "results"
        proc = run_cli(
            [
                "inject",
                "--broker",
                self.url(),
                *self.queue_args(),
                "--log-dir",
                str(log_dir),
                "--upload-dir",
                str(tmp_path / "uploads"),
                *args,
            ],
            self.env(),
            tmp_path,
        )
        # --monitor with no worker draining the queue ends with exit 1 (issue #12), after the log
        drained = "--monitor" not in args or proc.returncode == 0
        assert drained or (proc.returncode == 1 and "did not drain" in proc.stderr), proc.stderr
        return only_log(log_dir), proc

    def test_burst_executed_exactly_once(self, tmp_path: Path) -> None:
        log, _ = self.inject(tmp_path, "--mode", "burst", "--count", "150", "--size", "10kB", "--quiet")
        run, tasks, end = read_log(log)
        assert run["mode"] == "burst" and run["count"] == 150 and run["size_bytes"] == 10_000
        assert end is not None and end["status"] == "completed" and end["sent"] == 150
        logged = [t["task_id"] for t in tasks]
        assert len(set(logged)) == 150
        executed_file = tmp_path / "executed.jsonl"
        with celery_worker(self.url(), executed_file, queues=self.queue):
            executed = wait_for_executed(executed_file, 150)
        counts = collections.Counter(executed)
        assert set(counts) == set(logged)
        assert max(counts.values()) == 1

    def test_sustained_executed_exactly_once_and_on_time(self, tmp_path: Path) -> None:
        executed_file = tmp_path / "executed.jsonl"
        with celery_worker(self.url(), executed_file, queues=self.queue):
            log, proc = self.inject(
                tmp_path,
                "--mode",
                "sustained",
                "--rate",
                "20/s",
                "--count",
                "40",
                "--monitor",
                "--monitor-interval",
                "200ms",
                "--monitor-for",
                "60s",
                "--user-id",
                "u-7",
            )
            executed = wait_for_executed(executed_file, 40)
        run, tasks, end = read_log(log)
        assert run["mode"] == "sustained" and run["rate_per_s"] == 20 and run["user_id"] == "u-7"
        assert end is not None and end["status"] == "completed"
        assert collections.Counter(executed) == collections.Counter(t["task_id"] for t in tasks)
        # open loop: task i is scheduled i / rate after the first, whatever the broker did
        from datetime import datetime

        first = datetime.fromisoformat(tasks[0]["scheduled_at"])
        offsets = [(datetime.fromisoformat(t["scheduled_at"]) - first).total_seconds() for t in tasks]
        assert offsets == pytest.approx([i / 20 for i in range(40)], abs=1e-5)
        assert end["lateness"]["late_over_1s"] == 0
        monitor_csv = log.with_name(log.stem + "_monitor.csv")
        header = monitor_csv.read_text().splitlines()[0]
        assert header == "timestamp,visible,in_flight,sent_so_far,delayed,failed"
        assert "queue trend over the sustained phase" in proc.stderr
