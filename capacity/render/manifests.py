"""KEDA's ScaledObject, as ``recommend scale-out`` and ``autoscale`` print it (``--format k8s``)."""

from __future__ import annotations

from typing import Any


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
) -> dict[str, Any]:
    """A KEDA ScaledObject on the SQS (queueLength), Redis (listLength) or RabbitMQ (``mode`` and
    ``value``; the connection from the worker's own ``RABBITMQ_HOST`` variable, so no URL and no
    password is written here) scaler; the HPA's behaviour under
    advanced.horizontalPodAutoscalerConfig when given."""

    def count(value: float) -> str:  # KEDA reads these as strings of a number, never 1e+06
        return str(int(value)) if float(value).is_integer() else repr(float(value))

    length = count(target)
    if scaler == "sqs":
        metadata = {"queueURL": queue, "queueLength": length, "awsRegion": "REPLACE"}
        if activation:
            metadata["activationQueueLength"] = count(activation)
        trigger = {"type": "aws-sqs-queue", "metadata": metadata}
    elif scaler == "rabbitmq":
        metadata = {"protocol": protocol, "mode": mode, "value": length, "queueName": queue}
        metadata["hostFromEnv"] = "RABBITMQ_HOST"
        if activation:
            metadata["activationValue"] = count(activation)
        trigger = {"type": "rabbitmq", "metadata": metadata}
    else:
        metadata = {"address": "REPLACE:6379", "listName": queue, "listLength": length}
        if activation:
            metadata["activationListLength"] = count(activation)
        trigger = {"type": "redis", "metadata": metadata}
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
