"""The file every injected task references: a synthetic one of ``--size``, or an existing one."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capacity import files
from capacity.errors import BrokerError, InputError, WriteFailed
from capacity.load import s3
from capacity.units import format_size

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
    free = shutil.disk_usage(path.parent).free
    if size_bytes > free:  # refused before writing: a fuzzed --size 99999999999999 filled the disk
        raise WriteFailed(
            f"No space left for the payload file: --size {format_size(size_bytes)}, {path.parent} has "
            f"{format_size(free)} free"
        )
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
    path = folder.resolve() / name
    # a link at the file's name is never reused nor followed: the tasks would name its target
    # (#23); the new file is renamed over the link itself
    if not path.is_symlink() and path.is_file() and path.stat().st_size == size_bytes:
        return PayloadFile(str(path), size_bytes, created=False)
    _write_synthetic(path, size_bytes)
    return PayloadFile(str(path), size_bytes, created=True)


#: what a payload's strings may name, whole (``"$size_bytes"`` keeps its type) or inside a string
#: (``"lt-$task_id"``): per run ``$file``, ``$size_bytes``, ``$user_id``, ``$run_id``; per batch
#: ``$injected_at``; per task ``$task_id``, ``$seq`` (0-based index in the run), ``$uuid``; ``$$``
#: is a literal dollar. A ``$`` before a digit or punctuation is left as written; a ``$name``
#: that is none of these is refused (#22: ``$sequence`` quietly became ``img-1uence.jpg``).
PLACEHOLDERS = ("$file", "$size_bytes", "$user_id", "$run_id", "$injected_at", "$task_id", "$seq", "$uuid")
PER_TASK = ("task_id", "seq", "uuid")
_TOKEN = re.compile(r"\$(\$|(?:task_id|seq|uuid|run_id|file|size_bytes|user_id|injected_at)(?![A-Za-z0-9_]))")
_ANY_NAME = re.compile(r"\$(\$|[A-Za-z_][A-Za-z0-9_]*)")


def check_placeholders(value: Any, where: str) -> None:
    """InputError naming the first ``$name`` that is no placeholder, with the closest one."""
    import difflib

    known = [p[1:] for p in PLACEHOLDERS]
    for text in _strings(value):
        for match in _ANY_NAME.finditer(text):
            name = match.group(1)
            if name == "$" or name in known:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.4) or [n for n in known if name.startswith(n)]
            hint = f"did you mean ${close[0]}? " if close else ""
            raise InputError(
                f"{where}: unknown placeholder ${name} in {text[:80]!r}; {hint}placeholders: "
                f"{', '.join(PLACEHOLDERS)} ($$ for a literal dollar)"
            )


#: the reference worker's task: its defaults (file, size_bytes, user_id, injected_at) are sent only
#: to it; any other task gets exactly the arguments described
REFERENCE_TASK = "capacity.worker.process_file"
#: the keyword arguments the reference task (and the reference Node worker) act on: kwargs naming
#: anything else, without --task, were meant for the user's own task
REFERENCE_PARAMETERS = (
    "file",
    "size_bytes",
    "user_id",
    "injected_at",
    "sleep_s",
    "cpu_s",
    "memory_bytes",
    "job_type",
    "time_scale",
    "memory_scale",
)


@dataclass(frozen=True)
class PayloadSpec:
    """How a run describes its tasks' arguments, the same for ``inject``, a matrix file and
    ``bench``: ``args`` and ``kwargs``, or a template file, or a payload file (JSON Lines)."""

    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    template: Path | None = None
    file: Path | None = None

    def resolve(self, task: str) -> tuple[list[Any], dict[str, Any], tuple[tuple[list[Any], dict[str, Any]], ...]]:
        """(args, kwargs, payload-file rows) for ``task``."""
        given = [name for name, value in (("--args", self.args), ("--kwargs", self.kwargs)) if value is not None]
        if self.template is not None and self.file is not None:
            raise InputError("--payload-template and --payload-file exclude each other")
        for path, flag in ((self.template, "--payload-template"), (self.file, "--payload-file")):
            if path is not None and given:
                raise InputError(f"{flag} and {' and '.join(given)} exclude each other")
        if self.file is not None:
            rows = load_payload_file(self.file)
            check_placeholders([list(r) for r in rows], f"--payload-file {self.file}")
            return rows[0][0], rows[0][1], rows
        if self.template is not None:
            args, kwargs = load_template(self.template)
            check_placeholders([args, kwargs], f"--payload-template {self.template}")
            return args, kwargs, ()
        check_placeholders([self.args, self.kwargs], "--args/--kwargs")
        if task == REFERENCE_TASK and not self.args:
            args, kwargs = default_payload(self.kwargs)
            return args, kwargs, ()
        return list(self.args or []), dict(self.kwargs or {}), ()

    @property
    def mentions_file(self) -> bool:
        """Whether anything refers to ``$file`` (so a payload file must exist)."""
        rows: list[Any] = [self.args, self.kwargs]
        if self.template is not None:
            rows.append(load_template(self.template))
        if self.file is not None:
            rows.append(load_payload_file(self.file))
        return "file" in uses(rows)


@dataclass(frozen=True)
class PerTaskValue:
    """A per-task token's stand-in in ``substitute``'s values: it becomes the broker's marker."""

    name: str


def default_payload(extra_kwargs: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any]]:
    """Seed 003's realistic payload (the reference worker's signature): a file reference, its
    size, the user, the injection time."""
    kwargs: dict[str, Any] = {
        "file": "$file",
        "size_bytes": "$size_bytes",
        "user_id": "$user_id",
        "injected_at": "$injected_at",
    }
    kwargs.update(extra_kwargs or {})
    return [], kwargs


def _template_object(raw: Any, where: str) -> tuple[list[Any], dict[str, Any]]:
    if not isinstance(raw, dict) or not set(raw) <= {"args", "kwargs"}:
        raise InputError(f'{where}: expected {{"args": [...], "kwargs": {{...}}}}')
    args, kwargs = raw.get("args", []), raw.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise InputError(f"{where}: args must be a list and kwargs an object")
    return args, kwargs


def load_template(path: Path) -> tuple[list[Any], dict[str, Any]]:
    """``--payload-template``: JSON ``{"args": [...], "kwargs": {...}}`` with placeholders."""
    try:
        raw = json.loads(files.read_input(path))
    except OSError as exc:
        raise InputError(f"--payload-template: cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--payload-template: {path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return _template_object(raw, f"--payload-template: {path}")


def load_payload_file(path: Path) -> tuple[tuple[list[Any], dict[str, Any]], ...]:
    """``--payload-file``: JSON Lines, one ``{"args": [...], "kwargs": {...}}`` per line (payloads
    captured from production, replayed in turn: task ``$seq`` gets line ``$seq mod lines``)."""
    rows = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(files.input_lines(handle, path), 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"--payload-file: {path}:{number}: not valid JSON ({exc.msg})") from None
                rows.append(_template_object(raw, f"--payload-file: {path}:{number}"))
    except OSError as exc:
        raise InputError(f"--payload-file: cannot read {path}: {exc.strerror}") from None
    if not rows:
        raise InputError(f"--payload-file: {path} has no payload lines")
    return tuple(rows)


def uses(value: Any) -> set[str]:
    """The placeholder names (without ``$``) a payload mentions anywhere."""
    found: set[str] = set()
    for text in _strings(value):
        found.update(m.group(1) for m in _TOKEN.finditer(text) if m.group(1) != "$")
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def substitute(value: Any, values: dict[str, Any], marker: Any = None) -> Any:
    """Replace placeholders anywhere in args/kwargs, in one pass (so ``$$task_id`` stays the text
    ``$task_id``). ``values`` is keyed ``"$file"``...; a whole-string placeholder takes the value
    with its type, one inside a string its text; a ``PerTaskValue`` becomes ``marker(name,
    whole_number)``, the broker's stand-in spliced per task. Names missing from ``values`` stay."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        whole = _TOKEN.fullmatch(value)
        if whole is not None and whole.group(1) != "$":
            found = values.get(value, value)
            if isinstance(found, PerTaskValue):
                return marker(found.name, found.name == "seq")
            return found

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "$":
                return "$"
            found = values.get("$" + name, match.group(0))
            if isinstance(found, PerTaskValue):
                return str(marker(found.name, False))
            return "" if found is None else str(found)

        return _TOKEN.sub(one, value)
    if isinstance(value, list):
        return [substitute(v, values, marker) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, values, marker) for k, v in value.items()}
    return value
