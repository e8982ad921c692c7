"""KEDA's ScaledObject, as ``recommend scale-out`` and ``autoscale`` print it (``--format k8s``),
and the TriggerAuthentication that carries the broker's password (from a Secret the user
creates: the password itself is never printed)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from capacity.errors import InputError


@dataclass(frozen=True)
class Connection:
    """How the trigger reaches the broker: its metadata, and the Secret keys a
    TriggerAuthentication maps to the scaler's parameters (parameter -> Secret key)."""

    metadata: dict[str, str]
    secret_keys: dict[str, str] = field(default_factory=dict)
    note: str | None = None


def connection(scaler: str, queue: str, broker: str | None, name: str) -> Connection:
    """The trigger's connection for ``broker`` (a URL as the workers use it), following each KEDA
    scaler's documented parameters; without a broker, where KEDA reads it from the worker's own
    environment (never a placeholder to edit)."""
    if broker is None:
        if scaler == "redis":
            return Connection({"addressFromEnv": "REDIS_ADDRESS", "listName": queue}, note=(
                "KEDA reads the Redis address (host:port) from the worker container's REDIS_ADDRESS "
                "(or give --broker)"))  # fmt: skip
        if scaler == "sqs":
            region = _aws_region()
            if region is None:
                return Connection({"queueURL": queue}, note="set the trigger's awsRegion (AWS_REGION was not set here)")
            return Connection({"queueURL": queue, "awsRegion": region})
        return Connection({"hostFromEnv": "RABBITMQ_HOST", "queueName": queue})
    try:
        parts = urlsplit(broker)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"--broker is malformed: {exc}") from None
    secret = f"{name}-broker"
    if scaler == "redis":
        if parts.scheme not in ("redis", "rediss"):
            raise InputError("--broker: the redis trigger needs a redis:// or rediss:// URL")
        metadata = {"address": f"{parts.hostname}:{port or 6379}", "listName": queue}
        database = parts.path.strip("/") or "0"
        if database != "0":
            metadata["databaseIndex"] = database
        if parts.scheme == "rediss":
            metadata["enableTLS"] = "true"
        keys = {"password": "password"} if parts.password else {}
        if parts.username:
            keys["username"] = "username"
        return Connection(metadata, keys, _secret_note(secret, keys, "Redis"))
    if scaler == "sqs":
        if parts.scheme != "sqs":
            raise InputError("--broker: the aws-sqs-queue trigger needs an sqs:// URL")
        region = _aws_region()
        if region is None:
            raise InputError("the SQS trigger needs the queue's region: set AWS_REGION (or AWS_DEFAULT_REGION)")
        metadata = {"queueURL": queue, "awsRegion": region}
        if parts.hostname:  # sqs://key:secret@host:port: an endpoint of its own (a local SQS)
            metadata["awsEndpoint"] = f"http://{parts.hostname}:{port or 80}"
        keys = {"awsAccessKeyID": "aws-access-key-id", "awsSecretAccessKey": "aws-secret-access-key"}
        if not parts.username:
            return Connection(metadata, note="KEDA needs AWS credentials: add a TriggerAuthentication with "
                              "podIdentity (provider aws) for the worker's role")  # fmt: skip
        return Connection(metadata, keys, _secret_note(secret, keys, "AWS"))
    if parts.scheme not in ("amqp", "amqps", "pyamqp"):
        raise InputError("--broker: the rabbitmq trigger needs an amqp:// URL")
    if parts.password:  # the URL holds the password: all of it goes to the Secret
        return Connection({"queueName": queue}, {"host": "host"}, _secret_note(secret, {"host": "host"}, "RabbitMQ"))
    host = f"amqp{'s' if parts.scheme == 'amqps' else ''}://{parts.hostname}:{port or 5672}{parts.path or '/'}"
    return Connection({"host": host, "queueName": queue})


def _secret_note(secret: str, keys: dict[str, str], what: str) -> str:
    literals = " ".join(f"--from-literal={key}=..." for key in keys.values())
    return (
        f"Create the Secret the TriggerAuthentication reads first: kubectl create secret generic {secret} {literals} "
        f"(the {what} credentials, which are not written here)"
    )


def _aws_region() -> str | None:
    """The region KEDA's SQS trigger needs: boto3's own environment variables, as the workers use."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


def trigger_authentication(name: str, keys: dict[str, str]) -> dict[str, Any]:
    """KEDA's TriggerAuthentication: each scaler parameter read from the Secret ``NAME-broker``."""
    refs = [{"parameter": parameter, "name": f"{name}-broker", "key": key} for parameter, key in keys.items()]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": f"{name}-broker"},
        "spec": {"secretTargetRef": refs},
    }


def scaled_object(
    name: str,
    scaler: str,
    queue: str,
    target: float,
    min_replicas: int,
    max_replicas: int,
    polling_s: float | None = None,
    cooldown_s: float | None = None,
    activation: float | None = None,
    behavior: dict[str, Any] | None = None,
    mode: str = "QueueLength",
    protocol: str = "amqp",
    via: Connection | None = None,
) -> dict[str, Any]:
    """A KEDA ScaledObject on the SQS (queueLength), Redis (listLength) or RabbitMQ (``mode`` and
    ``value``) scaler, reaching the broker ``via`` a Connection (default: from the worker's own
    environment); the HPA's behaviour under advanced.horizontalPodAutoscalerConfig when given."""

    def count(value: float) -> str:  # KEDA reads these as strings of a number, never 1e+06
        return str(int(value)) if float(value).is_integer() else repr(float(value))

    length = count(target)
    where = via or connection(scaler, queue, None, name)
    metadata = dict(where.metadata)
    if scaler == "sqs":
        metadata["queueLength"] = length
        if activation:
            metadata["activationQueueLength"] = count(activation)
        trigger: dict[str, Any] = {"type": "aws-sqs-queue", "metadata": metadata}
    elif scaler == "rabbitmq":
        metadata = {"protocol": protocol, "mode": mode, "value": length, **metadata}
        if activation:
            metadata["activationValue"] = count(activation)
        trigger = {"type": "rabbitmq", "metadata": metadata}
    else:
        metadata["listLength"] = length
        if activation:
            metadata["activationListLength"] = count(activation)
        trigger = {"type": "redis", "metadata": metadata}
    if where.secret_keys:
        trigger["authenticationRef"] = {"name": f"{name}-broker"}
    spec: dict[str, Any] = {"scaleTargetRef": {"name": name}}
    if polling_s is not None:
        spec["pollingInterval"] = round(polling_s)
    if cooldown_s is not None:
        spec["cooldownPeriod"] = round(cooldown_s)
    spec.update(minReplicaCount=min_replicas, maxReplicaCount=max_replicas)
    if behavior is not None:
        spec["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": behavior}}
    spec["triggers"] = [trigger]
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": name}, "spec": spec}
