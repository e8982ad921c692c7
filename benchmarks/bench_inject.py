"""Injection speed, measured against baselines in the same run.

    .venv/bin/python benchmarks/bench_inject.py [--burst 100000] [--sustained-seconds 60]

1. Redis burst: capacity inject vs a loop of Celery's apply_async (target >= 100x) and vs raw
   redis-py pipelined multi-value LPUSH of prebuilt messages of the same size (target >= 50%).
2. SQS (moto server on 127.0.0.1): API calls per 1,000 tasks (target 100) and rate vs a plain
   boto3 send_message loop.
3. Sustained 1,000 tasks/s: achieved rate within 0.5% of target, p99 lateness under 2 ms.
Prints ratios, not absolute claims: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from _servers import MotoSQS, RedisServer

from capacity.brokers import BrokerOptions, open_broker
from capacity.load.inject import InjectConfig, inject
from capacity.load.payload import default_payload
from capacity.load.schedules import Burst, fixed_rate

# A short file path keeps the messages near the ~900 bytes the issue names.
KWARGS = {"file": "/up/a.bin", "size_bytes": 50_000_000, "user_id": "u1"}


def config(url: str, schedule, log_dir: Path, **extra) -> InjectConfig:  # type: ignore[no-untyped-def]
    args, kwargs = default_payload(None)
    return InjectConfig(
        broker_url=url,
        schedule=schedule,
        log_dir=log_dir,
        args=args,
        kwargs=kwargs,
        file_reference=KWARGS["file"],
        size_bytes=KWARGS["size_bytes"],
        user_id="u1",
        **extra,
    )


def redis_burst(server: RedisServer, n: int, tmp: Path, repeats: int = 3) -> dict[str, float]:
    """Median of ``repeats`` interleaved rounds of the three ways to fill the queue."""
    from celery import Celery

    client = server.client()
    app = Celery("bench", broker=server.url, set_as_current=False)
    app.conf.task_serializer = "json"
    apply_n = max(1000, n // 50)
    ours, apply_rates, raw_rates = [], [], []
    message_bytes = 0
    for round_ in range(repeats):
        client.flushall()
        result = inject(config(server.url, Burst(n), tmp / f"burst{round_}"))
        ours.append(result.sent / result.elapsed_s)
        sample = client.lindex("celery", 0)
        message_bytes = len(sample)
        client.flushall()

        with app.producer_or_acquire() as producer:
            app.send_task("capacity.worker.process_file", kwargs=KWARGS, producer=producer)  # warm up
            start = time.perf_counter()
            for _ in range(apply_n):
                app.send_task("capacity.worker.process_file", kwargs=KWARGS, producer=producer)
            apply_rates.append(apply_n / (time.perf_counter() - start))
        client.flushall()

        # the ceiling: every message built beforehand, as bytes (redis-py's cheapest input)
        payload = sample.decode()
        old_id = json.loads(payload)["headers"]["id"]
        prebuilt = [payload.replace(old_id, str(uuid.uuid4())).encode() for _ in range(n)]
        start = time.perf_counter()
        for i in range(0, n, 1000):
            pipe = client.pipeline(transaction=True)
            pipe.lpush("celery", *prebuilt[i : i + 1000])
            pipe.execute()
        raw_rates.append(n / (time.perf_counter() - start))
    client.flushall()
    return {
        "message_bytes": message_bytes,
        "capacity_per_s": statistics.median(ours),
        "apply_async_per_s": statistics.median(apply_rates),
        "raw_lpush_per_s": statistics.median(raw_rates),
    }


#: issue #12's shape: positional arguments with per-task values, as the image-resize app takes them
PER_TASK_ARGS = ["$uuid", "img-$seq.png"]
PER_TASK_KWARGS = {"request_id": "$task_id"}


def redis_burst_per_task(server: RedisServer, n: int, tmp: Path, repeats: int = 3) -> dict[str, float]:
    """Per-task substitution ($uuid, $seq, $task_id in every message) against an apply_async loop
    that builds the same per-task arguments."""
    from celery import Celery

    client = server.client()
    app = Celery("bench", broker=server.url, set_as_current=False)
    app.conf.task_serializer = "json"
    apply_n = max(1000, n // 50)
    ours, apply_rates = [], []
    for round_ in range(repeats):
        client.flushall()
        cfg = InjectConfig(
            broker_url=server.url,
            schedule=Burst(n),
            task="resize.async_resize",
            log_dir=tmp / f"pertask{round_}",
            args=PER_TASK_ARGS,
            kwargs=PER_TASK_KWARGS,
        )
        result = inject(cfg)
        ours.append(result.sent / result.elapsed_s)
        client.flushall()
        with app.producer_or_acquire() as producer:
            start = time.perf_counter()
            for seq in range(apply_n):
                task_id = str(uuid.uuid4())
                app.send_task(
                    "resize.async_resize",
                    args=[str(uuid.uuid4()), f"img-{seq}.png"],
                    kwargs={"request_id": task_id},
                    task_id=task_id,
                    producer=producer,
                )
            apply_rates.append(apply_n / (time.perf_counter() - start))
    client.flushall()
    return {"capacity_per_s": statistics.median(ours), "apply_async_per_s": statistics.median(apply_rates)}


def sqs_burst(server: MotoSQS, n: int, tmp: Path) -> dict[str, float]:
    queue = "bench-" + uuid.uuid4().hex[:8]
    calls = []

    def factory(url: str, options: BrokerOptions):  # type: ignore[no-untyped-def]
        broker = open_broker(url, options)
        calls.append(broker)
        return broker

    result = inject(config(server.url, Burst(n), tmp / "sqs", queue=queue), broker_factory=factory)
    ours = result.sent / result.elapsed_s
    api_calls = calls[0].api_calls
    client, url = server.client(), server.queue_url(queue)
    body = "x" * 900
    loop_n = max(200, n // 10)
    start = time.perf_counter()
    for _ in range(loop_n):
        client.send_message(QueueUrl=url, MessageBody=body)
    loop_rate = loop_n / (time.perf_counter() - start)
    return {
        "capacity_per_s": ours,
        "api_calls_per_1000": api_calls * 1000 / result.sent,
        "send_message_loop_per_s": loop_rate,
    }


def sustained(server: RedisServer, seconds: float, tmp: Path) -> dict[str, float]:
    server.client().flushall()
    rate = 1000.0
    result = inject(config(server.url, fixed_rate(rate, duration_s=seconds), tmp / "sustained"), stop=threading.Event())
    achieved = result.sent / result.elapsed_s
    return {
        "target_per_s": rate,
        "achieved_per_s": achieved,
        "rate_error_pct": abs(achieved - rate) / rate * 100,
        "lateness_p50_ms": (result.lateness["p50_s"] or 0) * 1000,
        "lateness_p99_ms": (result.lateness["p99_s"] or 0) * 1000,
        "lateness_max_ms": (result.lateness["max_s"] or 0) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--sqs-burst", type=int, default=5_000)
    parser.add_argument("--sustained-seconds", type=float, default=60.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "redis").mkdir()
        redis_server = RedisServer(tmp / "redis").start()
        moto = MotoSQS().start()
        try:
            r = redis_burst(redis_server, options.burst, tmp)
            print(
                f"Redis burst of {options.burst:,} tasks, {r['message_bytes']:.0f}-byte messages (median of 3 rounds):"
            )
            print(f"  capacity inject       {r['capacity_per_s']:>12,.0f} tasks/s")
            print(
                f"  Celery apply_async    {r['apply_async_per_s']:>12,.0f} tasks/s   "
                f"capacity is {r['capacity_per_s'] / r['apply_async_per_s']:,.0f}x (target >= 100x)"
            )
            print(
                f"  raw LPUSH, prebuilt   {r['raw_lpush_per_s']:>12,.0f} tasks/s   "
                f"capacity is {r['capacity_per_s'] / r['raw_lpush_per_s']:.0%} of it (target >= 50%)"
            )
            p = redis_burst_per_task(redis_server, options.burst, tmp)
            print(f"Redis burst of {options.burst:,} tasks with per-task values (args {PER_TASK_ARGS}):")
            print(f"  capacity inject       {p['capacity_per_s']:>12,.0f} tasks/s")
            print(
                f"  Celery apply_async    {p['apply_async_per_s']:>12,.0f} tasks/s   "
                f"capacity is {p['capacity_per_s'] / p['apply_async_per_s']:,.0f}x (target >= 100x)"
            )
            s = sqs_burst(moto, options.sqs_burst, tmp)
            print(f"SQS burst of {options.sqs_burst:,} tasks (moto server on 127.0.0.1):")
            print(f"  API calls per 1,000 tasks {s['api_calls_per_1000']:.0f} (target 100)")
            print(
                f"  capacity inject       {s['capacity_per_s']:>12,.0f} tasks/s   "
                f"{s['capacity_per_s'] / s['send_message_loop_per_s']:.1f}x a boto3 send_message loop "
                f"({s['send_message_loop_per_s']:,.0f}/s)"
            )
            if options.sustained_seconds > 0:
                u = sustained(redis_server, options.sustained_seconds, tmp)
                print(f"Sustained {u['target_per_s']:,.0f} tasks/s for {options.sustained_seconds:g} s on Redis:")
                print(f"  achieved {u['achieved_per_s']:,.2f}/s, {u['rate_error_pct']:.3f}% off (target < 0.5%)")
                print(
                    f"  lateness p50 {u['lateness_p50_ms']:.3f} ms, p99 {u['lateness_p99_ms']:.3f} ms "
                    f"(target < 2 ms), max {u['lateness_max_ms']:.2f} ms"
                )
        finally:
            redis_server.stop()
            moto.stop()


if __name__ == "__main__":
    main()
