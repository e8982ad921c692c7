"""Timing sources: one registry finds the source for a SOURCE, by its prefix or its shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capacity.errors import InputError
from capacity.measure.sources import find, split_kind
from capacity.measure.sources.celery_events import CeleryEvents
from capacity.measure.sources.probe_files import ProbeFiles
from capacity.measure.sources.records import Records


def test_detected_by_shape(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"task_id": "a", "event": "received", "t": 1.0}) + "\n")
    records = tmp_path / "videos.csv"
    records.write_text("id,uploaded_at,updated_at\n")
    assert find(str(tmp_path)) == (ProbeFiles, str(tmp_path))
    assert find(str(events)) == (CeleryEvents, str(events))
    assert find(str(records)) == (Records, str(records))
    assert find("sqlite:///app.db") == (Records, "sqlite:///app.db")


def test_prefix_names_the_kind(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"task_id": "a", "event": "received", "t": 1.0}) + "\n")
    assert find(f"probe:{events}") == (ProbeFiles, str(events))
    assert find(f"records:{events}") == (Records, str(events))


def test_typo_in_kind_gets_a_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="did you mean probe:"):
        find(f"prob:{tmp_path}")
    with pytest.raises(InputError, match="does not exist"):
        find(str(tmp_path / "nothing"))
    # a URL's scheme is not a kind
    assert split_kind("redis://h:6379/0") == ("", "redis://h:6379/0")
