"""How the tool creates files: never through a symbolic link, never half-written, and a failure to
write (disk full, no permission, a directory where a file belongs) is a ``WriteFailed`` naming the
file, exit 5, rather than a traceback.

Two ways in. ``create_new`` opens a file that must not exist yet (``O_CREAT | O_EXCL |
O_NOFOLLOW``: a planted symlink or a file of the same name is refused, not written through):
the task log, the monitor samples. ``replace`` writes a whole file under a private temporary
name in the same folder (``tempfile.mkstemp``) and renames it over the target at the end, so a
reader never sees half a file and a symlink at the target is replaced, not followed: reports,
``-o``, CSVs, payload files. An existing device or pipe (``-o /dev/stdout``) is written in place.

And how it reads the user's input files (profiles, fleets, matrices, stages, payload templates and
files, per-task CSVs): ``read_input`` for a whole file, ``input_lines`` line by line, both bounded
(64 MiB; a line too), so ``--fleet /dev/zero`` or a video given by mistake is refused in one line
instead of filling the memory until the OOM killer ends the process (the CLI fuzz found it).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Literal, overload

from capacity.errors import InputError, WriteFailed

#: the most read of one input file whole, and of one line of a file read line by line
MAX_INPUT_BYTES = 64 << 20


def read_input(path: Path) -> str:
    """A whole input file as UTF-8 text, as ``Path.read_text`` (its OSError, UnicodeDecodeError),
    but an InputError past MAX_INPUT_BYTES."""
    with path.open("rb") as handle:
        data = handle.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise _too_large(path, "is")
    return data.decode("utf-8")


def input_lines(handle: IO[str], path: Path) -> Iterator[str]:
    """The lines of a text file opened for reading, as iterating over it gives them, but an
    InputError at a line longer than MAX_INPUT_BYTES (characters)."""
    while line := handle.readline(MAX_INPUT_BYTES + 1):
        if len(line) > MAX_INPUT_BYTES and not line.endswith("\n"):
            raise _too_large(path, "has a line that is")
        yield line


def _too_large(path: Path, what: str) -> InputError:
    return InputError(f"{path} {what} larger than {MAX_INPUT_BYTES >> 20} MiB: not an input this tool reads")


def _checked(path: Path | str) -> Path:
    """``path`` as a Path; a NUL byte (no file system allows one) is a WriteFailed, not a ValueError."""
    if "\x00" in str(path):
        raise WriteFailed(f"cannot write {str(path)!r}: a file name cannot hold a NUL byte")
    return Path(path)


def failure(path: Path | str, exc: OSError) -> WriteFailed:
    """The one-line error for a file that could not be written."""
    reason = exc.strerror or type(exc).__name__
    return WriteFailed(f"cannot write {path}: {reason}")


@overload
def create_new(path: Path, binary: Literal[False] = False) -> IO[str]: ...
@overload
def create_new(path: Path, binary: Literal[True]) -> IO[bytes]: ...
def create_new(path: Path, binary: bool = False) -> IO[Any]:
    """Open a new file for writing; refuses an existing name or a symlink there."""
    path = _checked(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except FileExistsError:
        raise WriteFailed(f"cannot write {path}: it already exists (a file or a link of that name)") from None
    except OSError as exc:
        raise failure(path, exc) from None
    if binary:
        return os.fdopen(fd, "wb")
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _replaceable(target: Path) -> None:
    """Only a regular file or a symlink is ever renamed over: a device node (``/dev/full``), a
    directory or a socket is not, whoever runs this (as root, a rename replaced /dev/full)."""
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise failure(target, exc) from None
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise WriteFailed(f"cannot write {target}: it is not a regular file")


def _in_place(path: Path) -> bool:
    """An existing character device, pipe or socket (``/dev/stdout``, ``/dev/null``): written as it is."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _temporary(target: Path) -> tuple[int, str]:
    """A private file beside ``target`` (``mkstemp``), after checking ``target`` may be replaced."""
    if target.is_dir():
        raise WriteFailed(f"cannot write {target}: it is a directory")
    _replaceable(target)
    try:
        return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise failure(target, exc) from None


@contextlib.contextmanager
def _renamed_over(tmp: str, target: Path) -> Iterator[None]:
    """Run the block that fills ``tmp``, then rename it over ``target``; remove it on any failure."""
    try:
        yield
        os.chmod(tmp, 0o644)
        _replaceable(target)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise failure(target, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def replace(path: Path | str, binary: bool = False) -> Iterator[IO[Any]]:
    """A handle on a private temporary file beside ``path``, renamed over it when the block ends
    without an error and removed when it does not."""
    target = _checked(path)
    if _in_place(target):
        try:
            with open(target, "wb" if binary else "w", encoding=None if binary else "utf-8") as handle:
                yield handle
        except OSError as exc:
            raise failure(target, exc) from None
        return
    fd, tmp = _temporary(target)
    with _renamed_over(tmp, target):
        text = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, "wb" if binary else "w", **text) as handle:  # type: ignore[call-overload]
            yield handle


@contextlib.contextmanager
def staged(path: Path | str) -> Iterator[Path]:
    """A private temporary path beside ``path`` for a writer that wants a name (DuckDB's COPY),
    renamed over ``path`` when the block ends without an error, removed when it does not."""
    target = _checked(path)
    if _in_place(target):  # /dev/stdout, /dev/null: the writer writes there itself
        yield target
        return
    fd, tmp = _temporary(target)
    os.close(fd)
    with _renamed_over(tmp, target):
        yield Path(tmp)


def write_text(path: Path | str, text: str) -> None:
    """``replace`` for a whole text."""
    with replace(path) as handle:
        handle.write(text)


def write_bytes(path: Path | str, data: bytes) -> None:
    """``replace`` for whole bytes."""
    with replace(path, binary=True) as handle:
        handle.write(data)


@overload
def append(path: Path, binary: Literal[False] = False) -> IO[str]: ...
@overload
def append(path: Path, binary: Literal[True]) -> IO[bytes]: ...
def append(path: Path, binary: bool = False) -> IO[Any]:
    """Open a file the tool adds to over time (a worker's log, collected events), created if
    missing; a symlink at that name is refused (``O_NOFOLLOW``), not written through."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise failure(path, exc) from None
    if binary:
        return os.fdopen(fd, "ab")
    return os.fdopen(fd, "a", encoding="utf-8", newline="")
