"""Every manifest the tool prints, checked strictly against its schema (issue #27): Kubernetes'
own objects (the sharded inject's Job, recommend's Deployment) with kubernetes-validate
(Kubernetes 1.37, --strict: an unknown field is an error), KEDA's ScaledObject and
TriggerAuthentication with the OpenAPI schemas of KEDA's own CRDs, kept as test data in
tests/data/keda/ (KEDA v2.20.2, config/crd/bases/, Apache-2.0), made strict the way
``kubectl apply --validate=strict`` is: a field the schema does not name is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from capacity.cli import app

KEDA = Path(__file__).resolve().parents[2] / "data" / "keda"
KUBERNETES = "1.37.0"


def strict(schema: Any) -> Any:
    """The CRD schema with every object closed (additionalProperties false where the schema lists
    properties and does not say otherwise, nor preserves unknown fields)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        closable = "properties" in out and "additionalProperties" not in out
        if closable and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def keda_schema(kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((KEDA / f"keda.sh_{kind.lower()}s.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return strict(version["schema"]["openAPIV3Schema"])  # type: ignore[no-any-return]


def check(documents: list[dict[str, Any]]) -> list[str]:
    """Validate each document by its kind; their kinds, in order."""
    kinds = []
    for doc in documents:
        kinds.append(doc["kind"])
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, keda_schema(doc["kind"]))
        else:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    return kinds


def printed(*args: str, env: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    # the notes are YAML comments, wrapped: read as one text
    text = (result.stdout + result.stderr).replace("\n# ", " ")
    return [d for d in yaml.safe_load_all(result.stdout) if d], text


def test_the_strict_check_catches_an_unknown_field() -> None:
    (scaled,), _ = printed("autoscale", "--concurrency", "2", "--count", "100", "-f", "k8s")
    scaled["spec"]["trigers"] = scaled["spec"].pop("triggers")  # a typo a user could make
    with pytest.raises(jsonschema.ValidationError):
        check([scaled])
    job, _ = printed("inject", "--broker", "redis://127.0.0.1:6379/0", "--count", "10", "--shards", "2", "-f", "k8s")
    job[0]["spec"]["paralelism"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        check(job)


def test_the_sharded_inject_job_on_redis_and_on_sqs() -> None:
    base = ("inject", "--count", "100", "--mode", "sustained", "--rate", "10/s", "--shards", "3", "-f", "k8s")
    documents, _ = printed(*base, "--broker", "redis://127.0.0.1:6379/0")
    assert check(documents) == ["Job"]
    documents, _ = printed(*base, "--broker", "sqs://", "--image", "registry.example.com/capacity:1")
    assert check(documents) == ["Job"]


def test_recommends_deployment_and_scaled_object() -> None:
    documents, _ = printed("recommend", "--queue-depth", "500", "--concurrency", "5", "-f", "k8s")
    assert check(documents) == ["Deployment", "ScaledObject"]


@pytest.mark.parametrize(
    ("policy", "broker", "kinds"),
    [
        ("keda-redis", None, ["ScaledObject"]),
        ("keda-redis", "redis://:s3cr3t-pw@redis.prod:6380/2", ["TriggerAuthentication", "ScaledObject"]),
        ("keda-redis", "rediss://redis.prod:6379/0", ["ScaledObject"]),
        ("keda-sqs", None, ["ScaledObject"]),
        ("keda-sqs", "sqs://AKIAEXAMPLE:s3cr3t-pw@", ["TriggerAuthentication", "ScaledObject"]),
        ("keda-rabbitmq", None, ["ScaledObject"]),
        ("keda-rabbitmq", "amqp://app:s3cr3t-pw@rabbit.prod:5672/jobs", ["TriggerAuthentication", "ScaledObject"]),
        ("keda-rabbitmq", "amqp://rabbit.prod:5672/jobs", ["ScaledObject"]),
    ],
)
def test_every_scaled_object_and_its_authentication(policy: str, broker: str | None, kinds: list[str]) -> None:
    args = ["autoscale", "--concurrency", "2", "--count", "500", "--policy", policy, "-f", "k8s", "--queue", "photos"]
    args += ["--min-replicas", "0", "--activation", "3"]
    documents, output = printed(*args, *(["--broker", broker] if broker else []), env={"AWS_REGION": "eu-west-1"})
    assert check(documents) == kinds
    assert "s3cr3t-pw" not in output  # the password is in the Secret the user creates, never here
    scaled = documents[-1]
    trigger = scaled["spec"]["triggers"][0]
    assert not any("REPLACE" in str(v) for v in trigger["metadata"].values())
    if kinds[0] == "TriggerAuthentication":
        assert trigger["authenticationRef"] == {"name": documents[0]["metadata"]["name"]}
        assert "kubectl create secret generic celery-worker-broker" in output


def test_the_issues_redis_case_names_the_host_and_keeps_the_password_out() -> None:
    """Issue #27's case: --broker redis://:secret@redis.prod:6379/0."""
    args = ("autoscale", "--concurrency", "2", "--count", "500", "-f", "k8s", "--queue", "photos")
    documents, output = printed(*args, "--broker", "redis://:secret@redis.prod:6379/0")
    auth, scaled = documents
    assert scaled["spec"]["triggers"][0]["metadata"] == {
        "address": "redis.prod:6379",
        "listName": "photos",
        "listLength": "100",
    }
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "celery-worker-broker", "key": "password"}
    ]
    assert "kubectl create secret generic celery-worker-broker --from-literal=password=..." in output
    # the only lower-case "secret"s are kubectl's and KEDA's words, not the password
    assert "secret" not in output.replace("create secret generic", "").replace("secretTargetRef", "")


def test_a_fleet_files_pools_name_their_brokers(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "broker: redis://:pw-one@redis.prod:6379/0\n"
        "classes:\n"
        "  - {name: emails, queue: emails, arrivals: {kind: poisson, rate: 2/s, count: 200},\n"
        "     service: {kind: constant, mean: 1s}}\n"
        "  - {name: bulk, queue: bulk, arrivals: {kind: poisson, rate: 1/s, count: 100},\n"
        "     service: {kind: constant, mean: 2s}}\n"
        "pools:\n"
        "  - {name: mail, queues: [emails], concurrency: 2, policy: keda-redis, target: 20}\n"
        "  - {name: heavy, queues: [bulk], concurrency: 2, policy: keda-rabbitmq, target: 10,\n"
        "     broker: 'amqp://app:pw-two@rabbit.prod:5672/jobs'}\n"
    )
    documents, output = printed("autoscale", "--fleet", str(fleet), "-f", "k8s")
    assert check(documents) == ["TriggerAuthentication", "ScaledObject", "TriggerAuthentication", "ScaledObject"]
    assert "pw-one" not in output and "pw-two" not in output
    assert documents[1]["spec"]["triggers"][0]["metadata"]["address"] == "redis.prod:6379"
    assert documents[3]["spec"]["triggers"][0]["authenticationRef"] == {"name": "heavy-broker"}
