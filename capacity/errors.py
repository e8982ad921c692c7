"""One error hierarchy for the whole package; the CLI maps it to exit codes once, at the edge."""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3


class CapacityError(Exception):
    """Base of every error the package raises on purpose; carries its exit code."""

    exit_code = EXIT_BAD_INPUT


class InputError(CapacityError):
    """A value given by the user (flag, unit, file) is not acceptable."""


class ProfileError(CapacityError):
    """A profile file is missing, unreadable or does not validate."""


class CheckFailed(CapacityError):
    """A threshold or check the user asked for is broken (k6-style gate)."""

    exit_code = EXIT_CHECK_FAILED


class BrokerError(CapacityError):
    """A broker or backend could not be reached or refused the work."""

    exit_code = EXIT_UNREACHABLE


EXIT_RUN_FAILED = 4
EXIT_WRITE_FAILED = 5
EXIT_INCONCLUSIVE = 6
EXIT_INTERNAL = 70  # EX_SOFTWARE: an exception nothing translated, a bug to report
EXIT_INTERRUPTED = 130


class RunFailed(CapacityError):
    """A run could not go on: a worker would not start, tasks never finished."""

    exit_code = EXIT_RUN_FAILED


class WriteFailed(CapacityError):
    """A file the tool writes (the task log, a report, a payload) could not be written: disk full,
    no permission, a symlink where a new file belongs. For ``inject`` the broker may hold tasks
    the log could not name: the message says how many."""

    exit_code = EXIT_WRITE_FAILED


class Inconclusive(CapacityError):
    """The data cannot carry a verdict: a comparison where a side was disturbed by other processes
    or measured nothing. Neither a pass (0) nor a regression (1)."""

    exit_code = EXIT_INCONCLUSIVE


class InterruptSignal(BaseException):
    """Ctrl-C before a command watches it itself (raised by the CLI's SIGINT handler): not a
    KeyboardInterrupt, which typer turns into a silent exit 130, so it reaches the CLI's edge
    and is said in one line there."""


class Interrupted(CapacityError):
    """Stopped by the user (Ctrl-C, SIGTERM); what finished is kept."""

    exit_code = EXIT_INTERRUPTED
