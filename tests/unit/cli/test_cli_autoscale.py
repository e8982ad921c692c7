"""capacity autoscale and the fleet file as a user runs them (typer's CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from capacity.cli import app
from capacity.errors import InputError
from capacity.sizing.fleetfile import topology_fleet


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


BURST = ("autoscale", "--concurrency", "4", "--count", "10000", "--startup", "20s", "--max-replicas", "20")


def test_the_json_has_the_documented_keys(runner: CliRunner) -> None:
    code, out, _ = run(runner, *BURST, "--instance", "medium", "-f", "json")
    assert code == 0
    data = json.loads(out)
    for key in ("drain_time_s", "max_replicas", "wait_p95_s", "replica_hours", "monthly_cost_usd", "timeline"):
        assert key in data
    assert set(data["timeline"][0]) >= {"t_s", "replicas", "ready_replicas", "queue_depth", "oldest_wait_s"}
    # the hand-computed case (tests/unit/sizing/test_autoscale.py): drains at 177 s
    assert data["drain_time_s"] == 177.0 and data["max_replicas"] == 20
    assert data["monthly_cost_usd"] > 0


def test_the_goal_search_emits_the_scaled_object_for_the_target_found(runner: CliRunner) -> None:
    args = ("autoscale", "--concurrency", "4", "--arrival", "poisson", "--arrival-rate", "20/s", "--count")
    args += ("20000", "--service", "exponential", "--service-time", "2s", "--max-replicas", "60")
    args += ("--goal-p95-wait", "60s")
    code, out, _ = run(runner, *args, "-f", "json")
    assert code == 0
    data = json.loads(out)
    chosen = data["target"]
    meeting = [row for row in data["search"] if row["wait_p95_s"] <= 60]
    assert data["wait_p95_s"] <= 60
    # the cheapest over one window (the longest run's: a run that ends sooner keeps its minimum),
    # over every target and minimum tried
    best = min(meeting, key=lambda r: (r["replica_hours_over_window"], -r["target"], r["min_replicas"]))
    assert (chosen, data["min_replicas"]) == (best["target"], best["min_replicas"])
    assert {r["min_replicas"] for r in data["search"]} == {1, 2, 4}
    code, out, _ = run(runner, *args, "-f", "k8s", "--queue", "photos")
    scaled = yaml.safe_load(out)
    assert code == 0 and scaled["kind"] == "ScaledObject"
    assert scaled["spec"]["triggers"][0]["metadata"] == {
        "addressFromEnv": "REDIS_ADDRESS", "listName": "photos", "listLength": str(int(chosen))
    }  # fmt: skip
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert scaled["spec"]["maxReplicaCount"] == 60 and scaled["spec"]["minReplicaCount"] == data["min_replicas"]


def test_the_html_report_has_the_timeline_plot(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "autoscale.html"
    code, _, _ = run(runner, *BURST, "-f", "html", "-o", str(out))
    html = out.read_text()
    assert code == 0 and "autoscale_timeline.png" in html and "data:image/png;base64," in html


def test_stages_and_volume(runner: CliRunner, tmp_path: Path) -> None:
    stages = tmp_path / "stages.yaml"
    stages.write_text("- {duration: 60s, rate: 5/s}\n- {duration: 60s, rate: 20/s}\n")
    base = ("autoscale", "--concurrency", "2", "--arrival", "stages", "--stages", str(stages), "-f", "json")
    code, out, _ = run(runner, *base)
    assert code == 0 and json.loads(out)["tasks"] == 300 + 1200
    code, out, _ = run(runner, *base, "--volume", "2x", "--speedup", "2")
    assert code == 0 and json.loads(out)["tasks"] == 3000


FLEET = """
classes:
  - {name: emails, queue: emails, arrivals: {kind: poisson, rate: 1/s, count: 600},
     service: {kind: lognormal, mean: 1s, cv: 0.5}}
  - {name: bulk, queue: bulk_predictions, arrivals: {kind: burst, count: 100, at: 60s},
     service: {kind: constant, mean: 20s}}
pools:
  - {name: emails, queues: [emails], concurrency: 4, replicas: 1}
  - {name: bulk, queues: [bulk_predictions], concurrency: 4, POLICY}
"""


def test_a_fleet_file_drives_simulate_and_autoscale(runner: CliRunner, tmp_path: Path) -> None:
    fixed, scaled = tmp_path / "fixed.yaml", tmp_path / "scaled.yaml"
    fixed.write_text(FLEET.replace("POLICY", "replicas: 1"))
    scaled.write_text(FLEET.replace("POLICY", "policy: keda-redis, target: 10, max_replicas: 5, startup: 10s"))
    code, out, _ = run(runner, "simulate", "--fleet", str(fixed), "-f", "json")
    assert code == 0
    data = json.loads(out)
    assert set(data["classes"]) == {"emails", "bulk"} and set(data["pools"]) == {"emails", "bulk"}
    assert data["classes"]["emails"]["wait_p95_s"] == 0.0
    # 100 x 20 s on 4 slots: task k waits floor(k / 4) x 20 s, mean 240 s
    assert data["classes"]["bulk"]["wait_mean_s"] == 240.0
    assert 0 < data["pools"]["bulk"]["utilization"] <= 1
    code, _, err = run(runner, "simulate", "--fleet", str(scaled))
    assert code == 2 and "autoscale --fleet" in err
    code, out, _ = run(runner, "autoscale", "--fleet", str(scaled), "-f", "json")
    data = json.loads(out)
    assert code == 0 and data["pools"]["bulk"]["max_replicas"] == 5
    assert data["classes"]["bulk"]["wait_mean_s"] < 240.0
    code, out, _ = run(runner, "autoscale", "--fleet", str(scaled), "-f", "k8s")
    assert code == 0 and yaml.safe_load(out)["metadata"]["name"] == "bulk"


def test_recommend_writes_a_fleet_file_simulate_reads(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "heavy.yaml"
    code, _, _ = run(
        runner, "recommend", "topology", "--users", "300", "--arrival-rate", "emails=2/s,bulk_predictions=0.05/s",
        "--service-time", "emails=1s,bulk_predictions=60s", "-f", "fleet", "-o", str(path),
    )  # fmt: skip
    assert code == 0
    fleet = yaml.safe_load(path.read_text())
    # seed 004's heavy scenario: emails 4; two bulk workers of 4 (one pool of 2 replicas); celery 4
    assert [(p["queues"], p["concurrency"], p["replicas"]) for p in fleet["pools"]] == [
        (["emails"], 4, 1), (["bulk_predictions"], 4, 2), (["celery"], 4, 1)
    ]  # fmt: skip
    assert [c["name"] for c in fleet["classes"]] == ["emails", "bulk_predictions"]
    code, out, _ = run(runner, "simulate", "--fleet", str(path), "-f", "json")
    assert code == 0 and json.loads(out)["classes"]["emails"]["tasks"] == 7200
    code, _, err = run(runner, "recommend", "--users", "30", "-f", "fleet")
    assert code == 2 and "--arrival-rate" in err


def test_a_fleet_that_would_not_load_is_one_line(runner: CliRunner) -> None:
    # found by the CLI fuzz in CI: --service-time 0 reached pydantic and ended in exit 70
    code, _, err = run(
        runner, "recommend", "topology", "--users", "120", "--arrival-rate", "emails=1/s", "--service-time", "0",
        "-f", "fleet",
    )  # fmt: skip
    assert code == 2 and "--service-time" in err and "above zero" in err and err.count("\n") == 1
    # whatever else the fleet model refuses is an input error naming the field, not a traceback
    with pytest.raises(InputError, match=r"would not load: classes\.0\.service"):
        topology_fleet(
            [(("emails",), 2)], {"emails": 1.0}, {"emails": {"kind": "lognormal", "mean": "1s", "cv": -1}}, ""
        )


def test_a_negative_seed_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    # found by the fuzz soak: numpy refused --seed -1 and the CLI ended in exit 70
    for argv in (
        ["simulate", "--workers", "2", "--arrival", "burst", "--count", "5", "--service-time", "1s", "--seed", "-1"],
        ["autoscale", "--concurrency", "4", "--count", "50", "--seed", "-1"],
    ):
        code, _, err = run(runner, *argv)  # typer's refusal (one line through capacity.cli.run)
        assert code == 2 and "Invalid value for '--seed'" in err, err
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "seed: -2\nclasses:\n  - {name: e, queue: e, arrivals: {kind: poisson, rate: 2/s, count: 20}, "
        "service: {kind: constant, mean: 1s}}\npools:\n  - {name: p, queues: [e], concurrency: 2, replicas: 1}\n"
    )
    code, _, err = run(runner, "simulate", "--fleet", str(fleet))
    assert code == 2 and "seed: Input should be greater than or equal to 0" in err, err


def test_mistakes_are_one_line(runner: CliRunner, tmp_path: Path) -> None:
    code, _, err = run(runner, "autoscale")
    assert code == 2 and "--concurrency" in err and err.count("\n") == 1
    for volume in ("0x", "abc", "inf"):
        code, _, err = run(runner, "autoscale", "--concurrency", "2", "--volume", volume)
        assert code == 2 and "--volume" in err, volume
    code, _, err = run(runner, "autoscale", "--concurrency", "2", "--arrival", "stages")
    assert code == 2 and "--stages" in err


def test_keda_rabbitmq_scaled_object(runner: CliRunner) -> None:
    """--policy keda-rabbitmq prints KEDA's rabbitmq trigger: mode, value, protocol and queue as the
    scaler's documentation names them; the connection from the worker's RABBITMQ_HOST (no URL, no
    password in the manifest)."""
    args = ("autoscale", "--concurrency", "4", "--count", "2000", "--service-time", "1s", "--policy")
    args += ("keda-rabbitmq", "--target", "25", "--rabbitmq-mode", "MessageRate", "--rabbitmq-protocol", "http")
    code, out, err = run(runner, *args, "--activation", "5", "-f", "k8s", "--queue", "photos")
    assert code == 0, err
    trigger = yaml.safe_load(out)["spec"]["triggers"][0]
    assert trigger == {
        "type": "rabbitmq",
        "metadata": {
            "protocol": "http", "mode": "MessageRate", "value": "25", "queueName": "photos",
            "hostFromEnv": "RABBITMQ_HOST", "activationValue": "5",
        },
    }  # fmt: skip
    code, _, err = run(
        runner, "autoscale", "--concurrency", "4", "--policy", "keda-rabbitmq", "--rabbitmq-mode", "MessageRate"
    )
    assert code == 2 and "--rabbitmq-protocol http" in err
