"""BullMQ injection speed and accuracy, against the official Python client in the same run.

    .venv/bin/python benchmarks/bench_bullmq.py [--burst 100000] [--sustained-seconds 30]

1. Burst: capacity inject --protocol bullmq vs bullmq's own Queue.addBulk (the official Python
   client, asyncio, one call per 1,000 jobs) on the same redis-server (target >= 2x).
2. Sustained 1,000 jobs/s: achieved rate within 0.5% of the target, p99 lateness under 2 ms.
Prints ratios measured here, not absolute claims: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _servers import RedisServer

from capacity.load.inject import InjectConfig, inject
from capacity.load.schedules import Burst, fixed_rate

DATA = {"file": "/up/a.jpg", "size_bytes": 2_000_000, "user_id": "u1", "tenant": "t1"}


def config(url: str, schedule, log_dir: Path, queue: str) -> InjectConfig:  # type: ignore[no-untyped-def]
    return InjectConfig(
        broker_url=url, schedule=schedule, log_dir=log_dir, kwargs=DATA, queue=queue, protocol="bullmq", task="photo"
    )


async def add_bulk(url: str, queue: str, n: int) -> float:
    from bullmq import Queue

    host, port = url.split("//")[1].split("/")[0].split(":")
    q = Queue(queue, {"connection": {"host": host, "port": int(port)}})
    start = time.perf_counter()
    for i in range(0, n, 1000):
        await q.addBulk([{"name": "photo", "data": DATA} for _ in range(min(1000, n - i))])
    elapsed = time.perf_counter() - start
    await q.close()
    return n / elapsed


def burst(server: RedisServer, n: int, tmp: Path, repeats: int = 3) -> None:
    client = server.client()
    ours, theirs = [], []
    for round_ in range(repeats):
        client.flushall()
        result = inject(config(server.url, Burst(n), tmp / f"b{round_}", "bench"))
        assert client.llen("bull:bench:wait") == n
        ours.append(result.sent / result.elapsed_s)
        client.flushall()
        theirs.append(asyncio.run(add_bulk(server.url, "bench", n)))
        assert client.llen("bull:bench:wait") == n
    mine, official = statistics.median(ours), statistics.median(theirs)
    print(
        f"burst of {n:,} BullMQ jobs (median of {repeats}): capacity inject {mine:,.0f}/s, "
        f"bullmq Queue.addBulk {official:,.0f}/s: {mine / official:.1f}x (target >= 2x)"
    )


def sustained(server: RedisServer, seconds: float, tmp: Path) -> None:
    server.client().flushall()
    rate = 1000.0
    result = inject(config(server.url, fixed_rate(rate, count=int(rate * seconds)), tmp / "s", "steady"))
    late = result.lateness
    achieved = (result.sent - 1) / result.elapsed_s if result.elapsed_s else 0.0
    print(
        f"sustained {rate:,.0f}/s for {seconds:g} s: {achieved:,.1f}/s ({100 * (achieved / rate - 1):+.2f}%, "
        f"target within 0.5%); lateness p50 {float(late['p50_s'] or 0) * 1000:.3f} ms, "
        f"p99 {float(late['p99_s'] or 0) * 1000:.3f} ms (target <= 2 ms), max {float(late['max_s'] or 0) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--sustained-seconds", type=float, default=30.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "redis").mkdir()
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            burst(server, options.burst, Path(tmp))
            sustained(server, options.sustained_seconds, Path(tmp))
        finally:
            server.stop()
