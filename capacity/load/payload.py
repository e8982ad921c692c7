"""The file every injected task references: a synthetic one of ``--size``, or an existing one."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capacity import files
from capacity.errors import BrokerError, InputError
from capacity.load import s3

CHUNK = 1 << 20


@dataclass(frozen=True)
class PayloadFile:
    reference: str  # a local path or s3://bucket/key
    size_bytes: int
    created: bool


def existing_file(reference: str) -> PayloadFile:
    """Check that ``--file`` exists (locally or on S3) and read its size."""
    if s3.is_s3(reference):
        bucket, key = s3.parts(reference)
        if not bucket or not key:
            raise InputError(f"--file: {reference!r} is not an s3://bucket/key URL")
        try:
            head = s3.client().head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # botocore's errors: not found, forbidden, unreachable
            raise InputError(f"--file: cannot find {reference}: {exc}") from None
        return PayloadFile(reference, int(head["ContentLength"]), created=False)
    path = Path(reference)
    if not path.is_file():
        raise InputError(f"--file: {reference} does not exist or is not a file")
    return PayloadFile(str(path.resolve()), path.stat().st_size, created=False)


def _write_synthetic(path: Path, size_bytes: int) -> None:
    block = os.urandom(min(CHUNK, max(size_bytes, 1)))
    # a private temporary name, removed on failure (a full disk left a .part behind; a planted
    # symlink at the predictable .part name was written through)
    with files.replace(path, binary=True) as handle:
        remaining = size_bytes
        while remaining > 0:
            handle.write(block[: min(remaining, len(block))])
            remaining -= len(block)


def synthetic_file(size_bytes: int, upload_dir: str) -> PayloadFile:
    """One file of ``size_bytes`` in ``upload_dir`` (a folder, or s3://bucket/prefix), reused
    when a file of that size is already there."""
    if size_bytes < 0:
        raise InputError(f"--size must be zero or more, got {size_bytes}")
    name = f"capacity_payload_{size_bytes}.bin"
    if s3.is_s3(upload_dir):
        bucket, prefix = s3.parts(upload_dir)
        key = f"{prefix.rstrip('/')}/{name}" if prefix else name
        client = s3.client()
        try:
            head = client.head_object(Bucket=bucket, Key=key)
            if int(head["ContentLength"]) == size_bytes:
                return PayloadFile(f"s3://{bucket}/{key}", size_bytes, created=False)
        except Exception:  # absent: create it below
            pass
        local = Path(os.environ.get("TMPDIR", "/tmp")) / name
        _write_synthetic(local, size_bytes)
        try:
            client.upload_file(str(local), bucket, key)  # boto3 switches to multipart above 8 MB
        except Exception as exc:
            raise BrokerError(f"cannot upload the payload to s3://{bucket}/{key}: {exc}") from None
        finally:
            local.unlink(missing_ok=True)
        return PayloadFile(f"s3://{bucket}/{key}", size_bytes, created=True)
    folder = Path(upload_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.is_file() and path.stat().st_size == size_bytes:
        return PayloadFile(str(path.resolve()), size_bytes, created=False)
    _write_synthetic(path, size_bytes)
    return PayloadFile(str(path.resolve()), size_bytes, created=True)


PLACEHOLDERS = ("$file", "$size_bytes", "$user_id", "$injected_at")


def default_payload(extra_kwargs: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
    """Seed 003's realistic payload: a file reference, its size, the user, the injection time."""
    kwargs: dict[str, Any] = {
        "file": "$file",
        "size_bytes": "$size_bytes",
        "user_id": "$user_id",
        "injected_at": "$injected_at",
    }
    kwargs.update(extra_kwargs or {})
    return [], kwargs


def load_template(path: Path) -> tuple[list[Any], dict[str, Any]]:
    """``--payload-template``: JSON ``{"args": [...], "kwargs": {...}}`` with $file, $size_bytes,
    $user_id and $injected_at standing for those values."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"--payload-template: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--payload-template: {path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or not set(raw) <= {"args", "kwargs"}:
        raise InputError(f'--payload-template: {path}: expected {{"args": [...], "kwargs": {{...}}}}')
    args, kwargs = raw.get("args", []), raw.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise InputError(f"--payload-template: {path}: args must be a list and kwargs an object")
    return args, kwargs


def substitute(value: Any, values: dict[str, Any]) -> Any:
    """Replace placeholder strings anywhere in args/kwargs."""
    if isinstance(value, str) and value in values:
        return values[value]
    if isinstance(value, list):
        return [substitute(v, values) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, values) for k, v in value.items()}
    return value
