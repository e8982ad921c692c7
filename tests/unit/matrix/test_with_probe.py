"""#22: the probe added to the user's Celery worker command where it can be, and only there."""

from __future__ import annotations

import pytest

from capacity.matrix.processes import with_probe


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # no --include: added right after `worker`, before the user's own flags
        ("celery -A app worker -Q q", "celery -A app worker --include capacity.probe -Q q"),
        ("{python} -m celery -A app worker -c 4", "{python} -m celery -A app worker --include capacity.probe -c 4"),
        ("/venv/bin/celery --app app worker", "/venv/bin/celery --app app worker --include capacity.probe"),
        # an --include of the user's: the probe joins its list (Celery reads one comma-separated list)
        (
            "celery -A app worker --include app.tasks -Q q",
            "celery -A app worker --include app.tasks,capacity.probe -Q q",
        ),
        ("celery -A app worker --include=app.tasks", "celery -A app worker --include=app.tasks,capacity.probe"),
        ("celery -A app worker -I app.tasks", "celery -A app worker -I app.tasks,capacity.probe"),
        ("celery -A app worker -Iapp.tasks", "celery -A app worker -Iapp.tasks,capacity.probe"),
        # already loaded: unchanged
        ("celery -A app worker --include capacity.probe", "celery -A app worker --include capacity.probe"),
        ("celery -A app worker -I x,capacity.probe", "celery -A app worker -I x,capacity.probe"),
    ],
)
def test_a_celery_worker_command_gets_the_probe(command: str, expected: str) -> None:
    assert with_probe(command.split()) == expected.split()


@pytest.mark.parametrize(
    "command",
    ["./run_worker.sh", "node worker.js", "celery -A app beat", "python -m myapp.worker", "celery -A app inspect ping"],
)
def test_a_command_that_is_not_a_celery_worker_is_left_alone(command: str) -> None:
    assert with_probe(command.split()) is None
