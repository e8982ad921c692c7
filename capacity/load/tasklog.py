"""The task log: JSON Lines, one run line, one line per task the broker accepted, one end line.

Written as batches are acknowledged and flushed, so a log cut short by Ctrl-C or a crash still
names exactly the tasks the broker took. Written and read here (its run and end lines);
``measure`` hands the task lines to DuckDB. ``RESULTS_DIR`` is the default folder of logs and runs.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capacity.errors import InputError, WriteFailed
from capacity.files import create_new, failure

FORMAT_VERSION = 1
#: where task logs, monitor samples and matrix runs go unless told otherwise (seed 003's folder)
RESULTS_DIR = Path("load_tests/results")


def iso(ts: float) -> str:
    """ISO 8601, UTC, microseconds."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


def log_path(log_dir: Path, started: float, shard: tuple[int, int] | None = None) -> Path:
    """``worker_tasks_YYYYMMDD_HHMMSS.log`` (seed 003; ``..._shard-I-of-N.log`` for a shard), with
    a number added if that name is taken."""
    stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%d_%H%M%S")
    if shard is not None:
        stamp += f"_shard-{shard[0]}-of-{shard[1]}"
    path = log_dir / f"worker_tasks_{stamp}.log"
    n = 1
    while path.exists():
        n += 1
        path = log_dir / f"worker_tasks_{stamp}_{n}.log"
    return path


#: space held beside a log being written (``LOG.reserve``) and given back when the disk fills, so
#: the batch the broker has just accepted and the end line can still be written: 1000 task lines
#: of ~150 bytes plus an end line naming a batch in doubt need ~200 kB
RESERVE_BYTES = 1 << 20


def _hold(fd: int, size: int) -> None:
    """Allocate ``size`` bytes for real: fallocate where the file system has it, zeros where it
    does not (some network and FUSE file systems answer EOPNOTSUPP)."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        zeros = bytes(65536)
        for _ in range(size // len(zeros)):
            os.write(fd, zeros)
        os.fsync(fd)


class LogFull(WriteFailed):
    """The disk filled while the log was written. The batch in hand was written (in the space
    the reserve gave back); the run must stop sending and close the log."""


class TaskLogWriter:
    """Appends task lines in batches; each batch is one ``write`` on an unbuffered descriptor.

    A disk that fills is not allowed to lose a task the broker accepted: ``RESERVE_BYTES`` are
    held in a reserve file from the start (no log at all when even that does not fit); a write
    that fails for want of space frees the reserve, finishes the batch and raises ``LogFull``.
    """

    def __init__(self, path: Path, run: dict[str, Any]) -> None:
        self.path = path
        self.tasks = 0
        self._reserve: Path | None = path.with_name(path.name + ".reserve")
        with create_new(self._reserve, binary=True) as ballast:
            try:
                _hold(ballast.fileno(), RESERVE_BYTES)
            except OSError as exc:
                ballast.close()
                self._reserve.unlink(missing_ok=True)
                raise WriteFailed(
                    f"cannot write the task log in {path.parent}: {exc.strerror}; nothing was sent"
                ) from None
        try:
            self._file = create_new(path, binary=True)
            self._write(json.dumps({"type": "run", "version": FORMAT_VERSION, **run}) + "\n")
        except BaseException:
            self._release()
            raise

    def _release(self) -> bool:
        """Give the reserve's space back; whether there was any to give."""
        if self._reserve is None:
            return False
        self._reserve.unlink(missing_ok=True)
        self._reserve = None
        return True

    def _write(self, text: str) -> None:
        """All of ``text`` or WriteFailed; on a full disk the reserve is freed and the write finished,
        then LogFull says so."""
        data = memoryview(text.encode("utf-8"))
        full: OSError | None = None
        while data:
            try:
                data = data[os.write(self._file.fileno(), data) :]
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT) and self._release():
                    full = exc
                    continue
                raise WriteFailed(
                    f"cannot write the task log {self.path}: {exc.strerror}; it names the {self.tasks} tasks "
                    f"sent before this batch, the broker may hold {text.count(chr(10))} more"
                ) from None
        if full is not None:
            raise LogFull(f"the disk holding {self.path} is full ({full.strerror}): sending stopped")

    def write_batch(
        self,
        task_ids: Sequence[str],
        scheduled_at: str | Sequence[str],
        sent_at: str,
        size_bytes: int,
        queue: str,
        task: str | None = None,
    ) -> None:
        """One line per task; ``scheduled_at`` is one time for all (burst) or one per task; ``task``
        (a mix's class) on every line when given."""
        if not task_ids:
            return
        queue_json = json.dumps(queue) + ("" if task is None else f',"task":{json.dumps(task)}')
        tail = f'","sent_at":"{sent_at}","size_bytes":{size_bytes},"queue":{queue_json}}}\n'
        if isinstance(scheduled_at, str):
            # the same for every line: one C-level join for the whole batch
            middle = f'","scheduled_at":"{scheduled_at}{tail}{{"task_id":"'
            text = '{"task_id":"' + middle.join(task_ids) + f'","scheduled_at":"{scheduled_at}{tail}'
        else:
            text = "".join(
                f'{{"task_id":"{task_id}","scheduled_at":"{when}{tail}'
                for task_id, when in zip(task_ids, scheduled_at, strict=True)
            )
        try:
            self._write(text)
        except LogFull:
            self.tasks += len(task_ids)  # written all the same, in the reserve's space
            raise
        self.tasks += len(task_ids)

    def close(self, end: dict[str, Any]) -> None:
        try:
            self._write(json.dumps({"type": "end", "tasks": self.tasks, **end}) + "\n")
            os.fsync(self._file.fileno())
        except LogFull:
            pass  # the end line is written; the reserve is already given back
        except OSError as exc:
            raise failure(self.path, exc) from None
        finally:
            self._file.close()
            self._release()


def _head_and_last_lines(path: Path) -> tuple[list[str], str]:
    """The first two lines (the run line and the first task line) and the last line."""
    with path.open("rb") as handle:
        head = [handle.readline().decode("utf-8", "replace") for _ in range(2)]
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read().decode("utf-8", "replace").rstrip("\n").rsplit("\n", 1)[-1]
    return head, tail


def read_run_and_end_lines(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """The run and end lines of a log, and whether its first task line has a naive timestamp
    (checking every line would cost a string test per task; DuckDB reads such times as UTC)."""

    if not path.is_file():
        raise InputError(f"task log {path} does not exist")
    if path.stat().st_size == 0:
        raise InputError(f"task log {path} is empty")
    (first, second), last = _head_and_last_lines(path)
    runs: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    for text, kind, found in ((first, "run", runs), (last, "end", ends)):
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("type") == kind:
            found.append(line)
    naive = False
    for text in (first, second):
        try:
            line = json.loads(text)
            naive = naive or datetime.fromisoformat(line["sent_at"]).tzinfo is None
        except (ValueError, KeyError, TypeError):
            continue
    return runs, ends, naive
