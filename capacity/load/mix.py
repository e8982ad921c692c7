"""Task mixes (Locust's task weights, k6's scenarios): several task classes in one run, each with its
own task name, arguments and queue, apportioned exactly by weight over the schedule.

A mix file (YAML or JSON) is a list of classes::

    - {task: resize.async_resize, weight: 3, args: ["$uuid", "img-$seq.png"]}
    - {task: emails.send, weight: 1, kwargs: {to: "u-$seq@example.com"}, queue: emails}
    - {task: reports.build, weight: 0.5, payload_file: payloads.jsonl}

Of N tasks, class i gets its share by the largest-remainder method (Hamilton's): floor(N w_i / W),
then one more each for the largest remainders (ties to the earlier class), so 400 tasks at 3:1 are
exactly 300 and 100. Which task of the schedule is which class is a shuffle of those counts drawn
from ``--seed``: interleaved, the same for every shard of one run (task k of the whole schedule has
one class wherever it is sent from) and for every rerun with that seed.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from capacity.brokers import Broker, QueueDepth
from capacity.errors import InputError
from capacity.files import read_input
from capacity.load.payload import check_placeholders, load_payload_file
from capacity.load.schedules import Schedule, Shard

#: the most classes of one mix (a class index is kept per task, in two bytes)
MAX_CLASSES = 1000
_KEYS = {"task", "weight", "args", "kwargs", "payload_file", "queue"}


@dataclass(frozen=True)
class MixClass:
    """One class of a mix: its task, weight, arguments (or payload file lines) and queue."""

    task: str
    weight: float
    args: list[Any]
    kwargs: dict[str, Any]
    rows: tuple[tuple[list[Any], dict[str, Any]], ...] = ()
    queue: str | None = None


def load_mix(path: Path) -> tuple[MixClass, ...]:
    """The classes of a mix file; InputError naming the class and what is wrong with it."""
    try:
        text = read_input(path)
        raw = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"--mix {path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"--mix {path}: not valid JSON ({exc}); a .yaml file is read as YAML") from None
    items = raw.get("mix") if isinstance(raw, dict) else raw
    return mix_from(items, f"--mix {path}", path.parent)


def mix_from(items: Any, where: str, base: Path) -> tuple[MixClass, ...]:
    """The classes of a mix given as a list (a mix file's, or a matrix file's ``mix:``); payload
    files are read from ``base``."""
    if not isinstance(items, list) or not items:
        raise InputError(f"{where}: expected a list of {{task, weight, args|kwargs|payload_file, queue}}")
    if len(items) > MAX_CLASSES:
        raise InputError(f"{where}: {len(items):,} classes; at most {MAX_CLASSES:,}")
    return tuple(_mix_class(item, f"{where}: class {i}", base) for i, item in enumerate(items, 1))


def _mix_class(item: Any, where: str, base: Path) -> MixClass:
    if not isinstance(item, dict):
        raise InputError(f"{where}: expected a mapping with task and weight")
    unknown = sorted(set(map(str, item)) - _KEYS)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r}; a class has {', '.join(sorted(_KEYS))}")
    task, weight = item.get("task"), item.get("weight", 1)
    if not isinstance(task, str) or not task.strip():
        raise InputError(f"{where}: needs task: the task name (your worker's, e.g. resize.async_resize)")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise InputError(f"{where}: weight must be a number above zero, got {weight!r}")
    args, kwargs = item.get("args", []), item.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise InputError(f"{where}: args is a JSON list and kwargs a JSON object")
    queue = item.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise InputError(f"{where}: queue must be a queue name")
    rows: tuple[tuple[list[Any], dict[str, Any]], ...] = ()
    if item.get("payload_file") is not None:
        if "args" in item or "kwargs" in item:
            raise InputError(f"{where}: payload_file and args/kwargs exclude each other")
        rows = load_payload_file(base / str(item["payload_file"]))
        args, kwargs = rows[0]
    check_placeholders([args, kwargs, *(list(r) for r in rows)], where)
    return MixClass(task.strip(), float(weight), list(args), dict(kwargs), rows, queue)


def apportion(weights: list[float], n: int) -> list[int]:
    """``n`` tasks shared by weight, exactly: the largest-remainder method (ties to the earlier)."""
    total = sum(weights)
    quotas = [n * w / total for w in weights]
    counts = [math.floor(q) for q in quotas]
    left = n - sum(counts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[:left]:
        counts[i] += 1
    return counts


def class_sequence(counts: list[int], seed: int) -> list[int]:
    """The class of each task of the schedule: ``counts[i]`` of class i, shuffled by ``seed``."""
    sequence = [i for i, count in enumerate(counts) for _ in range(count)]
    random.Random(seed).shuffle(sequence)
    return sequence


def counts_of(mix: tuple[MixClass, ...], schedule: Schedule) -> list[int]:
    """Each class's share of the whole run (a shard's schedule is part of one)."""
    whole = schedule.whole if isinstance(schedule, Shard) else schedule
    return apportion([c.weight for c in mix], whole.count)


def classes_of(mix: tuple[MixClass, ...], schedule: Schedule, seed: int) -> list[int] | None:
    """A mix's class of every task of the whole schedule (a shard's too, so every shard agrees)."""
    return class_sequence(counts_of(mix, schedule), seed) if mix else None


def summed_depth(brokers: dict[str, Broker]) -> Callable[[], QueueDepth]:
    """The depth a monitor samples: one queue's, or the sum over a mix's distinct queues."""
    if len(brokers) == 1:
        return next(iter(brokers.values())).depth

    def add(values: list[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(v or 0 for v in values)

    def total() -> QueueDepth:
        depths = [broker.depth() for broker in brokers.values()]
        return QueueDepth(
            visible=sum(d.visible for d in depths),
            in_flight=add([d.in_flight for d in depths]),
            delayed=add([d.delayed for d in depths]),
            failed=add([d.failed for d in depths]),
            lag_s=max(d.lag_s for d in depths),
        )

    return total


__all__ = [
    "MAX_CLASSES",
    "MixClass",
    "apportion",
    "class_sequence",
    "classes_of",
    "counts_of",
    "load_mix",
    "summed_depth",
]
