"""The worker's resources during a cell (psutil: CPU summed over its process tree, resident
memory, bytes read, and the host's CPU), how much of the CPU other processes took (interference),
and the bottleneck note drawn from them."""

from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from capacity import files
from capacity.matrix.results import OVER_UTILIZATION, Interference, ResourceSummary
from capacity.matrix.spec import CellSpec
from capacity.units import format_size


class ResourceSampler:
    """CPU (summed over the worker's process tree), resident memory and bytes read, plus the
    host's CPU, every ``interval_s``; written to resources.csv as they come."""

    COLUMNS = (
        "t",
        "worker_cpu_percent",
        "worker_rss_bytes",
        "worker_read_bytes",
        "host_cpu_percent",
        "other_cpu_percent",
        "steal_percent",
    )

    def __init__(self, pids: list[int], path: Path, interval_s: float, own_pids: tuple[int, ...] = ()) -> None:
        self.pids = pids  # one per replica: their trees are summed
        self.path = path
        self.interval_s = interval_s
        #: processes of the run that are not the worker: this one (the injector) and a local broker
        self.own = sorted({os.getpid(), *own_pids})
        self.rows: list[tuple[float, float | None, int | None, int | None, float, float | None, float | None]] = []
        self._host: tuple[float, float, float, float] | None = None  # time, busy, steal, own CPU seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="capacity-sampler", daemon=True)
        self._last: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def start(self) -> ResourceSampler:
        psutil.cpu_percent(None)
        self._thread.start()
        return self

    def _tree(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for pid in self.pids:
            try:
                root = psutil.Process(pid)
                found += [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
        return found

    def mark(self) -> float:
        """Take a sample now (the edges of the busy window), and return its time."""
        with self._lock:
            self._sample()
            return self.rows[-1][0]

    def _sample(self) -> None:
        now = time.time()
        cpu_time, rss, read = 0.0, 0, 0
        has_io = True
        processes = self._tree()
        for process in processes:
            try:
                times = process.cpu_times()
                cpu_time += times.user + times.system + times.children_user + times.children_system
                rss += process.memory_info().rss
                try:
                    read += process.io_counters().read_chars  # includes page-cache reads: what the task read
                except (AttributeError, psutil.Error):
                    has_io = False
            except psutil.Error:
                continue
        cpu_percent = None
        worker_seconds = 0.0
        if processes and self._last is not None and now > self._last[0]:
            worker_seconds = max(0.0, cpu_time - self._last[1])
            cpu_percent = 100.0 * worker_seconds / (now - self._last[0])
        if processes:
            self._last = (now, cpu_time)
        other, steal = self._others(now, worker_seconds)
        row = (
            now,
            cpu_percent,
            rss if processes else None,
            read if processes and has_io else None,
            psutil.cpu_percent(None),
            other,
            steal,
        )
        self.rows.append(row)

    def _others(self, now: float, worker_seconds: float) -> tuple[float | None, float | None]:
        """Since the last sample, the share of the host's CPU (percent of every core) that neither
        the worker nor the run's own processes used, with the time the hypervisor gave to other
        machines (steal, where the kernel reports it) included; and the steal alone."""
        times = psutil.cpu_times()
        busy = sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
        steal = float(getattr(times, "steal", 0.0))
        own = 0.0
        for pid in self.own:
            try:
                spent = psutil.Process(pid).cpu_times()
                own += spent.user + spent.system  # not children: the worker is a child of this process
            except psutil.Error:
                continue
        last, self._host = self._host, (now, busy, steal, own)
        if last is None or now <= last[0]:
            return None, None
        capacity_s = (now - last[0]) * (psutil.cpu_count() or 1)
        others_s = max(0.0, (busy - last[1]) - worker_seconds - max(0.0, own - last[3]))
        steal_s = max(0.0, steal - last[2])
        return min(100.0, 100.0 * (others_s + steal_s) / capacity_s), min(100.0, 100.0 * steal_s / capacity_s)

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._sample()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        with files.replace(self.path) as handle:
            writer = csv.writer(handle)
            writer.writerow(self.COLUMNS)
            writer.writerows(["" if v is None else v for v in row] for row in self.rows)

    def interference(self, start: float, end: float) -> Interference:
        """What other processes (and steal) took of the host's CPU between ``start`` and ``end``."""
        rows = [r for r in self.rows if start <= r[0] <= end]
        others = [r[5] for r in rows if r[5] is not None]
        steal = [r[6] for r in rows if r[6] is not None]
        return Interference.of(
            sum(others) / len(others) if others else None, sum(steal) / len(steal) if steal else None
        )

    def summary(self, start: float, end: float) -> ResourceSummary:
        rows = [r for r in self.rows if start <= r[0] <= end]
        cpu = [r[1] for r in rows if r[1] is not None]
        rss = [r[2] for r in rows if r[2] is not None]
        reads = [(r[0], r[3]) for r in rows if r[3] is not None]
        read_rate = None
        if len(reads) >= 2 and reads[-1][0] > reads[0][0]:
            read_rate = (reads[-1][1] - reads[0][1]) / (reads[-1][0] - reads[0][0]) / 1e6
        host = [r[4] for r in rows]
        return ResourceSummary(
            samples=len(rows),
            worker_cpu_mean_percent=sum(cpu) / len(cpu) if cpu else None,
            worker_cpu_max_percent=max(cpu) if cpu else None,
            worker_rss_peak_bytes=max(rss) if rss else None,
            worker_read_mb_per_s=read_rate,
            host_cpu_mean_percent=sum(host) / len(host) if host else None,
            cores=psutil.cpu_count() or 1,
            host_memory_bytes=psutil.virtual_memory().total,
        )


#: what governs how fast a broker hands tasks to an idle worker, per broker, for the note
DELIVERY_SETTINGS = {
    "sqs": "SQS: polling_interval (Celery's default 1 s between empty polls), wait_time_seconds, "
    "worker_prefetch_multiplier",
    "": "the worker's prefetch (worker_prefetch_multiplier) and the broker's polling",
}


def local_listeners(url: str) -> tuple[int, ...]:
    """The processes listening on a broker URL's port when it is on this machine (the embedded
    Redis, a local RabbitMQ or moto): part of the run, not interference. Empty when it is remote
    or the system will not say (psutil needs privileges for other users' sockets on some systems)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ()
    if parts.hostname not in ("localhost", "127.0.0.1", "::1") or port is None:
        return ()
    try:
        found = {
            c.pid
            for c in psutil.net_connections(kind="tcp")
            if c.pid and c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        }
    except (psutil.Error, OSError):
        return ()
    return tuple(sorted(found))


def bottleneck(
    cell: CellSpec,
    metrics: dict[str, Any],
    resources: ResourceSummary | None,
    rate_limit: str | None = None,
    broker: str = "",
    interference: Interference | None = None,
) -> str:
    """What limited the cell, from what was measured (seed 003 asks: CPU, decoding, disk, network).

    CPU: the worker's processes used >= 80% of the cores they could use (min(concurrency, cores)).
    Slots: utilisation X*S/c >= 0.8 with CPU below that (tasks wait inside: I/O, sleeps, APIs).
    Arrivals: a sustained cell whose slots were mostly idle kept up with the offered rate.
    Memory: peak resident memory over 80% of the host's. Network is not measured here.
    Interference: other processes (and steal) took >= 25% of the host's CPU: the cell is not
    representative, whatever else it shows. Over-utilisation: X*S/c above 105% means the worker ran
    more tasks at once than the cell asked (it ignores the concurrency it was given).
    Host CPU: every core of the host >= 90% busy with the worker's own share >= 80% of it: more
    concurrency cannot help. Delivery: most of the wait passed before the worker received the task while
    slots were idle (W from send >= 2x W from receipt and >= 0.5 s more, utilisation < 50%)."""
    notes = []
    throughput = metrics.get("throughput_per_min")
    utilization = metrics.get("utilization")
    if utilization is not None and utilization > OVER_UTILIZATION:
        notes.append(f"the worker does not run at the concurrency asked (U = {utilization:.0%})")
    if interference is not None and interference.disturbed:
        notes.append(
            f"other processes took {interference.other_cpu_percent:.0f}% of the CPU: this cell is not representative"
        )
    if rate_limit is not None and throughput is not None:
        from capacity.units import parse_rate_limit

        max_jobs, duration_s = parse_rate_limit(rate_limit, "rate_limit")
        limit_per_min = max_jobs / duration_s * 60
        if throughput >= 0.9 * limit_per_min:
            notes.append(f"rate-limited: X {throughput:,.0f}/min at the limiter's {limit_per_min:,.0f}/min")
    resources = resources or ResourceSummary()
    cores = int(resources.cores or 1)
    usable = min(cell.total_concurrency, cores)
    cpu = resources.worker_cpu_mean_percent
    rss = resources.worker_rss_peak_bytes
    if rss is not None and resources.host_memory_bytes and rss > 0.8 * resources.host_memory_bytes:
        notes.append(f"memory: {format_size(rss)} resident")
    host = resources.host_cpu_mean_percent
    disturbed = interference is not None and bool(interference.disturbed)
    # the host is saturated by the worker itself only when its own share is most of the busy time
    busy_host = host is not None and host >= 90.0
    saturated = busy_host and cpu is not None and host is not None and cpu >= 0.8 * host * cores
    wait, wait_received = metrics.get("wait_mean_s"), metrics.get("wait_from_received_mean_s")
    if disturbed:
        pass  # said above: nothing else about this cell's limits can be trusted
    elif saturated and host is not None:
        notes.append(f"host CPU saturated ({host:.0f}% of {cores} cores): more concurrency will not help")
    elif busy_host and host is not None:
        worker_share = "an unmeasured share" if cpu is None else f"{cpu:.0f}% of {100 * cores}%"
        notes.append(
            f"host CPU {host:.0f}% busy but the worker used {worker_share}: other processes took the rest, "
            "this cell is not representative"
        )
    elif cpu is not None and cpu >= 80.0 * usable:
        notes.append(f"worker CPU: {cpu:.0f}% of {usable} usable core(s)")
    elif (
        wait is not None
        and wait_received is not None
        and wait >= 2 * wait_received
        and wait - wait_received >= 0.5
        and (utilization is None or utilization < 0.5)
    ):
        setting = DELIVERY_SETTINGS.get(broker, DELIVERY_SETTINGS[""])
        notes.append(
            f"delivery-bound: W {wait:.2f} s from send but {wait_received:.2f} s from receipt, slots "
            f"{(utilization or 0):.0%} busy: tasks wait for the broker to hand them over ({setting})"
        )
    elif utilization is not None and utilization >= 0.8:
        cpu_text = "" if cpu is None else f", CPU {cpu:.0f}%"
        notes.append(f"slots: {utilization:.0%} busy{cpu_text}; tasks wait inside (I/O, sleep): more concurrency helps")
    elif cell.mode.mode != "burst" and utilization is not None:
        notes.append(f"none: kept up with the arrivals ({utilization:.0%} busy)")
    read = resources.worker_read_mb_per_s
    if read:
        notes.append(f"read {read:.0f} MB/s")
    return "; ".join(notes) or "not measured"
