"""Fleets of several queues and pools: the compiled event loop against the FCFS pool it replaces,
the analytic results that exist (M/D/c, Pollaczek-Khinchine), hand-computed priority cases, and
the fleet file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from capacity.errors import CapacityError, InputError
from capacity.sizing.autoscale import Pool, TaskClass, simulate_fleet, simulate_pools
from capacity.sizing.fleetfile import draw_classes, load_fleet, pools, scale_trace
from capacity.sizing.policies import Fleet, Policy
from capacity.sizing.queueing import md_c_wait, pollaczek_khinchine_wait
from capacity.sizing.simulate import run_pool


def fixed(name: str, queues: tuple[str, ...], concurrency: int, replicas: int = 1) -> Pool:
    return Pool(name, queues, Fleet(concurrency, 1, max(replicas, 1), 0.0), Policy("fixed", replicas=replicas))


def poisson(rate: float, n: int, seed: int) -> np.ndarray:
    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1 / rate, n))
    return arrivals - arrivals[0]


def test_a_fixed_pool_starts_every_task_when_the_heap_simulation_does() -> None:
    # simulate's FCFS pool (a heap of slot free times, in Python) and the fleet's compiled event
    # loop are two implementations of the same model: with c slots fixed, every start must agree
    arrivals = poisson(3.0, 20_000, 5)
    services = np.random.default_rng(6).lognormal(0.0, 0.8, 20_000)
    expected = run_pool(arrivals, services, 3)
    result = simulate_pools([TaskClass("t", "q", arrivals, services)], [fixed("p", ("q",), 3)])
    assert result.wait_mean_s == pytest.approx(float(np.mean(expected - arrivals)), rel=1e-12)
    assert result.wait_p99_s == pytest.approx(float(np.percentile(expected - arrivals, 99)), rel=1e-12)
    assert result.drain_time_s == pytest.approx(float(np.max(expected + services)), rel=1e-12)


def test_md_c_formula_hand_computed_for_two_slots() -> None:
    # Franx (2001): c = 2, a = lambda D = 1 (lambda = 1/s, D = 1 s): the root of z^2 = e^(z - 1)
    # other than 1 solves z = -e^((z - 1) / 2): iterating from 0 gives -0.6065, -0.4484, -0.4848,
    # -0.4760, -0.4781 ... -> -0.47767; E[Lq] = 1 / 1.47767 - (2 - 1) / (2 (2 - 1)) = 0.17674
    assert md_c_wait(2, 1.0, 1.0) == pytest.approx(0.17674, abs=1e-5)
    # c = 1 is Pollaczek-Khinchine with E[S^2] = D^2: rho D / (2 (1 - rho)) = 0.8 / 0.4 = 2 s
    assert md_c_wait(1, 0.8, 1.0) == pytest.approx(2.0)
    assert pollaczek_khinchine_wait(0.8, 1.0, 1.0) == pytest.approx(2.0)
    with pytest.raises(InputError):
        md_c_wait(2, 3.0, 1.0)


@pytest.mark.parametrize("slots", [1, 2, 4])
def test_a_pool_serving_one_poisson_class_with_constant_service_is_md_c(slots: int) -> None:
    # rho = 0.8 on every slot count; 1,000,000 tasks: the simulated mean wait within 3% of Crommelin's
    lam, n = 10.0, 1_000_000
    service = 0.8 * slots / lam
    task_class = TaskClass("t", "q", poisson(lam, n, slots), np.full(n, service))
    result = simulate_pools([task_class], [fixed("p", ("q",), slots)])
    assert result.wait_mean_s == pytest.approx(md_c_wait(slots, lam, service), rel=0.03)
    assert result.pools[0].utilization == pytest.approx(0.8, rel=0.01)


def test_one_slot_with_lognormal_service_is_pollaczek_khinchine() -> None:
    # M/G/1, S lognormal with mean 0.07 s and cv 1.5: E[S^2] = mean^2 (1 + cv^2); lambda = 10/s
    lam, mean, cv, n = 10.0, 0.07, 1.5, 2_000_000
    sigma2 = math.log(1 + cv**2)
    services = np.random.default_rng(9).lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), n)
    result = simulate_pools([TaskClass("t", "q", poisson(lam, n, 8), services)], [fixed("p", ("q",), 1)])
    expected = pollaczek_khinchine_wait(lam, mean, mean**2 * (1 + cv**2))
    assert result.wait_mean_s == pytest.approx(expected, rel=0.05)


def test_a_pool_takes_its_queues_in_priority_order() -> None:
    # one slot consuming [emails, bulk]: three bulk tasks of 10 s at t = 0, an email of 1 s at t = 1.
    # bulk 1 runs 0-10; at 10 the email goes first (10-11, waited 9 s), then bulk 2 (11-21), bulk 3 (21-31)
    bulk = TaskClass("bulk", "bulk", np.zeros(3), np.full(3, 10.0))
    email = TaskClass("email", "emails", np.array([1.0]), np.array([1.0]))
    result = simulate_pools([bulk, email], [fixed("all", ("emails", "bulk"), 1)])
    by = {c.name: c for c in result.classes}
    assert by["email"].wait_max_s == pytest.approx(9.0)
    assert by["bulk"].wait_max_s == pytest.approx(21.0) and by["bulk"].wait_mean_s == pytest.approx((0 + 11 + 21) / 3)
    assert result.drain_time_s == pytest.approx(31.0)


def test_separate_pools_answer_seed_004s_question() -> None:
    # 200 bulk tasks of 20 s at t = 60 and an email every second (1 s each): on one pool of 2 x 4
    # slots the emails wait behind running bulk tasks; with a pool of their own they never wait
    emails = TaskClass("emails", "emails", np.arange(600.0), np.ones(600))
    bulk = TaskClass("bulk", "bulk", np.full(200, 60.0), np.full(200, 20.0))
    shared = simulate_pools([emails, bulk], [fixed("all", ("emails", "bulk"), 4, 2)])
    separate = simulate_pools([emails, bulk], [fixed("emails", ("emails",), 4), fixed("bulk", ("bulk",), 4)])
    assert shared.classes[0].wait_max_s > 10.0
    assert separate.classes[0].wait_max_s == 0.0
    # the bulk pool alone: 200 x 20 s on 4 slots, task k waits floor(k / 4) x 20 s, the last 980 s
    assert separate.classes[1].wait_max_s == pytest.approx(980.0)
    assert separate.pools[1].utilization == pytest.approx(200 * 20 / (4 * (60 + 1000)), rel=1e-9)


def test_a_queue_shared_by_two_pools_goes_to_whichever_has_a_free_slot() -> None:
    # 4 tasks of 10 s at 0 on queue q, consumed by pools a (1 slot) and b (1 slot): two at a time
    task_class = TaskClass("t", "q", np.zeros(4), np.full(4, 10.0))
    result = simulate_pools([task_class], [fixed("a", ("q",), 1), fixed("b", ("q",), 1)])
    assert result.drain_time_s == pytest.approx(20.0)
    assert [p.utilization for p in result.pools] == [pytest.approx(1.0), pytest.approx(1.0)]


def test_each_pool_scales_on_its_own_queue() -> None:
    # a burst on "bulk" scales the bulk pool (keda-redis, target 10); the emails pool, fixed, stays at 1
    emails = TaskClass("emails", "emails", np.arange(100.0), np.full(100, 0.5))
    bulk = TaskClass("bulk", "bulk", np.zeros(400), np.full(400, 5.0))
    scaled = Pool("bulk", ("bulk",), Fleet(2, 1, 10, 10.0), Policy("keda-redis", target=10))
    result = simulate_pools([emails, bulk], [fixed("emails", ("emails",), 2), scaled])
    assert result.pools[0].max_replicas == 1 and result.pools[1].max_replicas == 10
    assert result.max_replicas == 11
    assert result.classes[0].wait_max_s == 0.0


def test_a_day_of_tasks_is_not_refused() -> None:
    # the old Python loop refused more than 5,000,000 tasks; the compiled loop takes 6,000,000 here
    n = 6_000_000
    result = simulate_fleet(np.arange(n) / 1000.0, np.full(n, 0.003), Fleet(4), Policy("fixed", replicas=1))
    assert result.tasks == n and result.classes[0].wait_max_s == 0.0


def test_scale_trace_speeds_up_and_multiplies() -> None:
    offsets = np.array([0.0, 10.0, 20.0])
    assert scale_trace(offsets, speedup=2).tolist() == [0.0, 5.0, 10.0]
    assert scale_trace(offsets, volume=2).tolist() == [0.0, 0.0, 10.0, 10.0, 20.0, 20.0]
    half = scale_trace(np.arange(10_000.0), volume=0.5, rng=np.random.default_rng(1))
    assert 4_800 < len(half) < 5_200
    with pytest.raises(InputError):
        scale_trace(offsets, speedup=0)


FLEET = """
classes:
  - {name: emails, queue: emails, arrivals: {kind: fixed, rate: 1/s, count: 100}, service: {kind: constant, mean: 1s}}
  - {name: bulk, queue: bulk_predictions, arrivals: {kind: burst, count: 40, at: 10s},
     service: {kind: constant, mean: 20s}}
pools:
  - {name: emails, queues: [emails], concurrency: 2, replicas: 1}
  - {name: bulk, queues: [bulk_predictions], concurrency: 4, policy: keda-redis, target: 10, max_replicas: 4,
     startup: 5s}
"""


def test_the_fleet_file_builds_classes_and_pools(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET)
    spec, base = load_fleet(path)
    classes = draw_classes(spec, base)
    assert [len(c.arrivals) for c in classes] == [100, 40]
    assert classes[1].arrivals.min() == 10.0
    with pytest.raises(InputError, match="capacity autoscale --fleet"):
        pools(spec, fixed_only=True)
    built = pools(spec)
    assert built[1].policy.name == "keda-redis" and built[1].fleet.startup_s == 5.0
    result = simulate_pools(classes, built)
    assert result.classes[0].wait_max_s == 0.0 and result.pools[1].max_replicas == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classes: []\npools: []", "classes"),
        (FLEET.replace("queues: [emails]", "queues: [email]"), "no pool consumes its queue 'emails'"),
        (FLEET.replace("policy: keda-redis", "policy: magic"), "policy 'magic'"),
        (FLEET.replace("kind: fixed, rate: 1/s, ", "kind: fixed, "), "fixed arrivals need rate and count"),
        (FLEET.replace("name: bulk, queues", "name: emails, queues"), "pool names must differ"),
    ],
)
def test_a_bad_fleet_file_is_one_line_naming_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(text)
    with pytest.raises(CapacityError, match=message) as caught:
        load_fleet(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_a_huge_fleet_is_refused_before_its_arrays_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # #23: a fleet file of 150,000,020 tasks reached 3.6 GB before the memory check refused it
    # (under a 2 GB limit, as the fuzz runs); the stated counts are summed first, so nothing near
    # that is ever allocated
    import tracemalloc

    from capacity.sizing.memory import ENV_VAR

    monkeypatch.setenv(ENV_VAR, "2GB")
    from capacity.sizing.fleetfile import draw_classes

    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET.replace("count: 100}", "count: 150000000}").replace("count: 40,", "count: 20,"))
    spec, base = load_fleet(path)
    tracemalloc.start()
    try:
        with pytest.raises(CapacityError, match="150,000,020 tasks"):
            draw_classes(spec, base)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, peak
