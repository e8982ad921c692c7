"""Scaling policies and the fleets they size: the settings of each, checked the same way whether
they come from a flag or a fleet file, and the metric each KEDA scaler reports (see
``autoscale``'s docstring for the controllers that act on it).

KEDA's RabbitMQ scaler (``keda-rabbitmq``, pkg/scalers/rabbitmq_scaler.go and its documentation):
``mode: QueueLength`` reports the messages in the queue: with ``protocol: amqp`` a passive queue
declare, which counts the ready messages only; with ``protocol: http`` the management API's
``messages`` (ready + unacknowledged; ``excludeUnacknowledged`` is not modelled).
``mode: MessageRate`` (http only) reports the queue's publish rate
(``message_stats.publish_details.rate``, the management plugin's rate over its last 5 s sample).
The value is the target per replica in both modes; the HPA does the rest as for every KEDA scaler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from capacity.errors import InputError

POLICIES = ("keda-redis", "keda-sqs", "keda-rabbitmq", "aws-backlog", "seed002", "fixed")
#: the policies whose metric KEDA reports (KEDA owns 0 <-> 1 for them)
KEDA_POLICIES = ("keda-redis", "keda-sqs", "keda-rabbitmq")
RABBITMQ_MODES = ("QueueLength", "MessageRate")
RABBITMQ_PROTOCOLS = ("amqp", "http")
#: the management plugin's rate: messages published over its last sample (collect_statistics_interval)
RABBITMQ_RATE_WINDOW_S = 5.0
#: bounds on a pool: the controller keeps a Python object per replica, the loop an entry per slot
MAX_REPLICAS = 10_000
MAX_SLOTS = 100_000


@dataclass(frozen=True)
class Fleet:
    concurrency: int
    min_replicas: int = 1
    max_replicas: int = 10
    startup_s: float = 30.0
    initial_replicas: int | None = None  # default: min_replicas (at least 1 when min is 0 and tasks wait)

    def check(self) -> None:
        if not 1 <= self.concurrency <= MAX_SLOTS:
            raise InputError(f"--concurrency must be 1 to {MAX_SLOTS:,}, got {self.concurrency}")
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise InputError("replicas: need 0 <= --min-replicas <= --max-replicas, --max-replicas >= 1")
        if self.max_replicas > MAX_REPLICAS:
            raise InputError(f"--max-replicas: at most {MAX_REPLICAS:,} (the controller walks every replica each sync)")
        if self.startup_s < 0:
            raise InputError("--startup must be zero or more")


@dataclass(frozen=True)
class Policy:
    """A scaling policy and its settings (the HPA's defaults unless overridden)."""

    name: str = "keda-redis"
    target: float = 100.0  # KEDA listLength / queueLength: tasks per replica
    replicas: int = 1  # fixed
    sync_s: float = 15.0
    tolerance: float = 0.1
    up_pods: int = 4
    up_percent: float = 100.0
    down_percent: float = 100.0
    down_window_s: float = 300.0
    polling_s: float = 30.0  # KEDA's pollingInterval: the 0 <-> 1 decisions
    cooldown_s: float = 300.0  # KEDA's cooldownPeriod: inactive this long before scaling to 0
    activation: float = 0.0  # activationListLength / activationQueueLength
    utilization: float = 0.8  # seed002
    buffer: float = 0.2  # seed002
    mode: str = "QueueLength"  # keda-rabbitmq: QueueLength or MessageRate
    protocol: str = "amqp"  # keda-rabbitmq: amqp (ready messages) or http (ready + unacked, or rates)

    def check(self) -> None:
        if self.name not in POLICIES:
            raise InputError(f"--policy {self.name!r}: use one of {', '.join(POLICIES)}")
        if self.mode not in RABBITMQ_MODES:
            raise InputError(f"--rabbitmq-mode {self.mode!r}: use one of {', '.join(RABBITMQ_MODES)}")
        if self.protocol not in RABBITMQ_PROTOCOLS:
            raise InputError(f"--rabbitmq-protocol {self.protocol!r}: use one of {', '.join(RABBITMQ_PROTOCOLS)}")
        if self.name == "keda-rabbitmq" and self.mode == "MessageRate" and self.protocol != "http":
            raise InputError("KEDA's RabbitMQ MessageRate needs the management API: give --rabbitmq-protocol http")
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise InputError(f"--replicas must be 1 to {MAX_REPLICAS:,}")
        # the fleet file's bounds (fleetfile.PoolSpec): one rule for a setting from a flag or a file
        rules: tuple[tuple[str, float, bool, str], ...] = (
            ("--target", self.target, self.target > 0, "above zero"),
            ("--sync", self.sync_s, self.sync_s > 0, "above zero"),
            ("--scale-up-pods", self.up_pods, self.up_pods >= 1, "at least 1"),
            ("--scale-up-percent", self.up_percent, self.up_percent > 0, "above zero"),
            ("--scale-down-percent", self.down_percent, 0 < self.down_percent <= 100, "above zero and at most 100"),
            ("--tolerance", self.tolerance, 0 <= self.tolerance < 1, "zero or more and below 1"),
            ("--activation", self.activation, self.activation >= 0, "zero or more"),
            ("--scale-down-window", self.down_window_s, self.down_window_s >= 0, "zero or more"),
            ("--polling", self.polling_s, self.polling_s > 0, "above zero"),
            ("--cooldown", self.cooldown_s, self.cooldown_s >= 0, "zero or more"),
        )
        for flag, value, ok, rule in rules:
            if not (ok and math.isfinite(value)):
                raise InputError(f"{flag} must be {rule}, got {value:g}")


def keda_metric(policy: Policy, waiting: int, in_flight: int, published_per_s: float) -> float:
    """The value the policy's scaler reports: Redis ``listLength`` (waiting), SQS
    ``queueLength`` (visible + in flight), RabbitMQ ``QueueLength`` (ready over AMQP, ready +
    unacked over HTTP) or ``MessageRate`` (messages published per second)."""
    if policy.name == "keda-sqs":
        return waiting + in_flight
    if policy.name == "keda-rabbitmq":
        if policy.mode == "MessageRate":
            return published_per_s
        return waiting + in_flight if policy.protocol == "http" else waiting
    return waiting
