"""RabbitMQ injection speed (issue #24), measured against baselines in the same run.

    .venv/bin/python benchmarks/bench_rabbitmq.py [--burst 30000] [--rounds 3]

On a local rabbitmq-server (Debian's package, started as LocalRabbitMQ), the same reference task
and queue, each round interleaved, median of the rounds:
1. capacity inject, a burst of ``--burst`` tasks (publisher confirms, durable queue, persistent);
2. Celery's own ``send_task`` with ``confirm_publish`` (the transport option that makes Celery
   wait for the broker's confirm): target capacity >= 20x it;
3. the server's ceiling: the same messages prebuilt as frames, written at once by a raw confirmed
   publisher that waits for every confirm at the end: how far capacity is from what the server
   itself accepts; and py-amqp's own ``basic_publish`` in batches of 1,000 with pipelined confirms.
The queue is emptied between measurements (a deep queue slows RabbitMQ down).
Prints ratios, not absolute claims: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from capacity.brokers import BrokerOptions, open_broker
from capacity.brokers.amqp import AMQPBroker, _Confirms
from capacity.brokers.messages import new_ids
from capacity.load.inject import InjectConfig, inject
from capacity.load.payload import default_payload
from capacity.load.schedules import Burst
from capacity.matrix.embedded import LocalRabbitMQ

QUEUE = "bench"
KWARGS = {"file": "/up/a.bin", "size_bytes": 50_000_000, "user_id": "u1", "injected_at": None}
TASK = "capacity.worker.process_file"


def ours(url: str, n: int, tmp: Path) -> float:
    args, kwargs = default_payload(None)
    config = InjectConfig(
        broker_url=url,
        schedule=Burst(n),
        log_dir=tmp,
        queue=QUEUE,
        args=args,
        kwargs=kwargs,
        file_reference=KWARGS["file"],
        size_bytes=50_000_000,
        user_id="u1",
        check_task=False,
    )
    result = inject(config)
    assert result.status == "completed", result.error
    return result.sent / result.elapsed_s


def send_task_confirmed(url: str, n: int) -> float:
    from celery import Celery

    app = Celery("bench", broker=url, set_as_current=False)
    app.conf.broker_transport_options = {"confirm_publish": True}
    with app.producer_or_acquire() as producer:
        app.send_task(TASK, kwargs=KWARGS, queue=QUEUE, producer=producer)  # warm up (declares the queue)
        start = time.perf_counter()
        for _ in range(n):
            app.send_task(TASK, kwargs=KWARGS, queue=QUEUE, producer=producer)
        return n / (time.perf_counter() - start)


def raw_frames(broker: AMQPBroker, n: int) -> float:
    """Every frame built beforehand, written at once, then every confirm awaited."""
    template = broker.template(TASK, QUEUE, [], KWARGS, None, None)
    data = b"".join(template.render(new_ids(n), [], KWARGS, datetime.now(UTC)))
    confirms = _Confirms(broker._next_tag, n)
    broker._next_tag += n
    broker._confirms = confirms
    start = time.perf_counter()
    broker._write(data)
    broker._await(confirms)
    elapsed = time.perf_counter() - start
    broker._confirms = None
    assert confirms.undecided == 0
    return n / elapsed


def py_amqp_pipelined(port: int, n: int, body: bytes, properties: dict[str, object]) -> float:
    import amqp

    connection = amqp.Connection(f"127.0.0.1:{port}")
    connection.connect()
    channel = connection.channel()
    channel.confirm_select()
    acked = [0]
    channel.events["basic_ack"].add(lambda tag, multiple: acked.__setitem__(0, max(acked[0], tag)))
    start = time.perf_counter()
    sent = 0
    while sent < n:
        for _ in range(min(1000, n - sent)):
            channel.basic_publish(amqp.Message(body, **properties), exchange="", routing_key=QUEUE)
            sent += 1
        while acked[0] < sent:
            connection.drain_events(timeout=30)
    elapsed = time.perf_counter() - start
    connection.close()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=30_000)
    parser.add_argument("--send-task", type=int, default=2_000, help="tasks for Celery's send_task loop")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    rates: dict[str, list[float]] = {"ours": [], "send_task": [], "raw": [], "py_amqp": []}
    with tempfile.TemporaryDirectory() as name, LocalRabbitMQ() as server:
        tmp = Path(name)
        with open_broker(server.url, BrokerOptions(queue=QUEUE)) as broker:
            assert isinstance(broker, AMQPBroker)
            broker.template(TASK, QUEUE, [], KWARGS, None, None)  # declares the queue as Celery does
            assert broker._template_args is not None
            message = broker._template_args[0]  # Celery's prepared message, for py-amqp's own publish
            body, properties = str(message.body).encode(), dict(message.properties)
            for round_ in range(options.rounds):
                broker.purge()
                rates["ours"].append(ours(server.url, options.burst, tmp / f"r{round_}"))
                broker.purge()
                rates["send_task"].append(send_task_confirmed(server.url, options.send_task))
                broker.purge()
                rates["raw"].append(raw_frames(broker, options.burst))
                broker.purge()
                rates["py_amqp"].append(py_amqp_pipelined(server.port, options.burst, body, properties))
                broker.purge()
    median = {k: statistics.median(v) for k, v in rates.items()}
    spread = {k: f"{min(v):,.0f}-{max(v):,.0f}" for k, v in rates.items()}
    print(f"RabbitMQ burst of {options.burst:,} tasks, confirmed, durable queue (median of {options.rounds} rounds):")
    print(f"  capacity inject            {median['ours']:>10,.0f} tasks/s  ({spread['ours']})")
    print(
        f"  Celery send_task, confirms {median['send_task']:>10,.0f} tasks/s  ({spread['send_task']})   "
        f"capacity is {median['ours'] / median['send_task']:,.1f}x (target >= 20x)"
    )
    print(
        f"  raw frames, prebuilt       {median['raw']:>10,.0f} tasks/s  ({spread['raw']})   "
        f"capacity is {median['ours'] / median['raw']:.0%} of the server's ceiling"
    )
    print(
        f"  py-amqp basic_publish      {median['py_amqp']:>10,.0f} tasks/s  ({spread['py_amqp']})   "
        f"(batches of 1,000, confirms pipelined)"
    )
    ceiling = median["raw"] / median["send_task"]
    print(f"  the server's ceiling is {ceiling:,.1f}x send_task here: no client can be more than that")


if __name__ == "__main__":
    main()
