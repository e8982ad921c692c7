"""Profiles: the seeds' tables as YAML data, validated into frozen typed objects on load.

Layers: the profiles shipped in ``capacity/profiles/``, then a user's directory (``--profiles DIR``
or ``CAPACITY_PROFILES``) whose files replace the shipped file of the same name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from capacity.errors import InputError, ProfileError
from capacity.files import read_input
from capacity.units import parse_duration, parse_size

DEFAULT_DIR = Path(__file__).parent / "profiles"
ENV_VAR = "CAPACITY_PROFILES"


def _size(value: Any) -> int:
    try:
        return parse_size(value, "size")
    except InputError as exc:  # re-raised as ValueError so pydantic names the field
        raise ValueError(str(exc)) from None


def _seconds(value: Any) -> float:
    try:
        return parse_duration(value, "duration")
    except InputError as exc:
        raise ValueError(str(exc)) from None


Bytes = Annotated[int, BeforeValidator(_size)]
Seconds = Annotated[float, BeforeValidator(_seconds)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"range [{pair[0]}, {pair[1]}] has its low end above its high end")
    return pair


class Policy(_Frozen):
    global_concurrency: int = Field(ge=1)
    per_tenant_concurrency: int = Field(ge=1)


class InstanceType(_Frozen):
    name: str
    cpu: float = Field(gt=0)
    memory: Bytes = Field(gt=0)
    cost_per_hour_usd: float = Field(ge=0)
    max_workers: int = Field(ge=1)
    seed_workers: int = Field(ge=1)
    policy: Policy


class InstanceProfile(_Frozen):
    source: str = ""
    instances: tuple[InstanceType, ...]


class JobType(_Frozen):
    name: str
    source: str = ""
    cpu: tuple[float, float]
    memory: tuple[Bytes, Bytes]
    duration: tuple[Seconds, Seconds]
    priority: str = "normal"
    queue: str | None = None

    _check_cpu = field_validator("cpu")(_ordered)
    _check_memory = field_validator("memory")(_ordered)
    _check_duration = field_validator("duration")(_ordered)


class JobTypeProfile(_Frozen):
    job_types: tuple[JobType, ...]


class PerPhoto(_Frozen):
    download: tuple[Bytes, Bytes]
    memory: tuple[Bytes, Bytes]
    upload: tuple[Bytes, Bytes]
    llm_calls: int = Field(ge=0)
    face_api_calls: int = Field(ge=0)


class PhotoTier(_Frozen):
    name: str
    seed_range: str
    max_photos: int | None
    worker_concurrency: int = Field(ge=1)
    face_worker_concurrency: int = Field(ge=1)


class PhotoConcurrency(_Frozen):
    worker_concurrency: int = Field(ge=1)
    face_worker_concurrency: int = Field(ge=1)


class WorkedExample(_Frozen):
    worker_concurrency: int
    peak_memory: tuple[Bytes, Bytes]
    bandwidth: tuple[Bytes, Bytes]


class PhotoProfile(_Frozen):
    source: str = ""
    per_photo: PerPhoto
    tiers: tuple[PhotoTier, ...] = Field(min_length=1)
    horizontal_scaling_above: int
    default: PhotoConcurrency
    contradictions: tuple[str, ...] = ()
    worked_example: WorkedExample | None = None

    @field_validator("tiers")
    @classmethod
    def _tiers_ascending(cls, tiers: tuple[PhotoTier, ...]) -> tuple[PhotoTier, ...]:
        bounds = [t.max_photos for t in tiers]
        if bounds[-1] is not None:
            raise ValueError("the last tier must have max_photos: null (it covers every larger count)")
        finite = [b for b in bounds[:-1] if b is not None]
        if len(finite) != len(bounds) - 1 or finite != sorted(finite):
            raise ValueError("tiers must be in ascending max_photos order, only the last one open")
        return tiers


class ReplicaTier(_Frozen):
    name: str
    replicas: tuple[int, int]
    memory_per_worker: Bytes
    recommended: str

    _check = field_validator("replicas")(_ordered)


class ReplicaTiers(_Frozen):
    source: str = ""
    threads_per_replica: int = Field(ge=1)
    pool: str
    default_replicas: int = Field(ge=1)
    tiers: tuple[ReplicaTier, ...] = Field(min_length=1)


class WorkerSpec(_Frozen):
    role: str
    queues: tuple[str, ...] = Field(min_length=1)
    concurrency: int = Field(ge=1)


class UserScenario(_Frozen):
    name: str
    max_users: int | None
    memory_per_worker: tuple[Bytes, Bytes]
    queue_separation: bool
    total_concurrency: tuple[int, int]
    workers: tuple[WorkerSpec, ...] = Field(min_length=1)


class UserScenarios(_Frozen):
    source: str = ""
    app: str
    task_routes: dict[str, dict[str, str]]
    task_soft_time_limit: Seconds
    task_time_limit: Seconds
    worker_max_tasks_per_child: int = Field(ge=1)
    scenarios: tuple[UserScenario, ...] = Field(min_length=1)


class TopologyProfile(_Frozen):
    replica_tiers: ReplicaTiers
    user_scenarios: UserScenarios


class MetricThresholds(_Frozen):
    label: str
    unit: str
    target: str
    warning: str
    critical: str


class ThresholdProfile(_Frozen):
    source: str = ""
    metrics: dict[str, MetricThresholds]
    scaling: dict[str, dict[str, str]]


_T = TypeVar("_T", bound=BaseModel)

_FILES: dict[str, type[BaseModel]] = {
    "instances.yaml": InstanceProfile,
    "job_types.yaml": JobTypeProfile,
    "photos.yaml": PhotoProfile,
    "topologies.yaml": TopologyProfile,
    "thresholds.yaml": ThresholdProfile,
}


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    got = repr(value)
    if len(got) > 80:  # e.g. a whole file's text where a mapping belongs (a report given as a fleet)
        got = f"{len(value):,} characters of text" if isinstance(value, str) else got[:60] + "..."
    return f"{where}: {message} (got {got})"


# libyaml's parser where PyYAML was built with it (the wheels are): the shipped profiles parse in
# 2.5 ms instead of 20 ms, on every planning command's start-up; the same constructor and
# resolver, so the same values (test_profiles checks the shipped files both ways). A file it
# refuses is parsed again by the pure-Python parser, whose message names the character.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)  # a safe loader: plain data only
    except yaml.YAMLError:
        return yaml.safe_load(text)


def load_file(path: Path, model: type[_T]) -> _T:
    """Read one YAML profile into ``model``; ProfileError names the file and the field."""
    try:
        raw = _parse(read_input(path))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ProfileError(f"{path}{line}: not valid YAML ({problem})") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(f"{path}: {describe_invalid(exc)}") from None


def describe_invalid(exc: ValidationError) -> str:
    """pydantic's first complaint in one line: the field, the message, the value given."""
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{_describe(dict(exc.errors()[0]))}{more}"


@dataclass(frozen=True)
class Profiles:
    """Every profile, validated, plus where each came from."""

    instances: InstanceProfile
    job_types: JobTypeProfile
    photos: PhotoProfile
    topologies: TopologyProfile
    thresholds: ThresholdProfile
    sources: dict[str, Path]

    def instance(self, name: str) -> InstanceType:
        return _lookup(name, self.instances.instances, "instance type")

    def job_type(self, name: str) -> JobType:
        return _lookup(name, self.job_types.job_types, "job type")


_Item = TypeVar("_Item", InstanceType, JobType)


def _lookup(name: str, items: Sequence[_Item], kind: str) -> _Item:
    wanted = name.strip().lower()
    for item in items:
        if item.name.lower() == wanted:
            return item
    names = [item.name for item in items]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(names)}"
    raise InputError(f"unknown {kind} {name!r}{hint}")


def load_profiles(user_dir: str | Path | None = None) -> Profiles:
    """Load the shipped profiles, overridden file by file by ``user_dir`` or $CAPACITY_PROFILES."""
    chosen = user_dir if user_dir is not None else os.environ.get(ENV_VAR) or None
    override = Path(chosen) if chosen else None
    if override is not None and not override.is_dir():
        raise ProfileError(f"profiles directory {override} does not exist")
    loaded: dict[str, BaseModel] = {}
    sources: dict[str, Path] = {}
    for filename, model in _FILES.items():
        path = DEFAULT_DIR / filename
        if override is not None and (override / filename).is_file():
            path = override / filename
        loaded[filename] = load_file(path, model)
        sources[filename] = path
    return Profiles(
        instances=loaded["instances.yaml"],  # type: ignore[arg-type]
        job_types=loaded["job_types.yaml"],  # type: ignore[arg-type]
        photos=loaded["photos.yaml"],  # type: ignore[arg-type]
        topologies=loaded["topologies.yaml"],  # type: ignore[arg-type]
        thresholds=loaded["thresholds.yaml"],  # type: ignore[arg-type]
        sources=sources,
    )
