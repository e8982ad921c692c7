"""Queue monitor: depth samples in a background thread, and the queue's trend.

The samples CSV (``<task log stem>_monitor.csv`` beside the log) is written and read here only.
"""

from __future__ import annotations

import contextlib
import csv
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from capacity.brokers import QueueDepth
from capacity.errors import BrokerError, InputError
from capacity.files import create_new
from capacity.load.tasklog import iso

SAMPLES_COLUMNS = ("timestamp", "visible", "in_flight", "sent_so_far", "delayed", "failed")


@dataclass(frozen=True)
class Sample:
    t: float  # wall clock, seconds since the epoch
    visible: int
    in_flight: int | None
    sent_so_far: int
    delayed: int | None = None  # brokers that keep scheduled jobs apart (BullMQ)
    failed: int | None = None


def samples_path(log_path: Path) -> Path:
    """Where the monitor's samples of the run logged at ``log_path`` are kept."""
    return log_path.with_name(log_path.stem + "_monitor.csv")


def read_samples(path: Path) -> list[Sample]:
    """The samples of one monitor CSV, in time order (none when the file is absent)."""
    from datetime import datetime

    if not path.is_file():
        return []
    samples = []
    try:
        with path.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                samples.append(
                    Sample(
                        datetime.fromisoformat(row["timestamp"]).timestamp(),
                        int(row["visible"]),
                        int(row["in_flight"]) if row["in_flight"] else None,
                        int(row["sent_so_far"]),
                        int(row["delayed"]) if row.get("delayed") else None,
                        int(row["failed"]) if row.get("failed") else None,
                    )
                )
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a monitor samples CSV ({exc})") from None
    return sorted(samples, key=lambda s: s.t)


@dataclass(frozen=True)
class Trend:
    """Least-squares slope of visible depth over a phase, and seed 003's stability verdict."""

    slope_per_min: float | None
    samples: int
    verdict: str  # "stable", "growing", or "not enough samples"
    tolerance_per_min: float


def trend(samples: list[Sample], start: float, end: float, rate_per_min: float | None) -> Trend:
    """Seed 003: in a sustained run the queue must not grow without bound (trend ~ 0).

    Growing means the fitted slope exceeds 5% of the arrival rate (at least 1 task/min): the
    workers leave that share of arrivals behind every minute.
    """
    import numpy as np

    phase = [s for s in samples if start <= s.t <= end]
    tolerance = max(1.0, 0.05 * (rate_per_min or 0.0))
    if len(phase) < 3 or phase[-1].t - phase[0].t <= 0:
        return Trend(None, len(phase), "not enough samples", tolerance)
    t = np.array([s.t - phase[0].t for s in phase]) / 60.0
    depth = np.array([s.visible for s in phase], dtype=float)
    slope = float(np.polyfit(t, depth, 1)[0])
    return Trend(slope, len(phase), "growing" if slope > tolerance else "stable", tolerance)


class Monitor:
    """Samples ``depth()`` every ``interval_s`` until stopped; appends each sample to a CSV."""

    def __init__(
        self,
        depth: Callable[[], QueueDepth],
        sent_so_far: Callable[[], int],
        csv_path: Path,
        interval_s: float = 1.0,
        on_sample: Callable[[Sample], None] | None = None,
    ) -> None:
        self._depth = depth
        self._sent = sent_so_far
        self.csv_path = csv_path
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.errors = 0
        self.lag_s = 0.0
        self._unknown: set[int] = set()  # samples whose in-flight count was not known yet
        self._on_sample = on_sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="capacity-monitor", daemon=True)
        self._file: IO[str] | None = create_new(csv_path)
        self._writer = csv.writer(self._file)
        #: why the samples file stopped being written (a full disk), or None; samples stay in memory
        self.write_error: str | None = None
        self._write(SAMPLES_COLUMNS)

    def _write(self, row: Sequence[object]) -> None:
        if self._file is None:
            return
        try:
            self._writer.writerow(row)
            self._file.flush()
        except OSError as exc:  # the disk filled: the task log matters more; keep sampling in memory
            self.write_error = f"monitor samples not written past {len(self.samples)}: {exc.strerror}"
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def sample(self) -> Sample | None:
        try:
            depth = self._depth()
        except BrokerError:
            self.errors += 1
            return None
        sample = Sample(time.time(), depth.visible, depth.in_flight, self._sent(), depth.delayed, depth.failed)
        self.lag_s = max(self.lag_s, depth.lag_s)
        if depth.lag_s and depth.in_flight is None:
            self._unknown.add(len(self.samples))
        self.samples.append(sample)
        optional = ("" if v is None else v for v in (sample.in_flight, sample.delayed, sample.failed))
        in_flight, delayed, failed = optional
        self._write((iso(sample.t), sample.visible, in_flight, sample.sent_so_far, delayed, failed))
        if self._on_sample:
            self._on_sample(sample)
        return sample

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def wait_drained(
        self,
        limit_s: float,
        stop: threading.Event,
        idle_s: float = 30.0,
        on_idle: Callable[[Sample], None] | None = None,
    ) -> float | None:
        """Block until a sample shows nothing waiting, in flight or delayed for retry (BullMQ's
        delayed set, SQS's delayed messages; Celery's ETA/countdown tasks held by a worker are
        unacknowledged, so in flight): the drain time, or None.
        When messages sit visible with none in flight and the count unchanged for ``idle_s``,
        ``on_idle`` is called once: nothing is consuming the queue."""
        deadline = time.monotonic() + limit_s
        warned = False
        while time.monotonic() < deadline and not stop.is_set():
            last = self.samples[-1] if self.samples else None
            if last is not None and last.sent_so_far == self._sent():
                since = self._drained_since()
                if since is not None and last.t - since >= self.lag_s:
                    return since
            if not warned and on_idle is not None and last is not None and self._idle_for(last) >= idle_s:
                warned = True
                on_idle(last)
            stop.wait(min(self.interval_s / 2, 0.5))
        return None

    def _drained_since(self) -> float | None:
        """When the samples began to show the queue drained without a break since (None if the
        last one does not): a count that lags (``lag_s``) must look drained that long."""
        since = None
        for index in range(len(self.samples) - 1, -1, -1):
            sample = self.samples[index]
            if sample.visible or sample.in_flight or sample.delayed or index in self._unknown:
                break
            since = sample.t
        return since

    def _idle_for(self, last: Sample) -> float:
        """How long the queue has held ``last.visible`` messages with none in flight."""
        if last.visible == 0 or last.in_flight:
            return 0.0
        since = last.t
        for sample in reversed(self.samples):
            if sample.visible != last.visible or sample.in_flight:
                break
            since = sample.t
        return last.t - since

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
