"""M/M/c (Erlang C): waiting probability, waits, service level, and the slots a target needs.

Erlang C is computed from the Erlang B recursion B(k) = a B(k-1) / (k + a B(k-1)), which stays
finite for hundreds of slots where the textbook a^c / c! form overflows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from capacity.errors import InputError


def erlang_b(slots: int, offered_load: float) -> float:
    """Blocking probability of M/M/c/c, by the stable recursion."""
    if slots < 0 or offered_load < 0:
        raise InputError("slots and offered load must be zero or more")
    b = 1.0
    for k in range(1, slots + 1):
        b = offered_load * b / (k + offered_load * b)
    return b


def erlang_c(slots: int, offered_load: float) -> float:
    """Probability that an arrival waits in M/M/c; 1 when the system is overloaded (a >= c)."""
    if slots < 1:
        raise InputError(f"slots must be at least 1, got {slots}")
    if offered_load >= slots:
        return 1.0
    b = erlang_b(slots, offered_load)
    rho = offered_load / slots
    return b / (1 - rho * (1 - b))


@dataclass(frozen=True)
class MMc:
    """An M/M/c queue: arrivals per second, mean service time (s), slots."""

    arrival_rate_per_s: float
    service_time_s: float
    slots: int

    @property
    def offered_load(self) -> float:
        return self.arrival_rate_per_s * self.service_time_s

    @property
    def utilization(self) -> float:
        return self.offered_load / self.slots

    @property
    def stable(self) -> bool:
        return self.offered_load < self.slots

    @property
    def p_wait(self) -> float:
        return erlang_c(self.slots, self.offered_load)

    @property
    def mean_wait_s(self) -> float:
        if not self.stable:
            return math.inf
        return self.p_wait * self.service_time_s / (self.slots - self.offered_load)

    def service_level(self, answer_time_s: float) -> float:
        """P(wait <= t) = 1 - C exp(-(c - a) t / S)."""
        if not self.stable:
            return 0.0
        return 1 - self.p_wait * math.exp(-(self.slots - self.offered_load) * answer_time_s / self.service_time_s)

    def wait_percentile_s(self, p: float) -> float:
        """The p-quantile of the wait: 0 when at least p of arrivals do not wait."""
        if not 0 < p < 1:
            raise InputError(f"percentile must be between 0 and 1, got {p}")
        if not self.stable:
            return math.inf
        c_prob = self.p_wait
        if 1 - c_prob >= p:
            return 0.0
        return self.service_time_s / (self.slots - self.offered_load) * math.log(c_prob / (1 - p))

    @property
    def mean_response_s(self) -> float:
        return self.mean_wait_s + self.service_time_s

    @property
    def mean_queue_length(self) -> float:
        return self.arrival_rate_per_s * self.mean_wait_s


@dataclass(frozen=True)
class Target:
    """What the slots must achieve; any combination."""

    mean_wait_s: float | None = None
    wait_percentile: tuple[float, float] | None = None  # (p, seconds)
    service_level: tuple[float, float] | None = None  # (fraction, answer time s)
    max_utilization: float | None = None

    def met_by(self, queue: MMc) -> bool:
        if not queue.stable:
            return False
        if self.mean_wait_s is not None and queue.mean_wait_s > self.mean_wait_s:
            return False
        if self.wait_percentile is not None:
            p, limit = self.wait_percentile
            if queue.wait_percentile_s(p) > limit:
                return False
        if self.service_level is not None:
            fraction, answer = self.service_level
            if queue.service_level(answer) < fraction:
                return False
        return self.max_utilization is None or queue.utilization <= self.max_utilization

    @property
    def empty(self) -> bool:
        return all(
            v is None for v in (self.mean_wait_s, self.wait_percentile, self.service_level, self.max_utilization)
        )


def required_slots(arrival_rate_per_s: float, service_time_s: float, target: Target, limit: int = 100_000) -> int:
    """The smallest number of slots that meets ``target`` (every criterion improves with slots)."""
    if arrival_rate_per_s <= 0 or service_time_s <= 0:
        raise InputError("arrival rate and service time must be above zero")
    if target.empty:
        raise InputError("give a target: --target-wait, --target-p95-wait, --service-level or --max-utilization")
    if target.max_utilization is not None and not 0 < target.max_utilization <= 1:
        raise InputError(f"--max-utilization must be in (0, 1], got {target.max_utilization:g}")

    def met(slots: int) -> bool:
        return target.met_by(MMc(arrival_rate_per_s, service_time_s, slots))

    # every criterion improves with slots: double until met, then bisect (a goal no count meets
    # is found in ~17 evaluations, not 100,000)
    offered = arrival_rate_per_s * service_time_s
    if not offered < limit:  # a stable queue needs more slots than the load; Erlang C is O(slots)
        raise InputError(f"the load ({offered:,.0f} busy slots on average) needs more than {limit:,} slots")
    low = max(1, math.floor(offered) + 1)
    if met(low):
        return low
    high = low
    while not met(high):
        if high >= limit:
            raise InputError(f"no number of slots up to {limit:,} meets the target")
        low, high = high, min(limit, high * 2)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if met(middle) else (middle, high)
    return high


def pollaczek_khinchine_wait(arrival_rate_per_s: float, mean_s: float, second_moment_s2: float) -> float:
    """M/G/1's mean wait in queue (Pollaczek-Khinchine): Wq = lambda E[S^2] / (2 (1 - rho))."""
    rho = arrival_rate_per_s * mean_s
    if not 0 <= rho < 1:
        raise InputError(f"M/G/1 needs utilisation below 1, got {rho:g}")
    return arrival_rate_per_s * second_moment_s2 / (2 * (1 - rho))


def md_c_wait(slots: int, arrival_rate_per_s: float, service_s: float) -> float:
    """M/D/c's exact mean wait in queue (Crommelin 1932, in the form of Franx 2001, "A simple
    solution for the M/D/c waiting time distribution"): with a = lambda D and z_1..z_{c-1} the roots
    of z^c = exp(a (z - 1)) inside the unit disc other than 1,
    E[Lq] = sum_k 1 / (1 - z_k) - (c (c - 1) - a^2) / (2 (c - a)), and Wq = E[Lq] / lambda.
    Each root is the fixed point of z = w_k exp(a (z - 1) / c), w_k = exp(2 pi i k / c), which the
    iteration reaches because the map contracts inside the disc when a < c. With c = 1 the sum is
    empty and this is Pollaczek-Khinchine's rho D / (2 (1 - rho))."""
    import cmath

    a = arrival_rate_per_s * service_s
    if slots < 1 or not 0 < a < slots:
        raise InputError(f"M/D/c needs 0 < lambda D < c, got lambda D = {a:g} with c = {slots}")
    total = 0j
    for k in range(1, slots):
        w = cmath.exp(2j * math.pi * k / slots)
        z = 0j
        for _ in range(10_000):
            nxt = w * cmath.exp(a * (z - 1) / slots)
            if abs(nxt - z) < 1e-15:
                break
            z = nxt
        total += 1 / (1 - z)
    lq = total.real - (slots * (slots - 1) - a * a) / (2 * (slots - a))
    return lq / arrival_rate_per_s
