"""The autoscaling simulation against the documented algorithms, on cases computed by hand.

The HPA (kubernetes.io, "Horizontal Pod Autoscaling", and replica_calculator.go for an external
metric with an AverageValue target): desiredReplicas = ceil(metric / target) unless
|metric / (target x current) - 1| <= 0.1; default behaviour: scale up by at most max(4 pods,
100%) per 15 s, scale down to the highest recommendation of the last 300 s (those strictly after
now - 300 s). KEDA's Redis scaler reports listLength (tasks waiting in the list)."""

from __future__ import annotations

import numpy as np
import pytest

from capacity.errors import InputError
from capacity.sizing.autoscale import simulate_fleet
from capacity.sizing.policies import Fleet, Policy


def burst_case() -> tuple[np.ndarray, np.ndarray, Fleet, Policy]:
    # issue #14's case: a 10,000-task burst, S = 1 s, 4 slots per replica, target 100,
    # 1-20 replicas, 20 s start-up; one replica ready at t = 0; the HPA first reads at t = 15 s
    return np.zeros(10_000), np.ones(10_000), Fleet(4, 1, 20, 20.0), Policy("keda-redis", target=100)


def test_a_burst_scales_as_computed_by_hand_from_the_hpa_documentation() -> None:
    result = simulate_fleet(*burst_case())
    at = {p["t_s"]: p for p in result.timeline}
    # t=15: 60 done, 4 running, 9,936 waiting -> ceil(99.36) = 100, limited to max(1+4, 2x1) = 5
    assert (at[15]["replicas"], at[15]["ready_replicas"], at[15]["queue_depth"]) == (5, 1, 9936)
    # t=30: 120 done, 9,876 waiting -> 99, limited to max(5+4, 2x5) = 10; the 4 added at 15 are
    # ready at 35
    assert (at[30]["replicas"], at[30]["ready_replicas"], at[30]["queue_depth"]) == (10, 1, 9876)
    # t=45: 140 done by 35, then 20/s for 10 s: 340 done, 20 running, 9,640 waiting -> 97,
    # limited to max(14, 20) = 20
    assert (at[45]["replicas"], at[45]["ready_replicas"], at[45]["queue_depth"]) == (20, 5, 9640)
    # t=60: 340 + 20x5 (to 50) + 40x10 = 840 done, 40 running: 9,120 waiting; all 20 ready at 65
    assert (at[60]["replicas"], at[60]["ready_replicas"], at[60]["queue_depth"]) == (20, 10, 9120)
    assert at[75]["ready_replicas"] == 20
    # drain: 1,040 done by 65, the other 8,960 at 80/s take 112 s: the last finishes at 177 s
    assert result.drain_time_s == pytest.approx(177.0)
    assert result.max_replicas == 20
    # scale-down: the recommendations are 21 (capped at 20) at t=150, 9 at t=165 (880 waiting), 0
    # after. At t=450 the window (150, 450] holds 9: scale to 9; at t=465 (165, 465] holds 0 -> 1
    assert at[435]["replicas"] == 20
    assert at[450]["replicas"] == 9
    assert at[465]["replicas"] == 1
    # the first task waits 0; the last starts at 176 s
    assert result.wait_p99_s <= 176.0 and result.wait_mean_s > 0


def test_a_fixed_fleet_is_the_fcfs_pool() -> None:
    # 4 replicas x 2 slots, 80 tasks of 1 s at t=0: 10 rounds of 8, the last finishes at 10 s;
    # waits 0..9 s, ten tasks each: mean 4.5 s
    result = simulate_fleet(np.zeros(80), np.ones(80), Fleet(2, 1, 10, 0.0), Policy("fixed", replicas=4))
    assert result.drain_time_s == pytest.approx(10.0)
    assert result.wait_mean_s == pytest.approx(4.5)
    assert result.replica_hours == pytest.approx(4 * 10 / 3600)


def test_tolerance_keeps_the_fleet_when_the_metric_is_within_ten_percent() -> None:
    # 2 replicas, target 100: 215 waiting is a ratio of 1.075, inside the 10% tolerance -> stay at 2
    # (ceil(215 / 100) = 3 otherwise); slow tasks keep the queue still while the HPA reads it
    arrivals, services = np.zeros(215 + 8), np.full(215 + 8, 1000.0)
    result = simulate_fleet(arrivals, services, Fleet(4, 1, 10, 0.0, initial_replicas=2), Policy(target=100))
    assert result.timeline[0]["queue_depth"] == 215 and result.timeline[0]["replicas"] == 2


def test_seed_002_formula_every_period() -> None:
    # depth 9,936 at t=15, concurrency 4: ceil(9936 / (4 x 0.8) x 1.2) = 3,726, capped at 20
    arrivals, services, fleet, _ = burst_case()
    result = simulate_fleet(arrivals, services, fleet, Policy("seed002"))
    assert result.timeline[0]["replicas"] == 20


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InputError, match="--policy"):
        simulate_fleet(np.zeros(1), np.ones(1), Fleet(1), Policy("hpa-magic"))
    with pytest.raises(InputError, match="replicas"):
        simulate_fleet(np.zeros(1), np.ones(1), Fleet(1, 5, 2), Policy())


def test_the_command_answers_which_target_meets_a_p95_goal_and_at_what_cost() -> None:
    import json

    from tests.fuzzcli import run_in_process

    argv = ["autoscale", "--concurrency", "4", "--max-replicas", "20", "--startup", "30s", "--arrival", "poisson"]
    argv += ["--arrival-rate", "20/s", "--count", "20000", "--service", "lognormal", "--service-time", "1s"]
    argv += ["--service-cv", "0.5", "--goal-p95-wait", "60s", "--instance", "medium", "-f", "json"]
    outcome = run_in_process(argv)
    assert outcome.code == 0, outcome.stderr
    data = json.loads(outcome.stdout)
    for key in ("drain_time_s", "max_replicas", "wait_p95_s", "replica_hours", "monthly_cost_usd", "timeline"):
        assert key in data
    assert set(data["timeline"][0]) >= {"t_s", "replicas", "ready_replicas", "queue_depth"}
    meeting = [s for s in data["search"] if s["wait_p95_s"] <= 60]
    # the answer is the cheapest meeting the goal: no other meeting target costs less over the
    # window every trial is priced over
    ours = next(s for s in data["search"] if (s["target"], s["min_replicas"]) == (data["target"], data["min_replicas"]))
    assert data["wait_p95_s"] <= 60
    assert ours["replica_hours_over_window"] == min(s["replica_hours_over_window"] for s in meeting)
    assert data["monthly_cost_usd"] > 0


def test_keda_activation_from_zero_and_back_after_the_cooldown() -> None:
    # KEDA's ScaledObject docs: with minReplicaCount 0, KEDA itself scales 0 -> 1 when the metric
    # passes activationListLength (0), checked every pollingInterval (30 s), and back to 0 once
    # the trigger has been inactive for cooldownPeriod (300 s); the HPA works between 1 and max.
    # 100 tasks at t=0, S = 1 s, 4 slots, 20 s start-up, target 100:
    result = simulate_fleet(np.zeros(100), np.ones(100), Fleet(4, 0, 10, 20.0), Policy("keda-redis", target=100))
    at = {p["t_s"]: p for p in result.timeline}
    # t=15: nothing yet (the HPA does not act at 0 replicas, KEDA has not polled)
    assert (at[15]["replicas"], at[15]["queue_depth"]) == (0, 100)
    # t=30: KEDA sees 100 > 0 and scales to 1; the HPA's ratio 100 / (100 x 1) = 1 keeps it at 1
    assert (at[30]["replicas"], at[30]["ready_replicas"]) == (1, 0)
    # ready at 50; 100 tasks at 4/s: the last finishes at 75 s
    assert result.drain_time_s == pytest.approx(75.0)
    # KEDA last saw work at its 60 s poll (56 waiting); at 360 s the cooldown has passed: 0
    assert at[345]["replicas"] == 1 and at[360]["replicas"] == 0
    # task i starts at 50 + floor(i / 4) s; the 95th percentile (numpy's, index 0.95 x 99 = 94.05)
    # lies between tasks 94 and 95, both starting at 73 s
    assert result.wait_p95_s == pytest.approx(73.0)


def test_aws_backlog_per_instance_follows_the_aws_example() -> None:
    # AWS Auto Scaling, "Scaling policy based on Amazon SQS": ApproximateNumberOfMessages 1,500 on
    # 10 running instances is a backlog of 150 per instance; with an acceptable latency of 10 s and
    # 0.1 s per message the target is 100, so the group scales out to 15 instances.
    # 10 replicas x 4 slots hold 40 long tasks; 1,500 more wait.
    arrivals, services = np.zeros(1540), np.full(1540, 1000.0)
    fleet = Fleet(4, 1, 30, 20.0, initial_replicas=10)  # the 5 new ones take no task before 35 s
    result = simulate_fleet(arrivals, services, fleet, Policy("aws-backlog", target=100))
    first = result.timeline[0]
    assert (first["queue_depth"], first["replicas"]) == (1500, 15)


def test_runs_of_different_lengths_are_priced_over_one_window() -> None:
    # 4 replicas x 2 slots, 80 tasks of 1 s: 10 s, 40 replica-seconds; over a 100 s window the
    # floor (the 4 fixed replicas) runs 90 s more: (40 + 4 x 90) / 3600 replica-hours
    result = simulate_fleet(np.zeros(80), np.ones(80), Fleet(2, 1, 10, 0.0), Policy("fixed", replicas=4))
    assert result.floor_replicas == 4 and result.span_s == pytest.approx(10.0)
    assert result.replica_hours_over(100.0) == pytest.approx((40 + 4 * 90) / 3600)
    assert result.replica_hours_over(5.0) == pytest.approx(40 / 3600)


def test_time_with_a_queue_above_seed_002s_critical_depth() -> None:
    # 1,000 tasks of 1 s at t = 0 on a fixed 4 x 2 slots: task j starts at floor(j / 8) s. More than
    # 100 wait until task 899 starts (tasks 899..999 are 101): floor(899 / 8) = 112 s
    result = simulate_fleet(np.zeros(1000), np.ones(1000), Fleet(2, 1, 10, 0.0), Policy("fixed", replicas=4))
    assert result.seconds_queue_critical == pytest.approx(112.0)
    assert result.classes[0].seconds_queue_critical == pytest.approx(112.0)
    # the oldest task above the 10 s wait target: from t = 10 until the last start at 124 s
    assert result.seconds_above_wait_target == pytest.approx(124.0 - 10.0)


def test_a_zero_scale_down_window_follows_each_recommendation() -> None:
    # --scale-down-window 0: no stabilisation; the recommendation of the period is used as it is
    # (400 tasks of 1 s, 4 slots, target 100: 5 replicas at 15 s, then down as the queue empties)
    policy = Policy("keda-redis", target=100, down_window_s=0.0)
    result = simulate_fleet(np.zeros(400), np.ones(400), Fleet(4, 1, 10, 0.0), policy)
    at = {p["t_s"]: p for p in result.timeline}
    # t=15: 60 done, 4 running, 336 waiting -> ceil(3.36) = 4 (within max(1 + 4, 2)): 4 replicas
    assert at[15]["replicas"] == 4 and at[15]["queue_depth"] == 336 - 12
    # t=30: 16 slots from 15 s: 336 - 12 - 16 x 15 = 84 waiting -> ceil(0.84) = 1: down at once
    assert (at[30]["replicas"], at[30]["queue_depth"]) == (1, 84)


def test_keda_rabbitmq_queue_length_follows_kedas_documented_example() -> None:
    # KEDA's RabbitMQ scaler documentation (keda.sh, "RabbitMQ Queue", queueLength / value): "if one
    # pod can handle 10 messages, set the queue length target to 10. If the actual number of
    # messages in the queue is 30, the scaler scales to 3 pods." 1 replica x 2 slots holds 2 long
    # tasks; 30 wait (ready). Over AMQP (a passive declare) the 2 unacked are not counted: 3 pods.
    # Over HTTP (the management API's messages, ready + unacked) 32: ceil(3.2) = 4 pods.
    arrivals, services = np.zeros(32), np.full(32, 1000.0)
    fleet = Fleet(2, 1, 10, 20.0)
    amqp = simulate_fleet(arrivals, services, fleet, Policy("keda-rabbitmq", target=10))
    assert (amqp.timeline[0]["queue_depth"], amqp.timeline[0]["replicas"]) == (30, 3)
    http = simulate_fleet(arrivals, services, fleet, Policy("keda-rabbitmq", target=10, protocol="http"))
    assert http.timeline[0]["replicas"] == 4


def test_keda_rabbitmq_message_rate_counts_the_publish_rate() -> None:
    # KEDA's MessageRate mode: "value: message backlog or publish/sec target per instance", read
    # from the management API's publish rate (message_stats.publish_details.rate, over its 5 s
    # sample). 50 tasks/s published, value 20 per pod: ceil(50 / 20) = 3 pods at the first sync
    # (t = 15 s: the 5 s before it hold 250 arrivals -> 50/s), whatever the backlog: the tasks
    # take 0.01 s, so none waits.
    arrivals = np.arange(0, 60, 1 / 50)
    services = np.full(len(arrivals), 0.01)
    policy = Policy("keda-rabbitmq", target=20, mode="MessageRate", protocol="http")
    result = simulate_fleet(arrivals, services, Fleet(4, 1, 10, 5.0), policy)
    first = result.timeline[0]
    assert (first["t_s"], first["queue_depth"], first["replicas"]) == (15, 0, 3)


def test_keda_rabbitmq_message_rate_needs_the_management_api() -> None:
    # KEDA: MessageRate is read from the HTTP management API only
    with pytest.raises(InputError, match="rabbitmq-protocol http"):
        simulate_fleet(np.zeros(1), np.ones(1), Fleet(1), Policy("keda-rabbitmq", mode="MessageRate"))
    with pytest.raises(InputError, match="rabbitmq-mode"):
        simulate_fleet(np.zeros(1), np.ones(1), Fleet(1), Policy("keda-rabbitmq", mode="Length"))
