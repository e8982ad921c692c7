"""metrics on small hand-checked logs: every expected figure is worked out by hand in the test."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from capacity.cli import app
from capacity.errors import CheckFailed, InputError
from capacity.measure.metrics import Metrics, check_thresholds, enforce, run_metrics
from capacity.measure.sources import RecordColumns

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def iso(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


def write_log(path: Path, sends: dict[str, float], mode: str = "burst", extra_lines: list[str] = ()) -> Path:  # type: ignore[assignment]
    lines = [json.dumps({"type": "run", "mode": mode, "rate_per_s": 1.0})]
    lines += [
        json.dumps({"task_id": t, "scheduled_at": iso(s), "sent_at": iso(s), "size_bytes": 1, "queue": "q"})
        for t, s in sends.items()
    ]
    lines += list(extra_lines)
    lines.append(json.dumps({"type": "end", "status": "completed"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_probe(directory: Path, rows: list[dict[str, Any]]) -> Path:
    directory.mkdir(exist_ok=True)
    with (directory / "timings-h-1.jsonl").open("a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return directory


def done(task_id: str, started: float, finished: float, state: str = "SUCCESS") -> dict[str, Any]:
    return {
        "task_id": task_id,
        "event": "done",
        "started": started,
        "finished": finished,
        "state": state,
        "host": "h",
        "pid": 1,
    }


def received(task_id: str, t: float) -> dict[str, Any]:
    return {"task_id": task_id, "event": "received", "t": t, "host": "h", "pid": 1}


@pytest.fixture()
def four_tasks(tmp_path: Path) -> tuple[Path, Path]:
    # a, b, c sent at T0; d sent at T0+1. a: waits 1 s, runs 2 s; b: waits 1, runs 4; c fails; d never finishes.
    log = write_log(tmp_path / "worker_tasks_1.log", {"a": T0, "b": T0, "c": T0, "d": T0 + 1})
    probe = write_probe(
        tmp_path / "timings",
        [
            received("a", T0 + 0.5),
            done("a", T0 + 1, T0 + 3),
            received("b", T0 + 0.5),
            done("b", T0 + 1, T0 + 5),
            done("c", T0 + 2, T0 + 2.5, "FAILURE"),
            received("d", T0 + 1.5),
        ],
    )
    return log, probe


def test_counts_window_throughput_service_wait(four_tasks: tuple[Path, Path]) -> None:
    log, probe = four_tasks
    m = run_metrics([log], [str(probe)], concurrency=2)
    assert (m.sent, m.completed, m.failed, m.missing) == (4, 2, 1, 1)
    assert m.completion_rate == 0.5
    assert m.window_s == pytest.approx(5.0)  # first send T0, last completion T0+5
    assert m.throughput_per_min == pytest.approx(2 / 5 * 60)  # 24 tasks/min
    assert m.service.mean == pytest.approx(3.0)  # (2 + 4) / 2
    assert m.service.max == pytest.approx(4.0)
    assert m.service.p50 == pytest.approx(3.0)
    # S, W and R over one set of tasks, the completed ones (#21: W covered the failed c, R did not)
    assert m.wait.mean == pytest.approx((1 + 1) / 2)  # a, b started 1 s after send
    assert m.wait_received.mean == pytest.approx(0.5)  # a, b received 0.5 s before starting
    assert m.response.mean == pytest.approx(4.0)  # (3 + 5) / 2
    assert m.utilization == pytest.approx(24 / 60 * 3.0 / 2)  # X x S / c = 0.6
    assert m.littles_law.L_from_X_R == pytest.approx(0.4 * 4.0)
    assert m.timeline == ((0, 2),)
    data = m.to_json()
    assert Metrics.from_json(data) == m  # one to_json/from_json: the JSON holds the whole result
    for key in (
        "sent",
        "completed",
        "failed",
        "missing",
        "window_s",
        "throughput_per_min",
        "service_time_mean_s",
        "service_time_p50_s",
        "service_time_p95_s",
        "service_time_p99_s",
        "wait_mean_s",
        "response_time_mean_s",
    ):
        assert key in data


def test_a_missing_timing_stays_missing(tmp_path: Path) -> None:
    log = write_log(tmp_path / "l.log", {"a": T0})
    m = run_metrics([log], [])
    assert (m.completed, m.missing, m.throughput_per_min, m.service.mean) == (0, 1, None, None)
    assert "no --timings source" in " ".join(m.warnings)


def test_several_logs_and_sources_combine(tmp_path: Path) -> None:
    log1 = write_log(tmp_path / "one.log", {"a": T0})
    log2 = write_log(tmp_path / "two.log", {"b": T0 + 1})
    probe1 = write_probe(tmp_path / "p1", [done("a", T0 + 1, T0 + 2)])
    probe2 = write_probe(tmp_path / "p2", [done("b", T0 + 2, T0 + 4)])
    m = run_metrics([log1, log2], [str(probe1), str(probe2)])
    assert (m.sent, m.completed, m.window_s) == (2, 2, pytest.approx(4.0))


def test_duplicates_unknown_ids_and_clock_skew(tmp_path: Path) -> None:
    log = write_log(tmp_path / "l.log", {"a": T0, "b": T0})
    with log.open("a") as handle:  # the same id sent twice
        handle.write(json.dumps({"task_id": "a", "sent_at": iso(T0 + 9)}) + "\n")
    probe = write_probe(
        tmp_path / "p", [done("a", T0 - 0.25, T0 + 1), done("b", T0 + 1, T0 + 2), done("zzz", T0, T0 + 1)]
    )
    m = run_metrics([log], [str(probe)])
    assert m.duplicates == 1 and m.sent == 2
    assert m.unknown_timings == 1
    assert (m.clock_skew.tasks, m.clock_skew.largest_s) == (1, pytest.approx(0.25))
    text = " ".join(m.warnings)
    assert "duplicate task ids" in text and "clock skew" in text and "in no task log" in text


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    log = write_log(tmp_path / "bad.log", {"a": T0}, extra_lines=["{not json"])
    with pytest.raises(InputError, match=r"bad.log:3: malformed task log line"):
        run_metrics([log], [])
    m = run_metrics([log], [], skip_bad=True)
    assert m.skipped_lines == 1 and m.sent == 1


def test_task_line_without_sent_at_is_malformed(tmp_path: Path) -> None:
    log = write_log(tmp_path / "bad.log", {"a": T0}, extra_lines=[json.dumps({"task_id": "b"})])
    with pytest.raises(InputError, match=r"bad.log:3: malformed task log line \('needs task_id and sent_at'\)"):
        run_metrics([log], [])


def test_empty_log(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_text("")
    with pytest.raises(InputError, match="is empty"):
        run_metrics([tmp_path / "empty.log"], [])
    write_log(tmp_path / "none.log", {})
    with pytest.raises(InputError, match="no task lines"):
        run_metrics([tmp_path / "none.log"], [])


def test_records_csv_naive_and_mixed_offsets(tmp_path: Path) -> None:
    # seed 003's S: mean of updated_at - uploaded_at; naive times are UTC (warned), offsets honoured
    log = write_log(tmp_path / "l.log", {"a": T0, "b": T0})
    records = tmp_path / "records.csv"
    records.write_text(
        "id,uploaded_at,updated_at\n"
        f"a,{iso(T0)[:-6]},{iso(T0 + 10)[:-6]}\n"
        "b,2023-11-14T23:13:20+01:00,2023-11-14T22:13:40+00:00\n"
    )
    m = run_metrics([log], [str(records)])
    assert m.sources == ("records",) and m.completed == 2
    assert m.seed_s.mean == pytest.approx((10 + 20) / 2)
    assert m.service.mean is None  # records carry no start of execution: not estimated
    assert any("without a time zone" in w for w in m.warnings)


@pytest.mark.parametrize("jemalloc", [True, False])
def test_records_are_read_with_or_without_jemalloc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jemalloc: bool
) -> None:
    # the records' tables come from jemalloc's pool where pyarrow has one (Linux and macOS wheels),
    # else from the default pool (Windows wheels raise NotImplementedError): the same figures
    import pyarrow as pa

    from capacity.measure.sources import records as source

    if not jemalloc:

        def missing() -> pa.MemoryPool:
            raise NotImplementedError("jemalloc support is not enabled")

        monkeypatch.setattr(source.pa, "jemalloc_memory_pool", missing)
    assert source._pool().backend_name == ("jemalloc" if jemalloc else pa.default_memory_pool().backend_name)
    log = write_log(tmp_path / "l.log", {"a": T0, "b": T0})
    csv = tmp_path / "r.csv"
    csv.write_text(f"id,uploaded_at,updated_at\na,{iso(T0)},{iso(T0 + 10)}\nb,{iso(T0)},{iso(T0 + 20)}\n")
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"id": t, "uploaded_at": iso(T0), "updated_at": iso(T0 + d)}) + "\n"
            for t, d in (("a", 10), ("b", 20))
        )
    )
    for path in (csv, jsonl):
        m = run_metrics([log], [str(path)])
        assert (m.completed, m.seed_s.mean) == (2, pytest.approx(15.0)), path.name


def _figures_path(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path (Store.path) each figures computation took, in order."""
    from capacity.measure.store import Store

    taken: list[str] = []
    figures = Store.figures

    def spy(self: Store) -> dict[str, Any]:
        found = figures(self)
        taken.append(self.path)
        return found

    monkeypatch.setattr(Store, "figures", spy)
    return taken


def test_records_with_unique_ids_and_with_a_retried_id_count_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # unique ids take the one-pass plan; an id twice (a failure, then its retry's success) the
    # grouped one: both must give a: 10 s, b: 20 s, one completion each, and no failure
    taken = _figures_path(monkeypatch)
    log = write_log(tmp_path / "l.log", {"a": T0, "b": T0})
    unique = tmp_path / "unique.csv"
    unique.write_text(
        f"id,uploaded_at,updated_at,state\na,{iso(T0)},{iso(T0 + 10)},SUCCESS\nb,{iso(T0)},{iso(T0 + 20)},SUCCESS\n"
    )
    retried = tmp_path / "retried.csv"
    retried.write_text(unique.read_text() + f"b,{iso(T0)},{iso(T0 + 5)},FAILURE\n")
    columns = RecordColumns("id", "uploaded_at", "updated_at", "state")
    for records, path in ((unique, "one pass, ungrouped"), (retried, "one pass, grouped")):
        taken.clear()
        m = run_metrics([log], [str(records)], columns=columns)
        assert taken == [path], records.name  # the path this case is about was taken
        assert (m.completed, m.failed, m.missing) == (2, 0, 0), records.name
        assert m.seed_s.mean == pytest.approx(15.0) and m.response.max == pytest.approx(20.0), records.name


@pytest.mark.parametrize("source", ["records", "probe"])
@pytest.mark.parametrize(
    ("case", "path"),
    [
        ("plain", "one pass"),
        ("unknown ids, an id never finished", "one pass"),
        ("finished in 2036", "window first"),
        ("started 2 h before the first send", "window first"),
        ("received 2 h before the first send", "window first"),  # records have no receipt
        ("a task sent twice", "one pass"),  # a log's repeat is grouped in every plan
        ("a timing twice", "one pass"),
    ],
)
def test_the_one_pass_plan_gives_the_careful_plans_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, case: str, path: str
) -> None:
    # the one-pass plan takes every timing as plausible and checks that afterwards, and joins
    # unique timing ids ungrouped; where the check fails it must read the window and compute
    # again, and where it passes its figures must be those of the careful plan (window first,
    # every id grouped), per-task CSV included. Probe lines (several a task) are always grouped.
    import capacity.measure.store as store

    sends = {f"t{i:03}": T0 + i * 0.5 for i in range(60)}
    timings = {t: (s + 0.25, s + 1 + (i % 7) * 0.3) for i, (t, s) in enumerate(sends.items())}
    extra: list[str] = []
    if case == "unknown ids, an id never finished":
        timings["zz-not-sent"] = (T0, T0 + 3)
        del timings["t010"]
    elif case == "finished in 2036":
        timings["t005"] = (T0, 2_100_000_000.0)
    elif case == "started 2 h before the first send":
        timings["t007"] = (T0 - 7200, T0 + 2)
    elif case == "a task sent twice":
        extra.append(json.dumps({"task_id": "t003", "sent_at": iso(T0 + 9), "queue": "q"}))
    repeats = [("t004", T0, T0 + 0.5, "FAILURE")] if case == "a timing twice" else []
    early_receipt = case.startswith("received")
    log = write_log(tmp_path / "worker_tasks_1.log", sends, mode="sustained", extra_lines=extra)
    columns = None
    if source == "records":
        lines = [f"{t},{iso(a)},{iso(b)},SUCCESS" for t, (a, b) in timings.items()]
        lines += [f"{t},{iso(a)},{iso(b)},{state}" for t, a, b, state in repeats]
        target = tmp_path / "records.csv"
        target.write_text("id,uploaded_at,updated_at,state\n" + "\n".join(lines) + "\n")
        columns = RecordColumns("id", "uploaded_at", "updated_at", "state")
    else:
        rows = [received(t, T0 - 7200 if early_receipt and t == "t008" else a) for t, (a, _) in timings.items()]
        rows += [done(t, a + 0.1, b) for t, (a, b) in timings.items()]
        rows += [done(t, a, b, state) for t, a, b, state in repeats]
        target = write_probe(tmp_path / "timings", rows)
    grouping = "ungrouped" if source == "records" and case != "a timing twice" else "grouped"
    if early_receipt and source == "records":
        path = "one pass"
    taken = _figures_path(monkeypatch)
    per_task = tmp_path / "fast.csv"
    fast = run_metrics([log], [str(target)], columns=columns, per_task_csv=per_task).to_json()
    assert taken == [f"{path}, {grouping}"]
    monkeypatch.setattr(store.Store, "_unique_timings", lambda self: False)
    monkeypatch.setattr(store, "_window_if_plausible", lambda *_: None)
    careful_csv = tmp_path / "careful.csv"
    careful = run_metrics([log], [str(target)], columns=columns, per_task_csv=careful_csv).to_json()
    assert taken[1:] == ["window first, grouped"]
    assert fast == careful
    assert per_task.read_text() == careful_csv.read_text()
    implausible = case.startswith(("finished", "started")) or (early_receipt and source == "probe")
    assert fast["completed"] == (59 if implausible or case.startswith("unknown") else 60)


@pytest.mark.parametrize("column", ["start", "end"])
def test_a_nan_timing_sends_the_figures_down_the_careful_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # the one pass learns of a NaN from the latest instant alone (a NaN makes a task's greatest
    # instant NaN, and max() sorts NaN above every number): it must notice, read the window and
    # leave that task out as implausible, whichever of its instants is the NaN
    sends = {f"t{i}": T0 + i for i in range(6)}
    rows = [[t, s + 0.5, s + 2.0] for t, s in sends.items()]
    rows[3][1 if column == "start" else 2] = float("nan")  # a CSV's "nan" is read as NULL: Parquet keeps it
    target = tmp_path / "records.parquet"
    columns = {"id": [r[0] for r in rows], "start": [r[1] for r in rows], "end": [r[2] for r in rows]}
    pq.write_table(pa.table(columns), target)
    log = write_log(tmp_path / "worker_tasks_1.log", sends)
    taken = _figures_path(monkeypatch)
    data = run_metrics([log], [str(target)], columns=RecordColumns("id", "start", "end")).to_json()
    assert taken == ["window first, ungrouped"]
    assert (data["completed"], data["missing"]) == (5, 1)
    assert any("1 tasks have timings outside this run's window" in w for w in data["warnings"])
    # by hand: R is 2.0 s for every task that is left, seed S 1.5 s; a burst has no steady X
    assert (data["response_time_p50_s"], data["response_time_max_s"]) == (2.0, 2.0)
    assert data["seed_s_max_s"] == 1.5
    assert data["throughput_steady_per_min"] is None


@pytest.mark.parametrize("mode", [{"kind": "sustained"}, ["sustained"], None, 3])
def test_a_run_line_whose_mode_is_not_a_name_is_no_steady_phase(tmp_path: Path, mode: Any) -> None:
    # the readers' fuzz run: a run line with "mode": {...} ended in "unhashable type: 'dict'" (exit
    # 70) once every metrics run asked whether the logs have a steady phase; it has none
    sends = {f"t{i}": T0 + i for i in range(30)}
    log = write_log(tmp_path / "worker_tasks_1.log", sends)
    lines = log.read_text().splitlines()
    lines[0] = json.dumps({"type": "run", "mode": mode, "rate_per_s": 1.0})
    log.write_text("\n".join(lines) + "\n")
    probe = write_probe(tmp_path / "timings", [done(t, s + 0.5, s + 1.0) for t, s in sends.items()])
    data = run_metrics([log], [str(probe)]).to_json()
    assert data["completed"] == 30 and data["throughput_steady_per_min"] is None and data["trend"] is None


def test_records_csv_whose_later_rows_do_not_fit_the_first_blocks_types(tmp_path: Path) -> None:
    # the CSV's types are taken from its first block (1 MiB) and given to the whole read: here the
    # ids are numbers for 40,000 rows (1.4 MB) and then one is not, and the mixed-form times
    # begin after the first block too; the read must start again with inference on every row
    n = 40_000
    ids = [str(100_000 + i) for i in range(n - 1)] + ["x-last"]
    log = write_log(tmp_path / "l.log", {i: T0 for i in ids})
    rows = [f"{i},{iso(T0)},{iso(T0 + 2)},SUCCESS" for i in ids[:-1]]
    rows.append(f"x-last,{iso(T0)[:-6]},{iso(T0 + 4)[:-6]},SUCCESS")  # naive: a form of its own
    records = tmp_path / "records.csv"
    records.write_text("id,uploaded_at,updated_at,state\n" + "\n".join(rows) + "\n")
    assert records.stat().st_size > 1 << 20
    m = run_metrics([log], [str(records)], columns=RecordColumns("id", "uploaded_at", "updated_at", "state"))
    assert (m.sent, m.completed, m.missing) == (n, n, 0)
    assert m.seed_s.max == pytest.approx(4.0) and m.seed_s.mean == pytest.approx(2.0 + 2.0 / n)


def test_records_from_sqlite_query(tmp_path: Path) -> None:
    log = write_log(tmp_path / "l.log", {"a": T0})
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table videos (task text, created text, done text)")
        connection.execute("insert into videos values ('a', ?, ?)", (iso(T0), iso(T0 + 6)))
    m = run_metrics(
        [log],
        [f"sqlite:///{db}"],
        query="select task, created, done from videos",
        columns=RecordColumns("task", "created", "done"),
    )
    assert m.completed == 1 and m.seed_s.mean == pytest.approx(6.0)


def test_thresholds() -> None:
    data = {
        "throughput_per_min": 8.0,
        "service_time_p95_s": 31.0,
        "completion_rate": 0.97,
        "failed": 0,
        "wait_mean_s": None,
    }
    assert check_thresholds(["X<10/min", "p95>30s", "completion<0.95", "failed>0"], data) == [
        "X<10/min (X = 8)",
        "p95>30s (service time p95 = 31)",
    ]
    assert check_thresholds(["W>5s"], data) == ["W>5s (mean wait was not measured)"]
    with pytest.raises(CheckFailed):
        enforce(["X<10/min"], data)
    with pytest.raises(InputError, match="unknown figure"):
        check_thresholds(["latency>3"], data)


def test_cli_formats_and_fail_if(four_tasks: tuple[Path, Path], tmp_path: Path) -> None:
    log, probe = four_tasks
    runner = CliRunner()
    result = runner.invoke(app, ["metrics", "--tasks-log", str(log), "--timings", str(probe), "-f", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["throughput_per_min"] == pytest.approx(24.0)
    result = runner.invoke(
        app,
        [
            "metrics",
            "--tasks-log",
            str(log),
            "--timings",
            str(probe),
            "-f",
            "csv",
            "--csv",
            str(tmp_path / "tasks.csv"),
        ],
    )
    header, row = result.stdout.splitlines()
    assert header.startswith("sent,completed,failed,missing,completion_rate,window_s,throughput_per_min")
    assert row.startswith("4,2,1,1,0.5,5.0,24.0")
    assert (tmp_path / "tasks.csv").read_text().count("\n") == 5
    result = runner.invoke(app, ["metrics", "--tasks-log", str(log), "--timings", str(probe), "-f", "markdown"])
    assert "| Sent / completed / failed / missing | 4 / 2 / 1 / 1 |" in result.stdout
    result = runner.invoke(
        app, ["metrics", "--tasks-log", str(log), "--timings", str(probe), "--fail-if", "completion<0.95"]
    )
    assert result.exit_code == 1 and "failed: thresholds broken: completion<0.95" in result.stderr
    result = runner.invoke(app, ["metrics", "--tasks-log", str(tmp_path / "nope.log")])
    assert result.exit_code == 2 and result.stderr.startswith("error: task log") and "Traceback" not in result.stderr


def test_records_parquet_and_jsonl(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = write_log(tmp_path / "l.log", {"a": T0, "b": T0})
    pq.write_table(
        pa.table({"id": ["a", "b"], "uploaded_at": [iso(T0), iso(T0)], "updated_at": [iso(T0 + 4), iso(T0 + 8)]}),
        tmp_path / "r.parquet",
    )
    m = run_metrics([log], [str(tmp_path / "r.parquet")])
    assert m.seed_s.mean == pytest.approx(6.0)
    lines = [{"id": "a", "uploaded_at": iso(T0), "updated_at": iso(T0 + 2)}]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    m = run_metrics([log], [f"records:{tmp_path / 'r.jsonl'}"])
    assert (m.completed, m.missing, m.seed_s.mean) == (1, 1, pytest.approx(2.0))


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC", "Europe/Paris"])
def test_records_with_arrow_timestamps_of_every_unit(tmp_path: Path, unit: str, zone: str | None) -> None:
    # timestamps stay Arrow timestamps until DuckDB scans them: every unit and zone must give the
    # seconds the ISO strings give (a: 10.5 s, b: 0.25 s; R from the sends at T0); nanoseconds
    # below a microsecond are dropped, as the string reader drops them
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = write_log(tmp_path / "l.log", {"a": T0, "b": T0})
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    step = {"s": 1, "ms": 1, "us": 1, "ns": 1_001}[unit]  # 1,001 ns: a microsecond and a nanosecond
    starts = [int(T0) * per_second, int(T0) * per_second]
    halves = {"s": 10, "ms": 10_500, "us": 10_500_000, "ns": 10_500_000_000}[unit]
    quarter = {"s": 0, "ms": 250, "us": 250_000, "ns": 250_000_000}[unit] + step
    ends = [starts[0] + halves, starts[1] + quarter]
    kind = pa.timestamp(unit, tz=zone)
    pq.write_table(
        pa.table({"id": ["a", "b"], "uploaded_at": pa.array(starts, kind), "updated_at": pa.array(ends, kind)}),
        tmp_path / "r.parquet",
    )
    m = run_metrics([log], [str(tmp_path / "r.parquet")])
    expected_a = {"s": 10.0, "ms": 10.5, "us": 10.5, "ns": 10.5}[unit]
    expected_b = {"s": 1.0, "ms": 0.251, "us": 0.250001, "ns": 0.250001}[unit]
    assert m.completed == 2
    assert m.seed_s.max == pytest.approx(expected_a, abs=1e-6)
    assert m.seed_s.mean == pytest.approx((expected_a + expected_b) / 2, abs=1e-6)
    assert m.response.max == pytest.approx(expected_a, abs=1e-6)  # the logs' T0 is a whole second
    assert any("without a time zone" in w for w in m.warnings) == (zone is None)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_records_outside_the_window_are_seen_from_their_columns_in_every_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unit: str
) -> None:
    # a records table's window check reads the columns' smallest and largest instant (not an
    # aggregate of the pass): in every unit, a finish in 2036 and a start 2 h before the first
    # send must send the figures down the window-first path and leave both tasks out; a table
    # inside the window keeps the one pass
    import pyarrow as pa
    import pyarrow.parquet as pq

    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    sends = {f"t{i}": T0 + i for i in range(4)}
    log = write_log(tmp_path / "l.log", sends)
    starts = [int(s + 1) * per_second for s in sends.values()]
    ends = [int(s + 3) * per_second for s in sends.values()]
    kind = pa.timestamp(unit, tz="UTC")
    taken = _figures_path(monkeypatch)
    for name, start, end, left in (("inside", starts, ends, 4), ("outside", starts, ends, 2)):
        if name == "outside":
            end = [*ends[:1], 2_100_000_000 * per_second, *ends[2:]]
            start = [*starts[:3], int(T0 - 7200) * per_second]
        table = pa.table({"id": list(sends), "uploaded_at": pa.array(start, kind), "updated_at": pa.array(end, kind)})
        pq.write_table(table, tmp_path / f"{name}.parquet")
        taken.clear()
        m = run_metrics([log], [str(tmp_path / f"{name}.parquet")])
        assert taken == ["one pass, ungrouped" if name == "inside" else "window first, ungrouped"], name
        assert (m.completed, m.missing) == (left, 4 - left), name
        assert m.seed_s.max == pytest.approx(2.0), name


def test_sustained_run_with_monitor_samples_gets_a_trend_and_littles_law(tmp_path: Path) -> None:
    # 60 tasks at 1/s, each waits 1 s and runs 1 s; the monitor saw the queue flat at 2 in system
    sends = {f"t{i}": T0 + i for i in range(60)}
    log = write_log(tmp_path / "worker_tasks_x.log", sends, mode="sustained")
    write_probe(tmp_path / "p", [done(t, s + 1, s + 2) for t, s in sends.items()])
    monitor = tmp_path / "worker_tasks_x_monitor.csv"
    monitor.write_text(
        "timestamp,visible,in_flight,sent_so_far\n" + "".join(f"{iso(T0 + i)},1,1,{i}\n" for i in range(0, 61, 2))
    )
    m = run_metrics([log], [str(tmp_path / "p")])
    assert m.trend is not None and m.trend.verdict == "stable"
    assert m.trend.slope_per_min == pytest.approx(0.0, abs=1e-9)
    # X = 60 tasks / 61 s; R = 2 s; L = X x R ~ 1.97, observed 2
    assert m.littles_law.L_from_X_R == pytest.approx(60 / 61 * 2)
    assert m.littles_law.L_observed == pytest.approx(2.0)
    assert m.throughput_steady_per_min == pytest.approx(60.0, rel=0.05)
    # wall-clock minutes from the first send's minute: T0 is hh:13:20, so the minute ends at T0 + 40
    assert m.timeline == ((0, 38), (1, 22))


def test_naive_task_log_timestamps_are_utc_with_a_warning(tmp_path: Path) -> None:
    log = tmp_path / "naive.log"
    log.write_text(
        json.dumps({"type": "run", "mode": "burst"})
        + "\n"
        + json.dumps({"task_id": "a", "sent_at": iso(T0)[:-6]})
        + "\n"  # no offset
        + json.dumps({"task_id": "b", "sent_at": iso(T0 - 3600)[:-6] + "-01:00"})
        + "\n"
    )  # same instant
    probe = write_probe(tmp_path / "p", [done("a", T0 + 1, T0 + 2), done("b", T0 + 1, T0 + 3)])
    m = run_metrics([log], [str(probe)])
    assert any("without a time zone were taken as UTC" in w for w in m.warnings)
    assert m.wait.mean == pytest.approx(1.0)  # both sent at T0: the naive one read as UTC


def test_timings_outside_the_run_window_are_reported_and_do_not_size_the_timeline(tmp_path: Path) -> None:
    # issue #11: one timing dated 2036 in a 200-task run made a timeline point per minute (6.7 GB);
    # year 9999 ended in MemoryError. 2036 and 9999 are both after "now"; T0 - 2 h is before the
    # first send by more than the hour of clock skew allowed.
    sends = {f"t{i:03}": T0 + i * 0.1 for i in range(200)}
    log = write_log(tmp_path / "worker_tasks_1.log", sends)
    rows = [done(t, s + 1, s + 2) for t, s in sends.items()]
    rows[5] = done("t005", T0 + 1, 2_100_000_000.0)  # 2036-07-18
    rows[6] = done("t006", T0 + 1, 253_402_300_000.0)  # year 9999
    rows[7] = done("t007", T0 - 7200, T0 - 7199)
    probe = write_probe(tmp_path / "timings", rows)
    m = run_metrics([log], [f"probe:{probe}"], bucket_s=60.0)
    assert (m.sent, m.completed, m.missing) == (200, 197, 3)
    # the last good completion is t199 at T0 + 19.9 + 2 = T0 + 21.9: one minute of timeline, or two
    # when T0 + 21.9 crosses a minute boundary (T0 is 20 s into its minute: 20 + 21.9 < 60)
    assert len(m.timeline) == 1
    assert m.timeline[0][1] == 197
    warning = next(w for w in m.warnings if "outside this run's window" in w)
    assert warning.startswith("3 tasks") and "t005, t006, t007" in warning


def test_duplicate_completions_are_counted_and_warned(tmp_path: Path) -> None:
    log = write_log(tmp_path / "worker_tasks_1.log", {"a": T0, "b": T0})
    probe = write_probe(
        tmp_path / "timings",
        [done("a", T0 + 1, T0 + 2), done("a", T0 + 1, T0 + 2), done("a", T0 + 5, T0 + 6), done("b", T0 + 1, T0 + 3)],
    )
    m = run_metrics([log], [f"probe:{probe}"], bucket_s=60.0)
    assert m.completed == 2
    assert any(w.startswith("2 duplicate completions for 1 tasks") for w in m.warnings), m.warnings


def test_the_failure_summary_names_only_this_runs_tasks(tmp_path: Path) -> None:
    # #21: a timings folder shared with an earlier run listed that run's errors as this one's
    log = write_log(tmp_path / "worker_tasks_1.log", {"a": T0, "b": T0, "c": T0})
    mine = {**done("b", T0 + 1, T0 + 2, "FAILURE"), "error": "TypeError: resize() takes 2 arguments"}
    also = {**done("c", T0 + 1, T0 + 2, "FAILURE"), "error": "TypeError: resize() takes 2 arguments"}
    others = [{**done(f"old{i}", T0 - 60, T0 - 59, "FAILURE"), "error": "KeyError: 'width'"} for i in range(5)]
    probe = write_probe(tmp_path / "timings", [done("a", T0 + 1, T0 + 2), mine, also, *others])
    m = run_metrics([log], [str(probe)])
    (warning,) = [w for w in m.warnings if "failed" in w]
    assert warning == "2 tasks failed; first errors: TypeError: resize() takes 2 arguments (x2)"
    assert m.wait.mean == pytest.approx(1.0) and m.response.mean == pytest.approx(2.0)


def _seven_tasks(tmp_path: Path) -> tuple[Path, Path]:
    """The hand-computed run of the timeline test: its task log and probe folder."""
    import json

    t0 = 1_700_000_000.0
    sent = "2023-11-14T22:13:20+00:00"  # t0
    log = tmp_path / "worker_tasks_1.log"
    lines = [json.dumps({"type": "run", "mode": "burst"})]
    lines += [json.dumps({"task_id": f"t{i}", "sent_at": sent, "size_bytes": 0}) for i in range(7)]
    log.write_text("\n".join(lines) + "\n")
    probe = tmp_path / "probe"
    probe.mkdir()
    done = [("t0", 1, 9), ("t1", 2, 9), ("t2", 60, 65), ("t3", 61, 66), ("t4", 62, 67)]
    rows = [
        {"task_id": i, "event": "done", "started": t0 + s, "finished": t0 + f, "state": "SUCCESS"} for i, s, f in done
    ]
    failed = {"event": "done", "started": t0 + 3, "finished": t0 + 4, "state": "FAILURE"}
    rows += [
        {**failed, "task_id": "t5", "error": "TypeError('bad arg')"},
        {**failed, "task_id": "t6", "error": "ValueError: no"},
    ]
    (probe / "timings-h-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return log, probe


def test_timeline_buckets_carry_their_percentiles_and_failures_are_typed(tmp_path: Path) -> None:
    """Issue #25, computed by hand: 7 tasks sent at t0; two finish in the first minute (W 1 and
    2 s, S 8 and 7 s), three in the second (W 60, 61, 62; S 5 each), two fail (a TypeError sent
    first, then a ValueError). Bucket [0, 60): 2 completed, W p50 1.5, p95 1.95 (linear: 1 + 0.95);
    bucket [60, 120): 3, W p50 61, p95 61.9; S p50 5. Failures: one of each type, with the first task id."""
    from capacity.measure.metrics import run_metrics

    log, probe = _seven_tasks(tmp_path)
    m = run_metrics([log], [f"probe:{probe}"], bucket_s=60.0)
    first, second = m.timeline_buckets
    assert (first.from_s, first.to_s, first.completed) == (0.0, 60.0, 2)
    assert first.wait_p50_s == pytest.approx(1.5) and first.wait_p95_s == pytest.approx(1.95)
    assert first.service_p50_s == pytest.approx(7.5)
    assert (second.from_s, second.completed) == (60.0, 3)
    assert second.wait_p50_s == pytest.approx(61) and second.wait_p95_s == pytest.approx(61.9)
    assert second.service_p50_s == pytest.approx(5)
    kinds = {(f.type, f.tasks, f.first_task_id) for f in m.failure_types}
    assert kinds == {("TypeError", 1, "t5"), ("ValueError", 1, "t6")}
    data = m.to_json()
    assert data["timeline"][0]["completed"] == 2 and data["failures"][0]["type"] in ("TypeError", "ValueError")
    wider = run_metrics([log], [f"probe:{probe}"], bucket_s=120.0)
    assert [b.completed for b in wider.timeline_buckets] == [5]


def test_the_auto_bucket_cuts_any_window_into_at_most_40_round_buckets() -> None:
    """Issue #25: `--bucket auto` and the matrix's cells: the smallest of 1 s, 2 s, 5 s ... 1 day
    giving at most 40 buckets (by hand: 20 s -> 1 s; 100 s -> 5 s (2 s would be 50); an hour ->
    120 s (60 s would be 60); a week (604,800 s) -> 21,600 s (28 buckets; 7,200 s would be 84))."""
    from capacity.measure.metrics import auto_bucket

    assert [auto_bucket(w) for w in (20, 100, 3600, 604_800)] == [1, 5, 120, 21_600]
    assert auto_bucket(None) == 1 and auto_bucket(100 * 86400) == 3 * 86400


def test_metrics_html_plots_the_timeline_and_labels_minutes_with_their_time(tmp_path: Path) -> None:
    """Issues #25 and #22: `metrics -f html` embeds the percentiles-over-time plot (a bucket chosen
    for the run when none is given); the tables label each minute with its wall-clock time (the
    first send is 22:13:20 UTC: minute 0 is 22:13, minute 1 22:14) and each bucket with its time."""
    from typer.testing import CliRunner

    from capacity.cli import app

    log, probe = _seven_tasks(tmp_path)
    page = tmp_path / "m.html"
    argv = ["metrics", "--tasks-log", str(log), "--timings", f"probe:{probe}"]
    result = CliRunner().invoke(app, [*argv, "-f", "html", "-o", str(page)])
    html = page.read_text()
    assert result.exit_code == 0 and 'id="timeline"' in html and "data:image/png;base64," in html
    assert "Timeline (buckets of 2 s)" in html  # 67 s of window: 2 s buckets (1 s would be 67)
    markdown = CliRunner().invoke(app, [*argv, "-f", "markdown"]).stdout
    assert "| 0 (22:13 UTC) | 2 |" in markdown and "| 1 (22:14 UTC) | 3 |" in markdown
    bucketed = CliRunner().invoke(app, [*argv, "--bucket", "1m", "-f", "markdown"]).stdout
    assert "| 0 s (22:13:20) - 1:00.0 (22:14:20) | 2 |" in bucketed
