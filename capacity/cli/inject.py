"""``capacity inject``: flags in, the core's inject() out, with a progress display and monitor."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from capacity.brokers import broker_scheme, resolve_broker_url
from capacity.cli._common import (
    Interrupts,
    OutputOption,
    emit,
    format_option,
    handle_errors,
    json_list_option,
    json_object_option,
)
from capacity.errors import EXIT_INTERRUPTED, BrokerError, CheckFailed, InputError, WriteFailed
from capacity.load import s3
from capacity.load.monitor import Sample
from capacity.load.payload import (
    REFERENCE_PARAMETERS,
    REFERENCE_TASK,
    PayloadSpec,
    existing_file,
    synthetic_file,
)
from capacity.load.runner import RunProgress
from capacity.load.schedules import Shard, build_schedule, parse_shard
from capacity.load.tasklog import RESULTS_DIR
from capacity.render.jobs import indexed_job_report
from capacity.units import SIZE_HELP, parse_duration, parse_instant, parse_size

if TYPE_CHECKING:  # imported where used: the command line loads without the heavy extras
    from capacity.load.inject import InjectConfig, InjectResult

HELP = f"""Put real Celery tasks on Redis or SQS (burst, sustained, ramp or stages) and write a task
log of every task id the broker accepted ({RESULTS_DIR}/worker_tasks_YYYYMMDD_HHMMSS.log).

A bare --rate is per minute, as in seed 003 (--rate 10 is 10/min). Exit codes: 0 done,
1 the queue did not drain within --monitor-for, 2 bad input, 3 broker unreachable or refusing
(the log holds what was sent), 5 the log could not be written (disk full: the log still names
every task the broker took), 130 interrupted by Ctrl-C (the log holds what was sent)."""

Opt = typer.Option

#: a --start-at further ahead than this needs --wait-long
LONG_WAIT_S = 86_400.0

InjectFormat = Annotated[str, format_option("k8s")]


@handle_errors
def command(
    ctx: typer.Context,
    broker: Annotated[
        str | None,
        Opt(
            help="Broker URL as your Celery app has it "
            "[env: CAPACITY_BROKER_URL, CELERY_BROKER_URL; seed 003: SQS_QUEUE_NAME]."
        ),
    ] = None,
    queue: Annotated[str | None, Opt(help="Queue name [default: celery, or $SQS_QUEUE_NAME].")] = None,
    task: Annotated[str, Opt(help="Celery task name (BullMQ: the job name).")] = REFERENCE_TASK,
    protocol: Annotated[
        str, Opt(help="celery, or bullmq: jobs for BullMQ's Node workers on Redis (the data object: --kwargs).")
    ] = "celery",
    bullmq_prefix: Annotated[str, Opt(help="BullMQ: the queues' key prefix, as your Queue's prefix option.")] = "bull",
    job_options: Annotated[
        str | None,
        Opt(help='BullMQ: job options as your producer sets them, e.g. {"attempts": 3, "removeOnComplete": true}.'),
    ] = None,
    mode: Annotated[str, Opt(help="burst, sustained or ramp.")] = "burst",
    count: Annotated[int | None, Opt(help="Number of tasks.")] = None,
    rate: Annotated[str | None, Opt(help="Rate for sustained (or ramp start): 10/min, 2/s; bare = per minute.")] = None,
    duration: Annotated[str | None, Opt(help="Run length for sustained/ramp, e.g. 5m.")] = None,
    ramp_to: Annotated[str | None, Opt(help="Ramp mode: the rate at the end.")] = None,
    stages: Annotated[
        Path | None, Opt(help="Ramp mode: YAML list of {duration, rate} or {duration, from, to}.")
    ] = None,
    size: Annotated[str | None, Opt(help=f"Create one synthetic file of this size; {SIZE_HELP}.")] = None,
    file: Annotated[str | None, Opt(help="Reuse an existing file (path or s3://bucket/key).")] = None,
    upload_dir: Annotated[
        str, Opt(help="Where --size creates its file (folder or s3://bucket/prefix).")
    ] = "load_tests/uploads",
    user_id: Annotated[str | None, Opt(help="User id in every task's kwargs.")] = None,
    args: Annotated[
        str | None, Opt("--args", help='JSON list of positional arguments, e.g. ["$uuid", "lt-$seq"].')
    ] = None,
    kwargs: Annotated[
        str | None, Opt(help="JSON object of keyword arguments (merged into the reference task's defaults).")
    ] = None,
    payload_template: Annotated[
        Path | None,
        Opt(help='JSON {"args": [...], "kwargs": {...}} for every task (placeholders: see --payload-file).'),
    ] = None,
    mix: Annotated[
        Path | None,
        Opt(
            help="A task mix (YAML or JSON): a list of {task, weight, args|kwargs|payload_file, queue}, apportioned "
            "exactly by weight over the schedule and interleaved by --seed; instead of --task and its arguments."
        ),
    ] = None,
    seed: Annotated[int, Opt(min=0, help="--mix: the seed of which task is which class.")] = 1,
    payload_file: Annotated[
        Path | None,
        Opt(
            help='JSON Lines of {"args": [...], "kwargs": {...}}, taken in turn (replay real payloads). '
            "Placeholders, whole or inside strings: $task_id, $seq, $uuid, $run_id, $file, $size_bytes, "
            "$user_id, $injected_at; $$ is a dollar"
        ),
    ] = None,
    priority: Annotated[int | None, Opt(help="Message priority (0-9).")] = None,
    countdown: Annotated[str | None, Opt(help="Countdown (ETA) for every task, e.g. 30s.")] = None,
    log_dir: Annotated[
        str, Opt(help="Where the task log goes: a folder, or s3://bucket/prefix/ (copied there when the run ends).")
    ] = str(RESULTS_DIR),
    monitor: Annotated[bool, Opt("--monitor", help="Sample queue depth while injecting and until drained.")] = False,
    monitor_for: Annotated[str, Opt(help="Longest wait for the queue to drain after sending.")] = "10m",
    monitor_interval: Annotated[str, Opt(help="Time between depth samples.")] = "1s",
    idle_after: Annotated[
        str, Opt(help="--monitor: warn that no worker consumes the queue when nothing is taken for this long.")
    ] = "30s",
    prometheus: Annotated[
        str | None,
        Opt(
            help="Serve the run's live figures (queue depth, in flight, tasks sent; completed, failed and service "
            "times from the probe's Redis stream) at http://HOST:PORT/metrics, e.g. 127.0.0.1:9108."
        ),
    ] = None,
    abort_if: Annotated[
        list[str] | None,
        Opt(
            help="Stop the run (exit 1, the log exact) when this holds, checked every second: depth>N, "
            "oldest_wait>30s; with the probe's Redis stream (CAPACITY_TIMINGS=redis://...) p95>30s, failed>5%. "
            "Repeatable."
        ),
    ] = None,
    queue_name_prefix: Annotated[str | None, Opt(help="SQS queue name prefix (transport option).")] = None,
    queue_url: Annotated[str | None, Opt(help="SQS: predefined queue URL for --queue.")] = None,
    transport_options: Annotated[str | None, Opt(help="JSON broker_transport_options, as in your Celery app.")] = None,
    threads: Annotated[int, Opt(help="SQS: batches in flight at once.")] = 8,
    batch_size: Annotated[int | None, Opt(help="Messages per send [default: 1000 Redis, 10 x threads SQS].")] = None,
    retry_for: Annotated[str, Opt(help="How long to retry a broker outage before stopping (exit 3).")] = "30s",
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress display; print only the log path.")] = False,
    shard: Annotated[
        str | None, Opt(help="Send shard I of N (I from 0): every N-th task of the schedule, 1/N of its rate.")
    ] = None,
    run_id: Annotated[str | None, Opt(help="Run id shared by every shard's log [default: a new one].")] = None,
    start_at: Annotated[
        str | None, Opt(help="Start the schedule at this instant (ISO 8601 or epoch seconds): all shards at once.")
    ] = None,
    start_delay: Annotated[
        str,
        Opt(
            help="Shards with --run-id and no --start-at agree on a start through the broker (Redis): "
            "the first to start claims now + this."
        ),
    ] = "30s",
    late: Annotated[
        str,
        Opt(
            help="A start more than --late-grace past: refuse (exit 2), shift (start now) or catch-up "
            "(send what is due at once)."
        ),
    ] = "refuse",
    late_grace: Annotated[str, Opt(help="How far past its start a shard may begin without --late.")] = "5s",
    no_check: Annotated[
        bool,
        Opt(
            "--no-check",
            help="Send without asking Celery workers on the broker whether they know --task (inspect registered).",
        ),
    ] = False,
    wait_long: Annotated[
        bool, Opt("--wait-long", help="Allow a --start-at more than a day ahead (refused without it: a typo?).")
    ] = False,
    shards: Annotated[
        int | None, Opt(help="With --format k8s: print a Kubernetes Indexed Job running N shards of this run.")
    ] = None,
    image: Annotated[str, Opt(help="--format k8s: the container image (with worker-capacity installed).")] = (
        "python:3.12-slim"
    ),
    fmt: InjectFormat = "table",
    output: OutputOption = "-",
) -> None:
    url, env_queue = resolve_broker_url(broker)
    options = json_object_option(transport_options, "--transport-options")
    if queue_name_prefix is not None:
        options["queue_name_prefix"] = queue_name_prefix
    queue = queue or env_queue or "celery"
    if queue_url:
        options.setdefault("predefined_queues", {})[queue] = {"url": queue_url}
    if threads < 1 or (batch_size is not None and batch_size < 1):
        raise InputError("--threads and --batch-size must be at least 1")
    if protocol not in ("celery", "bullmq"):
        raise InputError(f"--protocol {protocol!r}: use celery or bullmq")
    if priority is not None and protocol == "celery" and not 0 <= priority <= 255:
        raise InputError(f"--priority must be 0-255, got {priority}")
    if priority is not None and protocol == "bullmq" and not 0 <= priority <= 2_097_152:
        raise InputError(f"--priority must be 0-2097152 for BullMQ, got {priority}")
    from capacity.load.abort import parse_abort
    from capacity.load.exporter import parse_address
    from capacity.load.inject import InjectConfig, check_job_options  # kombu: the brokers extra
    from capacity.load.start import LATE_RULES

    if late not in LATE_RULES:
        raise InputError(f"--late {late!r}: use one of {', '.join(LATE_RULES)}")
    bullmq_options = json_object_option(job_options, "--job-options")
    check_job_options(bullmq_options, protocol, "--job-options")
    _check_task_named(ctx, task, args, kwargs, payload_template, payload_file)
    schedule = build_schedule(mode, count, rate, duration, ramp_to, stages)
    if (fmt == "k8s") != (shards is not None):
        raise InputError("--shards N and --format k8s go together: they print the Job instead of injecting")
    if shards is not None:
        if shard is not None:
            raise InputError("--shards prints the Job for every shard; --shard runs one of them")
        if shards < 1:
            raise InputError(f"--shards must be at least 1, got {shards}")
        job = indexed_job_report(_shard_argv(ctx), shards, image, run_id, start_at, log_dir, broker_scheme(url))
        emit(job, fmt, output)
        return
    shard_pair = parse_shard(shard) if shard is not None else None
    if shard_pair is not None:
        schedule = Shard(schedule, *shard_pair)
    start = parse_instant(start_at, "--start-at") if start_at is not None else None
    if start is not None:
        ahead_s = start - time.time()
        if ahead_s > LONG_WAIT_S and not wait_long:
            raise InputError(
                f"--start-at {start_at} is {ahead_s / 86_400:,.1f} days ahead: a typo? "
                "give --wait-long to wait that long"
            )
        if ahead_s > 1 and not quiet:
            when = datetime.fromtimestamp(start, UTC).isoformat(timespec="seconds")
            Console(stderr=True, highlight=False).print(
                f"waiting until {when} ({ahead_s:,.0f} s) to start (--start-at)"
            )
    upload_to = log_dir if s3.is_s3(log_dir) else None
    if size is not None and file is not None:
        raise InputError("--size and --file exclude each other")
    payload = None
    if file is not None:
        payload = existing_file(file)
    elif size is not None:
        payload = synthetic_file(parse_size(size, "--size"), upload_dir)
    description = PayloadSpec(
        args=json_list_option(args, "--args"),
        kwargs=json_object_option(kwargs, "--kwargs") if kwargs is not None else None,
        template=payload_template,
        file=payload_file,
    )
    positional, kw, rows = description.resolve(task)
    classes: tuple[Any, ...] = ()
    if mix is not None:
        source = ctx.get_parameter_source("task")
        named = source is not None and source.name != "DEFAULT"
        pairs = (("--task", named), ("--args", args), ("--kwargs", kwargs), ("--payload-template", payload_template))
        given = [flag for flag, value in (*pairs, ("--payload-file", payload_file)) if value]
        if given:
            raise InputError(f"--mix names each class's task and arguments: drop {', '.join(given)}")
        from capacity.load.mix import load_mix

        classes = load_mix(mix)
    config = InjectConfig(
        broker_url=url,
        schedule=schedule,
        task=task,
        queue=queue,
        log_dir=RESULTS_DIR if upload_to else Path(log_dir),
        args=positional,
        kwargs=kw,
        rows=rows,
        file_reference=payload.reference if payload else None,
        size_bytes=payload.size_bytes if payload else 0,
        user_id=user_id,
        priority=priority,
        countdown_s=parse_duration(countdown, "--countdown") if countdown is not None else None,
        transport_options=options,
        retry_for_s=parse_duration(retry_for, "--retry-for"),
        threads=threads,
        batch_size=batch_size,
        monitor=monitor,
        monitor_interval_s=max(0.05, parse_duration(monitor_interval, "--monitor-interval")),
        monitor_for_s=parse_duration(monitor_for, "--monitor-for"),
        idle_warning_s=parse_duration(idle_after, "--idle-after"),
        run_id=run_id,
        shard=shard_pair,
        mix=classes,
        mix_seed=seed,
        abort_if=tuple(parse_abort(text) for text in abort_if or ()),
        prometheus=parse_address(prometheus) if prometheus is not None else None,
        start_at=start,
        agree_start=shard_pair is not None and run_id is not None and start is None,
        start_delay_s=parse_duration(start_delay, "--start-delay"),
        late=late,
        late_grace_s=parse_duration(late_grace, "--late-grace"),
        check_task=not no_check and protocol == "celery" and task != REFERENCE_TASK,
        upload_to=upload_to,
        protocol=protocol,
        prefix=bullmq_prefix if protocol == "bullmq" else None,
        job_options=bullmq_options,
    )
    console = Console(stderr=True)
    with Interrupts() as interrupts:
        result = _run(config, interrupts.stop, console, quiet)
    _report(result, console, quiet)
    if result.upload_error:
        raise BrokerError(f"{result.upload_error}; the task log is kept at {result.log_path}")
    if result.status == "log_full":
        raise WriteFailed(f"{result.error}; the task log names the {result.sent} tasks sent: {result.log_path}")
    if result.status in ("broker_unreachable", "broker_refused"):
        raise BrokerError(f"{result.error}; the task log holds the {result.sent} tasks sent: {result.log_path}")
    if result.status == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.status == "aborted":
        raise CheckFailed(
            f"aborted: {result.error}; the task log names the {result.sent} tasks sent: {result.log_path}"
        )
    if result.status == "not_drained":
        raise CheckFailed(f"{result.error}; is a worker consuming it? (the task log is complete: {result.log_path})")


def _run(config: InjectConfig, stop: threading.Event, console: Console, quiet: bool) -> InjectResult:
    from capacity.load.inject import inject
    from capacity.secrets import redact_url

    def on_idle(sample: Sample) -> None:
        console.print(
            f"warning: {sample.visible} messages have waited {config.idle_warning_s:g} s on queue "
            f"{config.queue!r} at {redact_url(config.broker_url)} and none was taken: no worker seems to "
            "consume that queue on that broker ("
            + (
                "check the Worker's queue name, prefix and Redis connection"
                if config.protocol == "bullmq"
                else "check the worker's -Q and broker URL"
            )
            + ")",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    if quiet:
        return inject(config, stop, on_idle=on_idle)
    columns = (
        TextColumn("[bold]inject[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[late]}"),
        TimeElapsedColumn(),
    )
    # Started on the first batch, so errors found before sending are not preceded by a bar.
    bar = Progress(*columns, console=console, transient=False)
    task_id = bar.add_task("inject", total=config.schedule.count, rate="", late="")

    def on_progress(p: RunProgress) -> None:
        if not bar.live.is_started:
            bar.start()
        late = f"late {p.lateness_s[-1] * 1000:.1f} ms" if p.lateness_s else ""
        bar.update(task_id, completed=p.sent, rate=f"{p.rate_per_s:,.1f}/s", late=late)

    def on_sample(s: Sample) -> None:
        flight = "-" if s.in_flight is None else str(s.in_flight)
        bar.console.print(
            f"queue  visible {s.visible:>8}  in flight {flight:>6}  sent {s.sent_so_far:>8}", highlight=False
        )

    try:
        result = inject(config, stop, on_progress=on_progress, on_sample=on_sample, on_idle=on_idle)
        bar.update(task_id, completed=result.sent, rate=f"{result.rate_per_s:,.1f}/s")  # the whole run's rate
        return result
    finally:
        if bar.live.is_started:
            bar.stop()


def _check_task_named(
    ctx: typer.Context,
    task: str,
    args: str | None,
    kwargs: str | None,
    template: Path | None,
    payload_file: Path | None,
) -> None:
    """Arguments meant for the user's own task, given without --task, would go to the reference
    task (#22: `--args` alone quietly sent capacity.worker.process_file the user's arguments)."""
    source = ctx.get_parameter_source("task")
    if source is not None and source.name != "DEFAULT":
        return
    hint = f"give --task NAME (your task's name; without it they go to the reference task {task})"
    for flag, value in (("--args", args), ("--payload-template", template), ("--payload-file", payload_file)):
        if value is not None:
            raise InputError(f"{flag} without --task: {hint}")
    if kwargs is not None:
        given = json_object_option(kwargs, "--kwargs")
        foreign = sorted(set(given) - set(REFERENCE_PARAMETERS))
        if foreign:
            raise InputError(
                f"--kwargs {', '.join(foreign)} without --task: the reference task takes "
                f"{', '.join(REFERENCE_PARAMETERS)}; {hint}"
            )


def _shard_argv(ctx: typer.Context) -> list[str]:
    """The options given on this command line, as each shard runs them: without --shards,
    --format, --output, --image, --run-id, --start-at and --broker (the pods read the broker URL
    from a Secret, so no password is printed)."""
    dropped = {"shards", "fmt", "output", "image", "broker", "run_id", "start_at"}
    argv: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        source = ctx.get_parameter_source(name)
        if name in dropped or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params[name]
        flag = param.opts[0]
        if isinstance(value, bool):
            if value:
                argv.append(flag)
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def _report(result: InjectResult, console: Console, quiet: bool) -> None:
    typer.echo(str(result.log_path))
    for url in result.uploaded:
        typer.echo(url)
    if quiet:
        return
    lines = [
        # "sent", not "completed": the broker took them; whether workers ran them is metrics' answer (#22)
        f"sent {result.sent} of {result.target} tasks in {result.elapsed_s:.2f} s "
        f"({result.rate_per_s:,.1f}/s), run {result.run_id}"
        + ("" if result.status == "completed" else f": {result.status.replace('_', ' ')}")
    ]
    late = result.lateness
    if late.get("p50_s") is not None:
        lines.append(
            f"lateness p50 {float(late['p50_s'] or 0) * 1000:.2f} ms, p99 {float(late['p99_s'] or 0) * 1000:.2f} ms, "
            f"max {float(late['max_s'] or 0) * 1000:.2f} ms, {late['late_over_1s']} late by > 1 s"
        )
    if result.in_doubt:
        lines.append(f"{len(result.in_doubt)} tasks in doubt (the broker may or may not hold them): see the end line")
    if result.monitor_csv:
        lines.append(f"monitor samples: {result.monitor_csv}")
    lines += [f"note: {note}" for note in result.notes]
    if result.drained_after_s is not None:
        lines.append(f"queue drained {result.drained_after_s:.1f} s after the start")
    if result.trend is not None:
        t = result.trend
        slope = "n/a" if t.slope_per_min is None else f"{t.slope_per_min:+.2f} tasks/min"
        lines.append(f"queue trend over the sustained phase: {slope} -> {t.verdict} (seed 003: stable when ~0)")
    for line in lines:
        console.print(line, highlight=False, markup=False)


__all__ = ["EXIT_INTERRUPTED", "HELP", "Interrupts", "command"]
