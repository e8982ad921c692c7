from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capacity.errors import InputError
from capacity.profiles import Profiles
from capacity.sizing.recommend import (
    concurrency_from_resources,
    implied_cpu_per_job,
    photo_tier,
    recommend_photos,
    replica_topology,
    required_workers,
    task_throughput,
    topology_for_users,
)
from capacity.units import parse_size

GiB = 2**30


# --- resources: seed 002 ---------------------------------------------------------------------


def test_seed_002_formula_defaults_medium_instance() -> None:
    # seed 002 calculateConcurrency(2, 4): min(floor(2), floor(4 / 0.5)) = 2; max(1, floor(0.6)) = 1
    r = concurrency_from_resources(2, 4 * GiB)
    assert (r.cpu_slots, r.memory_slots) == (2, 8)
    assert (r.global_concurrency, r.per_tenant_concurrency, r.limited_by) == (2, 1, "cpu")
    assert r.cpu_headroom == 0
    assert r.memory_headroom_bytes == 3 * GiB


def test_seed_002_table_global_column_needs_0_4_cpu_per_job(shipped: Profiles) -> None:
    # seed 002 Concurrency Policy table: global 2, 5, 10, 20 for 1, 2, 4, 8 CPUs
    for inst in shipped.instances.instances:
        assert implied_cpu_per_job(inst) == pytest.approx(0.4, abs=0.1)
        r = concurrency_from_resources(inst.cpu, inst.memory, cpu_per_job=0.4, instance=inst)
        assert r.global_concurrency == inst.policy.global_concurrency


def test_seed_002_table_per_tenant_column_differs_from_its_formula(shipped: Profiles) -> None:
    # formula: max(1, floor(0.3 x global)) = 1, 1, 3, 6; table: 1, 2, 3, 5
    per_tenant = {
        i.name: concurrency_from_resources(i.cpu, i.memory, cpu_per_job=0.4, instance=i).per_tenant_concurrency
        for i in shipped.instances.instances
    }
    assert per_tenant == {"small": 1, "medium": 1, "large": 3, "xlarge": 6}
    differs = {
        i.name: concurrency_from_resources(i.cpu, i.memory, cpu_per_job=0.4, instance=i).policy_differs
        for i in shipped.instances.instances
    }
    assert differs == {"small": False, "medium": True, "large": False, "xlarge": True}


def test_memory_binds_for_a_3d_render(shipped: Profiles) -> None:
    job = shipped.job_type("3D Render")  # 1-2 CPU, 1-2 GB: sized at the high end
    r = concurrency_from_resources(8, 4 * GiB, cpu_per_job=job.cpu[1], mem_per_job_bytes=job.memory[1])
    assert (r.cpu_slots, r.memory_slots, r.global_concurrency, r.limited_by) == (4, 2, 2, "memory")


def test_machine_too_small_for_one_job() -> None:
    r = concurrency_from_resources(0.5, GiB)
    assert (r.global_concurrency, r.per_tenant_concurrency) == (0, 0)


@pytest.mark.parametrize("kwargs", [{"cpu": -1}, {"cpu": 0}, {"tenant_share": 0}, {"tenant_share": 1.5}])
def test_resources_reject_impossible_input(kwargs: dict[str, float]) -> None:
    args: dict[str, float] = {"cpu": 2, "memory_bytes": GiB, **kwargs}
    with pytest.raises(InputError):
        concurrency_from_resources(**args)  # type: ignore[arg-type]


@given(
    st.floats(min_value=0.25, max_value=64),
    st.integers(min_value=2**28, max_value=2**36),
    st.integers(min_value=0, max_value=2**34),
    st.floats(min_value=0.1, max_value=4),
)
def test_more_memory_never_allows_less_concurrency(cpu: float, memory: int, extra: int, cpu_per_job: float) -> None:
    before = concurrency_from_resources(cpu, memory, cpu_per_job=cpu_per_job)
    after = concurrency_from_resources(cpu, memory + extra, cpu_per_job=cpu_per_job)
    assert after.global_concurrency >= before.global_concurrency
    assert after.per_tenant_concurrency >= before.per_tenant_concurrency


# --- photos: seed 000 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("photos", "tier", "worker", "face"),
    [
        (6, "Testing", 4, 3),  # seed 000: Testing (6-20 fotos) 4/3
        (20, "Testing", 4, 3),
        (21, "Small event", 3, 2),  # gap between 20 and 50: the next, more conservative tier
        (200, "Small event", 3, 2),  # seed 000: Eventos pequeños (50-200) 3/2
        (500, "Medium event", 2, 1),  # seed 000: Eventos medianos (500-1000) 2/1
        (1500, "Large event", 1, 1),
        (5000, "Large event", 1, 1),  # seed 000: Eventos grandes (2000-5000) 1/1
    ],
)
def test_seed_000_tiers(shipped: Profiles, photos: int, tier: str, worker: int, face: int) -> None:
    t = photo_tier(photos, shipped.photos)
    assert (t.name, t.worker_concurrency, t.face_worker_concurrency) == (tier, worker, face)


def test_seed_000_concurrency_4_implies_memory_bandwidth_and_calls(shipped: Profiles) -> None:
    r = recommend_photos(10, shipped.photos)
    assert r.worker_concurrency == 4
    # 4 x 100-200 MB; seed 000's worked example says 800 MB-1.6 GB (twice its per-photo figure)
    assert r.peak_memory_bytes == (400 * 10**6, 800 * 10**6)
    # 4 x (0.5-2 MB down + 0.5-1 MB up)
    assert r.bandwidth_bytes == (4 * 10**6, 12 * 10**6)
    assert r.concurrent_llm_calls == 4  # "4 llamadas Gemini simultáneas"
    assert shipped.photos.worked_example is not None
    assert shipped.photos.worked_example.peak_memory == (parse_size("800MB"), parse_size("1.6GB"))


def test_photo_duration_and_api_limit(shipped: Profiles) -> None:
    # 5000 photos, concurrency 1, 8 s each: 7.5 photos/min, 5000 / 7.5 min = 40000 s
    r = recommend_photos(5000, shipped.photos, service_time_s=8)
    assert r.throughput_per_min == pytest.approx(7.5)
    assert r.duration_s == pytest.approx(40_000)
    # 10 photos at concurrency 4, 2 s each: 120 LLM calls/min against a 60/min limit
    r = recommend_photos(10, shipped.photos, api_rate_limit_per_s=1.0, service_time_s=2)
    assert r.llm_calls_per_min == pytest.approx(120)
    assert r.api_limited
    assert r.throughput_per_min == pytest.approx(60)
    assert r.max_concurrency_within_api_limit == 2
    assert r.duration_s == pytest.approx(10)


def test_photo_memory_caps_concurrency(shipped: Profiles) -> None:
    r = recommend_photos(10, shipped.photos, memory_bytes=500 * 10**6)
    assert r.worker_concurrency == 2  # 500 MB / 200 MB per photo
    assert r.face_worker_concurrency == 2


def test_photos_must_be_positive(shipped: Profiles) -> None:
    with pytest.raises(InputError, match="positive count"):
        recommend_photos(0, shipped.photos)


@given(st.integers(min_value=1, max_value=100_000), st.integers(min_value=0, max_value=100_000))
def test_more_photos_never_raise_concurrency(photos: int, extra: int) -> None:
    from capacity.profiles import load_profiles

    profile = load_profiles(None).photos
    assert photo_tier(photos + extra, profile).worker_concurrency <= photo_tier(photos, profile).worker_concurrency


# --- topologies: seeds 004 and 001 -----------------------------------------------------------


def test_seed_004_per_slot_throughput(shipped: Profiles) -> None:
    # seed 004: email ~1200-3600 per hour on one slot, ~2400-14400 on 2-4 slots
    email = shipped.job_type("Email")
    assert task_throughput(email).per_hour == (1200, 3600)
    assert task_throughput(email, (2, 4)).per_hour == (2400, 14400)
    # seed 004: small bulk uploads ~12-120 per hour, ~24-480 on 2-4 slots
    bulk = shipped.job_type("Bulk Predictions")
    assert task_throughput(bulk).per_hour == (12, 120)
    assert task_throughput(bulk, (2, 4)).per_hour == (24, 480)


@pytest.mark.parametrize(
    ("users", "scenario", "workers"),
    [
        (0, "Light Usage", 1),
        (49, "Light Usage", 1),
        (50, "Medium Usage", 2),
        (200, "Medium Usage", 2),
        (201, "Heavy Usage", 4),
    ],
)
def test_seed_004_user_scenarios(shipped: Profiles, users: int, scenario: str, workers: int) -> None:
    t = topology_for_users(users, shipped.topologies.user_scenarios)
    assert (t.scenario.name, len(t.scenario.workers)) == (scenario, workers)
    low, high = t.scenario.total_concurrency
    assert low <= t.total_concurrency <= high


def test_seed_004_worker_command_lines(shipped: Profiles) -> None:
    t = topology_for_users(100, shipped.topologies.user_scenarios)
    # seed 004 Railway production: -Q emails --concurrency=4, -Q bulk_predictions --concurrency=2
    assert t.worker_commands[0].startswith("celery -A app.workers.celery_app worker -Q emails --concurrency=4 ")
    assert t.worker_commands[1].startswith(
        "celery -A app.workers.celery_app worker -Q bulk_predictions --concurrency=2 "
    )
    assert "--soft-time-limit=300 --time-limit=600 --max-tasks-per-child=50" in t.worker_commands[0]


@pytest.mark.parametrize(
    ("replicas", "total", "tier"),
    [(1, 4, "Light Load"), (2, 8, "Light Load"), (4, 16, "Medium Load"), (8, 32, "Heavy Load"), (10, 40, "Maximum")],
)
def test_seed_001_replicas_times_threads(shipped: Profiles, replicas: int, total: int, tier: str) -> None:
    t = replica_topology(replicas, None, shipped.topologies.replica_tiers)
    assert t.total_concurrent_tasks == total
    assert t.tier is not None and t.tier.name == tier


# --- scale-out: seed 002, AWS ----------------------------------------------------------------


def test_seed_002_required_workers_example() -> None:
    # seed 002: queue depth 500, concurrency 5, 80% -> 4 jobs/worker; (500 / 4) x 1.2 = 150
    r = required_workers(500, 5)
    assert r.jobs_per_worker == 4
    assert r.required_workers == 150


def test_aws_backlog_per_instance_example() -> None:
    # AWS EC2 Auto Scaling User Guide, "Scaling policy based on Amazon SQS": 0.1 s per message and
    # 10 s acceptable latency give a backlog per instance of 10 / 0.1 = 100; 1500 messages need 15.
    r = required_workers(1500, 1, acceptable_latency_s=10, service_time_s=0.1)
    assert r.backlog_per_instance == pytest.approx(100)
    assert r.aws_required_workers == 15
    assert r.keda_target == 100


def test_latency_without_service_time_is_refused() -> None:
    with pytest.raises(InputError, match="go together"):
        required_workers(10, 2, acceptable_latency_s=10)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=1, max_value=64),
    st.sampled_from([0.5, 0.7, 0.8, 0.9, 1.0]),
)
def test_more_load_never_asks_for_fewer_workers(depth: int, extra: int, concurrency: int, util: float) -> None:
    assert (
        required_workers(depth + extra, concurrency, util).required_workers
        >= required_workers(depth, concurrency, util).required_workers
    )
