"""``metrics``: throughput X, service time S, wait W, response time R and stability, from task
logs joined by task id with completion timings. Every figure comes from measured timestamps; a
timing that is missing stays missing (None), never guessed."""

from __future__ import annotations

import math
import os
import re
import statistics
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from capacity.errors import CheckFailed, InputError
from capacity.load.monitor import Sample, read_samples, samples_path, trend
from capacity.measure.inputs import Problems, TaskLog, read_task_logs
from capacity.measure.sources import RecordColumns, SourceSettings, load_source
from capacity.secrets import mask
from capacity.units import parse_duration, parse_rate

SUCCESS = "SUCCESS"
PERCENTILES = (50, 90, 95, 99)


#: the JSON keys issue #4 makes public (as_dict has them all), in the order reports show them
PUBLIC_KEYS = (
    "sent",
    "completed",
    "failed",
    "missing",
    "completion_rate",
    "window_s",
    "throughput_per_min",
    "service_time_mean_s",
    "service_time_p50_s",
    "service_time_p95_s",
    "service_time_p99_s",
    "wait_mean_s",
    "response_time_mean_s",
    "utilization",
)


_STATS_PREFIXES = ("service_time", "wait", "wait_from_received", "response_time", "seed_s")


@dataclass(frozen=True)
class Stats:
    """Mean, p50/p90/p95/p99 (linear interpolation, numpy's default) and max; None if unmeasured."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None

    def to_json(self, prefix: str) -> dict[str, float | None]:
        """The public keys: ``{prefix}_{stat}_s``."""
        return {f"{prefix}_{f.name}_s": getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any], prefix: str) -> Stats:
        return cls(**{f.name: data.get(f"{prefix}_{f.name}_s") for f in fields(cls)})

    @classmethod
    def from_figures(cls, figures: dict[str, Any], column: str) -> Stats:
        quantiles = figures[f"{column}_q"] or [None] * len(PERCENTILES)
        by_name = dict(zip((f"p{p}" for p in PERCENTILES), quantiles, strict=True))
        return cls(mean=figures[f"{column}_mean"], max=figures[f"{column}_max"], **by_name)


@dataclass(frozen=True)
class LittlesLaw:
    """L = X R from the figures, against the number in system the monitor observed (if it ran)."""

    L_from_X_R: float | None = None
    L_observed: float | None = None
    observed_from: str | None = None


@dataclass(frozen=True)
class ClockSkew:
    """Tasks that started or finished before they were sent: the hosts' clocks disagree."""

    tasks: int = 0
    largest_s: float = 0.0


@dataclass(frozen=True)
class PhaseTrend:
    """The queue's trend over the sending phase of a sustained run (seed 003's stability)."""

    slope_per_min: float | None
    verdict: str
    samples: int
    tolerance_per_min: float


@dataclass(frozen=True)
class Bucket:
    """Completions in [from_s, to_s) after the first send, and their W and S percentiles."""

    from_s: float
    to_s: float
    completed: int
    wait_p50_s: float | None
    wait_p95_s: float | None
    service_p50_s: float | None
    service_p95_s: float | None


@dataclass(frozen=True)
class FailureType:
    """Failed tasks of one exception type: how many, the first (by send time), one message."""

    type: str
    tasks: int
    first_task_id: str
    example: str


@dataclass(frozen=True)
class Metrics:
    """The result; ``to_json`` gives the public JSON keys and ``from_json`` reads them back."""

    sent: int
    completed: int
    failed: int
    missing: int
    window_s: float | None = None
    throughput_per_min: float | None = None
    throughput_steady_per_min: float | None = None
    service: Stats = Stats()
    wait: Stats = Stats()
    wait_received: Stats = Stats()
    response: Stats = Stats()
    seed_s: Stats = Stats()
    timeline: tuple[tuple[int, int], ...] = ()
    utilization: float | None = None
    littles_law: LittlesLaw = LittlesLaw()
    duplicates: int = 0
    unknown_timings: int = 0
    clock_skew: ClockSkew = ClockSkew()
    trend: PhaseTrend | None = None
    sources: tuple[str, ...] = ()
    skipped_lines: int = 0
    warnings: tuple[str, ...] = ()
    concurrency: int | None = None
    #: a task mix's figures by task name, with the same keys (``by_task`` in JSON)
    by_task: dict[str, Metrics] = field(default_factory=dict)
    #: completions per bucket with the p50 and p95 of W and S (``timeline`` in JSON)
    timeline_buckets: tuple[Bucket, ...] = ()
    bucket_s: float = 0.0  # 0: no such timeline asked for
    #: failed tasks by exception type: true counts, the first task id and one message
    failure_types: tuple[FailureType, ...] = ()
    #: the first send (seconds since the epoch): where the timelines' offsets count from
    first_sent_at: float | None = None

    @property
    def completion_rate(self) -> float | None:
        return self.completed / self.sent if self.sent else None

    def _all_stats(self) -> tuple[Stats, ...]:
        return (self.service, self.wait, self.wait_received, self.response, self.seed_s)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sent": self.sent,
            "completed": self.completed,
            "failed": self.failed,
            "missing": self.missing,
            "completion_rate": self.completion_rate,
            "window_s": self.window_s,
            "throughput_per_min": self.throughput_per_min,
            "throughput_steady_per_min": self.throughput_steady_per_min,
        }
        for prefix, stats in zip(_STATS_PREFIXES, self._all_stats(), strict=True):
            data.update(stats.to_json(prefix))
        data.update(
            utilization=self.utilization,
            concurrency=self.concurrency,
            littles_law=asdict(self.littles_law),
            timeline_per_min=[{"minute": m, "completed": c} for m, c in self.timeline],
            duplicates=self.duplicates,
            unknown_timings=self.unknown_timings,
            clock_skew=asdict(self.clock_skew),
            trend=asdict(self.trend) if self.trend else None,
            sources=list(self.sources),
            skipped_lines=self.skipped_lines,
            warnings=list(self.warnings),
            first_sent_at=self.first_sent_at,
        )
        if self.bucket_s:
            data["timeline"] = [asdict(b) for b in self.timeline_buckets]
            data["timeline_bucket_s"] = self.bucket_s
        data["failures"] = [asdict(f) for f in self.failure_types]
        if self.by_task:
            data["by_task"] = {name: m.to_json() for name, m in self.by_task.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metrics:
        stats = [Stats.from_json(data, prefix) for prefix in _STATS_PREFIXES]
        return cls(
            sent=data["sent"],
            completed=data["completed"],
            failed=data["failed"],
            missing=data["missing"],
            window_s=data.get("window_s"),
            first_sent_at=data.get("first_sent_at"),
            throughput_per_min=data.get("throughput_per_min"),
            throughput_steady_per_min=data.get("throughput_steady_per_min"),
            service=stats[0],
            wait=stats[1],
            wait_received=stats[2],
            response=stats[3],
            seed_s=stats[4],
            timeline=tuple((p["minute"], p["completed"]) for p in data.get("timeline_per_min") or ()),
            utilization=data.get("utilization"),
            littles_law=LittlesLaw(**(data.get("littles_law") or {})),
            duplicates=data.get("duplicates", 0),
            unknown_timings=data.get("unknown_timings", 0),
            clock_skew=ClockSkew(**(data.get("clock_skew") or {})),
            trend=PhaseTrend(**data["trend"]) if data.get("trend") else None,
            sources=tuple(data.get("sources") or ()),
            skipped_lines=data.get("skipped_lines", 0),
            warnings=tuple(data.get("warnings") or ()),
            concurrency=data.get("concurrency"),
            by_task={name: cls.from_json(m) for name, m in (data.get("by_task") or {}).items()},
            timeline_buckets=tuple(Bucket(**b) for b in data.get("timeline") or ()),
            bucket_s=data.get("timeline_bucket_s", 0.0),
            failure_types=tuple(FailureType(**f) for f in data.get("failures") or ()),
        )


def read_monitor_samples(log_paths: list[Path]) -> list[Sample]:
    """Monitor samples saved by ``inject --monitor`` beside each log, if any."""
    samples = [s for path in log_paths for s in read_samples(samples_path(path))]
    return sorted(samples, key=lambda s: s.t)


_STEADY_MODES = {"sustained", "ramp", "stages"}


def _timeline(figures: dict[str, Any], window_start: float) -> tuple[tuple[int, int], ...]:
    """Completions per wall-clock minute, counted from the minute of the first send."""
    first_minute = math.floor(window_start / 60)
    per_minute = {int(k) - first_minute: int(v) for k, v in (figures["per_minute"] or {}).items()}
    return tuple((m, per_minute.get(m, 0)) for m in range(max(per_minute) + 1)) if per_minute else ()


def _steady(log: TaskLog) -> bool:
    """Whether every run of the logs sent at a rate (sustained, ramp, stages): a steady phase. A
    run line's mode that is not a name (a hand-edited log: a list, an object) is no such mode."""
    modes = [run.get("mode") for run in log.runs]
    return bool(modes) and all(isinstance(mode, str) and mode in _STEADY_MODES for mode in modes)


def _steady_throughput(figures: dict[str, Any], completed: int, log: TaskLog) -> float | None:
    """X over the middle 80% of completions, for the runs that have a steady phase."""
    if not (completed >= 20 and _steady(log) and figures["finished_q"]):
        return None
    t10, t90 = figures["finished_q"]
    return float(0.8 * completed / (t90 - t10) * 60) if t90 > t10 else None


def _phase_trend(log: TaskLog, samples: list[Sample], window_start: float, last_sent: float) -> PhaseTrend | None:
    """Seed 003's stability verdict over the sending phase of a sustained, ramp or stages run."""
    if not _steady(log):
        return None
    rates = [r.get("rate_per_s") for r in log.runs]
    rate_per_min = sum(max(r) if isinstance(r, list) else (r or 0) for r in rates) * 60
    found = trend(samples, window_start, last_sent, rate_per_min)
    return PhaseTrend(found.slope_per_min, found.verdict, found.samples, found.tolerance_per_min)


#: fewer monitor samples than this in the window and the observed L is flagged as not meaningful
MIN_LITTLE_SAMPLES = 5


def _littles_law(
    throughput: float | None, response: Stats, samples: list[Sample], window_start: float, window_s: float | None
) -> LittlesLaw:
    """L = X R, and the mean number in system the monitor saw over the same window."""
    from_x_r = throughput / 60 * response.mean if throughput is not None and response.mean is not None else None
    in_window = [s for s in samples if window_s is not None and window_start <= s.t <= window_start + window_s]
    if not in_window:
        return LittlesLaw(from_x_r)
    observed = statistics.fmean(s.visible + (s.in_flight or 0) for s in in_window)
    if len(in_window) < MIN_LITTLE_SAMPLES:
        # a burst drained in a second or two has one or two samples: their mean says nothing
        source = f"only {len(in_window)} monitor samples in the window: not meaningful (needs {MIN_LITTLE_SAMPLES})"
        return LittlesLaw(from_x_r, observed, source)
    return LittlesLaw(from_x_r, observed, "monitor samples (visible + in flight)")


def no_timings_why(sources: list[str]) -> str:
    """Why no task of the log has a timing, in the words of the worker the source belongs to (#22)."""
    if any(source.startswith("BullMQ") for source in sources):
        return (
            "no task of the log has a timing: BullMQ never finished any of these jobs; is a Worker running on "
            "this queue name and prefix (--bullmq-prefix), with a processor for these job names, and did the "
            "jobs outlive removeOnComplete (BullMQ deletes a job's hash when it is removed)?"
        )
    return (
        "no task of the log has a timing: usually the probe is not loaded in the worker (celery worker "
        "--include capacity.probe, or the file capacity probe write makes), CAPACITY_TIMINGS points elsewhere "
        "than --timings, the worker does not know the task name (its log says 'Received unregistered task'), or "
        "it consumes another queue (its -Q)"
    )


def compute(
    log: TaskLog,
    sources: list[str],
    problems: Problems,
    concurrency: int | None = None,
    samples: list[Sample] | None = None,
    bucket_s: float | None = None,
) -> Metrics:
    """Join the logs with the timings (one DuckDB pass over the inputs) and compute every figure."""
    if concurrency is not None and concurrency < 1:
        raise InputError(f"--concurrency must be at least 1, got {concurrency}")
    log.store.spread = _steady(log)  # a steady phase's X needs the spread of the finishes
    # a bad line DuckDB could not parse names itself on the slow path (or is skipped with --skip-bad)
    figures = log.query(lambda store: store.figures(), lambda f: bool(f["bad_log_lines"] or f["timing_without_id"]))
    n = int(figures["sent"])
    if n == 0:
        raise InputError(f"no task lines in {', '.join(str(p) for p in log.paths)}: nothing was sent")
    duplicates, unknown = int(figures["duplicates"]), int(figures["unknown"])
    if duplicates:
        problems.warn(f"{duplicates} duplicate task ids in the task logs: each is counted once, at its first send")
    if unknown:
        problems.warn(f"{unknown} task ids have timings but are in no task log (another run, or a log not given)")
    implausible = int(figures["implausible"])
    if implausible:
        ids = ", ".join(str(i) for i in figures["implausible_ids"] or [])
        problems.warn(
            f"{implausible} tasks have timings outside this run's window (an hour before the first send "
            f"to 30 days after the last, and never in the future), left out as missing: {ids}"
            + (", ..." if implausible > 5 else "")
        )
    repeated = int(figures["duplicate_completions"])
    if repeated:
        problems.warn(
            f"{repeated} duplicate completions for {int(figures['tasks_completed_twice'])} tasks (a task that "
            "ran twice: acks_late redelivery, or a timings file given twice): each task is counted once, "
            "from its first start to its last finish"
        )
    completed, failed = int(figures["completed"]), int(figures["failed"])
    if failed:
        examples = log.query(lambda store: store.failures())
        if examples:
            shown = "; ".join(f"{mask(text)[:200]} (x{n})" for text, n in examples)
            problems.warn(f"{failed} tasks failed; first errors: {shown}")
    window_start = float(figures["first_sent"])
    base = _figures_to_metrics(figures, log, sources, concurrency)
    skewed = int(figures["skewed"])
    clock_skew = ClockSkew(skewed, -float(figures["most_skewed"]) if skewed else 0.0)
    if skewed:
        problems.warn(
            f"clock skew: {skewed} tasks started or finished before they were sent, by up to "
            f"{clock_skew.largest_s:.3f} s: the injector's and workers' clocks disagree (NTP?)"
        )
    samples = samples or []
    window_s = base.window_s
    has_phase = samples and window_s is not None
    phase_trend = _phase_trend(log, samples, window_start, float(figures["last_sent"])) if has_phase else None
    if not sources:
        problems.warn("no --timings source: completions are unknown, every task counts as missing")
    elif not (completed or failed or int(figures["unknown"])):
        problems.warn(no_timings_why(sources))
    by_task = {}
    if log.store.by_task:  # a mix: each class's figures too
        by_task = {name: _class_metrics(log, name, sources, concurrency) for name in log.query(lambda st: st.tasks())}
    buckets: tuple[Bucket, ...] = ()
    if bucket_s == AUTO_BUCKET:
        bucket_s = auto_bucket(base.window_s)
    if bucket_s is not None:  # a second pass over the tasks: only when asked (--bucket)
        if not bucket_s > 0:
            raise InputError(f"--bucket must be above zero, got {bucket_s:g} s")
        size = bucket_s
        rows = log.query(lambda store: store.timeline(size)) if completed else []
        buckets = tuple(Bucket(b * size, (b + 1) * size, n, *_pair(w), *_pair(q)) for b, n, w, q in rows)
    kinds: tuple[FailureType, ...] = ()
    if failed:
        found = log.query(lambda store: store.failure_types())
        kinds = tuple(FailureType(kind, n, first, mask(text)[:300]) for kind, n, first, text in found)
    return replace(
        base,
        timeline_buckets=buckets,
        bucket_s=bucket_s or 0.0,
        failure_types=kinds,
        first_sent_at=window_start,
        by_task=by_task,
        littles_law=_littles_law(base.throughput_per_min, base.response, samples, window_start, window_s),
        unknown_timings=unknown,
        clock_skew=clock_skew,
        trend=phase_trend,
        skipped_lines=problems.skipped_lines,
        warnings=tuple(problems.warnings),
    )


#: ``bucket_s`` asking for a bucket chosen from the run's window (``--bucket auto``, matrix cells)
AUTO_BUCKET = -1.0
_NICE_BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def auto_bucket(window_s: float | None, most: int = 40) -> float:
    """The smallest round bucket (1 s, 2 s, 5 s ... 1 day) that cuts the window into at most
    ``most`` buckets: a readable timeline for a 20-second burst and for a day-long soak alike."""
    window = window_s or 0.0
    for size in _NICE_BUCKETS:
        if window / size <= most:
            return float(size)
    return float(math.ceil(window / most / 86400) * 86400)


def _pair(values: Any) -> tuple[float | None, float | None]:
    """A [p50, p95] list from DuckDB (or NULL) as two numbers."""
    if not values:
        return None, None
    return (None if values[0] is None else float(values[0])), (None if values[1] is None else float(values[1]))


def _class_metrics(log: TaskLog, task: str, sources: list[str], concurrency: int | None) -> Metrics:
    """One class of a mix: its tasks' figures over the run's window, with the run's keys (the
    slots are shared by every class, so utilisation is this class's share of them)."""
    return _figures_to_metrics(log.query(lambda store: store.figures_for(task)), log, sources, concurrency)


def _figures_to_metrics(figures: dict[str, Any], log: TaskLog, sources: list[str], concurrency: int | None) -> Metrics:
    """The figures one pass gives, as Metrics: counts, X over the window and its steady part,
    the time statistics, completions per minute, utilisation."""
    sent, completed, failed = int(figures["sent"]), int(figures["completed"]), int(figures["failed"])
    window_s = throughput = steady = None
    timeline: tuple[tuple[int, int], ...] = ()
    if completed:
        window_start = float(figures["first_sent"])
        window_s = float(figures["last_finished"]) - window_start
        throughput = completed / window_s * 60 if window_s > 0 else None
        steady = _steady_throughput(figures, completed, log)
        timeline = _timeline(figures, window_start)
    service = Stats.from_figures(figures, "s")
    utilization = None
    if concurrency and throughput is not None and service.mean is not None:
        utilization = throughput / 60 * service.mean / concurrency
    return Metrics(
        sent=sent,
        completed=completed,
        failed=failed,
        missing=sent - completed - failed,
        window_s=window_s,
        throughput_per_min=throughput,
        throughput_steady_per_min=steady,
        service=service,
        wait=Stats.from_figures(figures, "w"),
        wait_received=Stats.from_figures(figures, "wr"),
        response=Stats.from_figures(figures, "r"),
        seed_s=Stats.from_figures(figures, "ss"),
        timeline=timeline,
        utilization=utilization,
        duplicates=int(figures["duplicates"]),
        sources=tuple(sources),
        concurrency=concurrency,
    )


def run_metrics(
    tasks_log: list[Path] | list[str] | list[Path | str],
    timings: list[str],
    concurrency: int | None = None,
    query: str | None = None,
    columns: RecordColumns | None = None,
    skip_bad: bool = False,
    per_task_csv: Path | None = None,
    bucket_s: float | None = None,
) -> Metrics:
    """Read the task logs (local files, or s3:// objects and prefixes: the shards of one run) and
    every timings source (default $CAPACITY_TIMINGS), and compute."""
    import tempfile

    from capacity.load import s3
    from capacity.workerside.probe import ENV_VAR as PROBE_ENV_VAR

    problems = Problems()
    with tempfile.TemporaryDirectory(prefix="capacity-logs-") as downloads:
        paths = s3.local_copies(list(tasks_log), downloads)
        log = read_task_logs(paths, problems, skip_bad)
        sources = timings or ([os.environ[PROBE_ENV_VAR]] if os.environ.get(PROBE_ENV_VAR) else [])
        settings = SourceSettings(columns or RecordColumns(), query, skip_bad)
        try:
            kinds = [load_source(s, log, settings) for s in sources]
            result = compute(log, kinds, problems, concurrency, read_monitor_samples(log.paths), bucket_s)
            if per_task_csv is not None:
                log.store.write_per_task(per_task_csv)
            return result
        finally:
            log.store.close()


# --- --fail-if ---------------------------------------------------------------------------------------

_THRESHOLD = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*(<=|>=|<|>|==)\s*(\S+)\s*$")
_DURATIONS = {
    "p50": ("service_time_p50_s", "service time p50"),
    "p90": ("service_time_p90_s", "service time p90"),
    "p95": ("service_time_p95_s", "service time p95"),
    "p99": ("service_time_p99_s", "service time p99"),
    "s": ("service_time_mean_s", "mean service time"),
    "w": ("wait_mean_s", "mean wait"),
    "wait_p95": ("wait_p95_s", "wait p95"),
    "r": ("response_time_mean_s", "mean response time"),
    "r_p95": ("response_time_p95_s", "response time p95"),
}
_COUNTS = {"failed": "failed", "missing": "missing", "sent": "sent", "completed": "completed"}


def check_thresholds(expressions: list[str], data: dict[str, Any]) -> list[str]:
    """k6-style thresholds ("X<10/min", "p95>30s", "completion<0.95"): the broken ones, as text.

    Each expression says when the run FAILS; a figure that is missing breaks it too."""
    broken = []
    for text in expressions:
        match = _THRESHOLD.match(text)
        if not match:
            raise InputError(f"--fail-if {text!r}: expected NAME OP VALUE, e.g. 'X<10/min', 'p95>30s'")
        name, op, raw = match.group(1).lower(), match.group(2), match.group(3)
        if name in ("x", "throughput"):
            key, label, bound = "throughput_per_min", "X", parse_rate(raw, f"--fail-if {text!r}", bare_unit="min") * 60
        elif name in _DURATIONS:
            key, label = _DURATIONS[name]
            bound = parse_duration(raw, f"--fail-if {text!r}")
        elif name in ("completion", "completion_rate"):
            key, label = "completion_rate", "completion rate"
            bound = _number(raw.rstrip("%"), text) / 100 if raw.endswith("%") else _number(raw, text)
        elif name in _COUNTS:
            key, label, bound = _COUNTS[name], name, _number(raw, text)
        else:
            raise InputError(
                f"--fail-if {text!r}: unknown figure {name!r}; use X, p50, p90, p95, p99, S, W, R, "
                "wait_p95, r_p95, completion, failed, missing"
            )
        value = data.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            broken.append(f"{text} ({label} was not measured)")
            continue
        hit = {
            "<": value < bound,
            "<=": value <= bound,
            ">": value > bound,
            ">=": value >= bound,
            "==": value == bound,
        }[op]
        if hit:
            broken.append(f"{text} ({label} = {value:.4g})")
    return broken


def _number(raw: str, text: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"--fail-if {text!r}: {raw!r} is not a number") from None


def enforce(expressions: list[str], data: dict[str, Any]) -> None:
    broken = check_thresholds(expressions, data)
    if broken:
        raise CheckFailed("thresholds broken: " + "; ".join(broken))
