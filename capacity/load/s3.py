"""Files on Amazon S3 (``s3://bucket/key``): payload files, and task logs written by injectors on
several machines and read back by ``metrics``. boto3's client, configured as the AWS CLI is
($AWS_ENDPOINT_URL and the usual credentials chain); errors become BrokerError without secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from capacity.errors import BrokerError, InputError

SCHEME = "s3://"


def is_s3(reference: str | Path) -> bool:
    return str(reference).startswith(SCHEME)


def parts(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of an s3:// URL."""
    split = urlsplit(url)
    return split.netloc, split.path.lstrip("/")


def client() -> Any:
    import boto3

    return boto3.client("s3")


def upload(local: Path, url: str) -> str:
    """Put ``local`` at ``url`` (a key, or a prefix ending in /); the object's URL."""
    bucket, key = parts(url)
    if not bucket:
        raise InputError(f"{url!r} is not an s3://bucket/key URL")
    if not key or key.endswith("/"):
        key = f"{key}{local.name}"
    try:
        client().upload_file(str(local), bucket, key)
    except Exception as exc:  # botocore's errors: no bucket, forbidden, unreachable
        raise BrokerError(f"cannot upload {local.name} to s3://{bucket}/{key}: {exc}") from None
    return f"s3://{bucket}/{key}"


def download_logs(url: str, into: Path) -> list[Path]:
    """The task logs at ``url``: one object, or every ``*.log`` under a prefix (with their
    ``_monitor.csv`` samples), copied into ``into``; InputError when there are none."""
    bucket, key = parts(url)
    if not bucket:
        raise InputError(f"{url!r} is not an s3://bucket/key URL")
    s3 = client()
    try:
        if key and not key.endswith("/") and key.endswith(".log"):
            keys = [key]
        else:
            keys = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
                keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith((".log", "_monitor.csv"))]
        found = []
        for name in sorted(keys):
            local = into / name.replace("/", "__")
            s3.download_file(bucket, name, str(local))
            if local.suffix == ".log":
                found.append(local)
    except Exception as exc:  # botocore's errors: no such bucket or key, forbidden, unreachable
        raise BrokerError(f"cannot read task logs from {url}: {exc}") from None
    if not found:
        raise InputError(f"{url}: no task logs (*.log) there")
    return found


def local_copies(references: list[Path | str], into: str) -> list[Path]:
    """Task log arguments with every s3:// one replaced by local copies in the folder ``into``."""
    paths: list[Path] = []
    for reference in references:
        text = str(reference)
        if is_s3(text):
            paths += download_logs(text, Path(into))
        else:
            paths.append(Path(reference))
    return paths
