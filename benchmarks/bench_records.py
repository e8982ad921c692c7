"""metrics on a records CSV (seed 003's uploads table: ``id,uploaded_at,updated_at,state``), against
DuckDB doing the same work in one session (issue #12: target <= 1.5x DuckDB, <= 4 GB).

    .venv/bin/python benchmarks/bench_records.py [--tasks 5000000] [--data DIR] [--rounds 3]

Both read the task log (JSON Lines) and the records CSV, join on the task id, and compute the
counts, X, R and seed S (record start to finish) percentiles and the per-minute timeline; each
runs in its own process, so each peak RSS is its own.

Then #26's comparison, as a user runs them (new processes, start-up included): `capacity metrics
... -f json` against DuckDB computing every figure that command prints in one query
(``_command.SAME_FIGURES``: counts, missing, unknown ids, duplicates, window, X and the steady X,
mean, percentiles and maximum of R and seed S, the per-minute timeline; each figure checked equal
to capacity's), target <= 1.3x and <= 2 GB; the narrower query above is timed beside them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000.0
PEAK = "int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) / 1024"

CAPACITY = """
import sys, json, time
sys.path.insert(0, {root!r})
from pathlib import Path
from capacity.measure.metrics import run_metrics
from capacity.measure.sources import RecordColumns
start = time.perf_counter()
m = run_metrics([Path({log!r})], [{records!r}], columns=RecordColumns("id", "uploaded_at", "updated_at", "state"))
d = m.to_json()
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "rss_mb": {peak}, "completed": d["completed"], "X": d["throughput_per_min"],
    "R_p95": d["response_time_p95_s"], "seedS_p95": d["seed_s_p95_s"], "minutes": len(d["timeline_per_min"])}}))
"""

DUCKDB = """
import json, time, duckdb
start = time.perf_counter()
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
row = con.execute('''
    WITH l AS (SELECT task_id, min(epoch(CAST(sent_at AS TIMESTAMPTZ))) AS sent
               FROM read_json({log!r}, format = 'newline_delimited',
                              columns = {{'type': 'VARCHAR', 'task_id': 'VARCHAR', 'sent_at': 'VARCHAR'}})
               WHERE type IS NULL GROUP BY task_id),
    r AS (SELECT id, epoch(uploaded_at) AS record_start, epoch(updated_at) AS finished, state
          FROM read_csv({records!r})),
    j AS (SELECT l.sent, r.record_start, r.finished, r.state = 'SUCCESS' AS ok FROM l LEFT JOIN r ON l.task_id = r.id)
    SELECT count(*) FILTER (WHERE ok), min(sent), max(finished) FILTER (WHERE ok),
           quantile_cont(finished - sent, [0.5, 0.9, 0.95, 0.99]) FILTER (WHERE ok),
           quantile_cont(finished - record_start, [0.5, 0.9, 0.95, 0.99]) FILTER (WHERE ok),
           histogram(floor(finished / 60)::BIGINT) FILTER (WHERE ok)
    FROM j''').fetchone()
completed, first, last, r_q, s_q, per_minute = row
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "rss_mb": {peak}, "completed": completed, "X": completed / (last - first) * 60,
    "R_p95": r_q[2], "seedS_p95": s_q[2], "minutes": max(per_minute) - min(per_minute) + 1}}))
"""


def generate(directory: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(7)
    log = directory / "worker_tasks_20260101_000000.log"
    records = directory / "uploads.csv"
    chunk = 1_000_000
    with log.open("w") as log_file, records.open("w") as csv_file:
        log_file.write(json.dumps({"type": "run", "mode": "sustained", "rate_per_s": 1000.0, "count": n}) + "\n")
        csv_file.write("id,uploaded_at,updated_at,state\n")
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            index = np.arange(start, start + size)
            sent = T0 + index / 1000.0
            uploaded = sent + rng.exponential(0.5, size)
            updated = uploaded + rng.lognormal(-1.0, 0.5, size)

            def iso(values: np.ndarray) -> np.ndarray:
                return np.datetime_as_string((values * 1e6).astype("datetime64[us]"), unit="us")

            ids = [f"00000000-0000-4000-8000-{i:012x}" for i in index]
            log_file.write(
                "".join(
                    f'{{"task_id":"{i}","scheduled_at":"{s}+00:00","sent_at":"{s}+00:00","size_bytes":1,"queue":"q"}}\n'
                    for i, s in zip(ids, iso(sent), strict=True)
                )
            )
            csv_file.write(
                "".join(f"{i},{a}Z,{b}Z,SUCCESS\n" for i, a, b in zip(ids, iso(uploaded), iso(updated), strict=True))
            )
    return log, records


def run(code: str, log: Path, records: Path) -> dict[str, float]:
    source = code.format(root=str(ROOT), log=str(log), records=str(records), peak=PEAK)
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def as_commands(log: Path, records: Path, rounds: int) -> None:
    """#26: as a user runs them: `capacity metrics ... -f json`, and a Python process running DuckDB's
    query of the same figures (its import included); the query above (fewer figures) for the record."""
    sys.path.insert(0, str(ROOT))  # run as a script: the repository is not on the path
    from benchmarks._command import compare_as_commands, same_figures

    argv = [str(Path(sys.executable).parent / "capacity"), "metrics", "--tasks-log", str(log)]
    argv += ["--timings", f"records:{records}", "--state-col", "state", "-f", "json"]
    fewer = [sys.executable, "-c", DUCKDB.format(root=str(ROOT), log=str(log), records=str(records), peak=PEAK)]
    rows = f"""
        SELECT id AS task_id, NULL::DOUBLE AS received, NULL::DOUBLE AS started, epoch(updated_at) AS finished,
               epoch(uploaded_at) AS record_start, state
        FROM read_csv('{records}')"""
    same = [sys.executable, "-c", same_figures(str(log), rows, ("r", "ss"))]
    compare_as_commands(argv, same, fewer, rounds, 1.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=5_000_000)
    parser.add_argument("--data", type=Path, help="keep the generated files here and reuse them next time")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each (median reported)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as name:
        folder = options.data or Path(name)
        log, records = folder / "worker_tasks_20260101_000000.log", folder / "uploads.csv"
        started = time.perf_counter()
        if not (options.data and records.is_file()):
            folder.mkdir(parents=True, exist_ok=True)
            log, records = generate(folder, options.tasks)
        print(f"{options.tasks:,} tasks and records ready in {time.perf_counter() - started:.1f} s")
        # alternate the two, as many rounds as asked: the first process after another one's
        # gigabyte of memory ran up to 0.5 s slower here, whichever of the two it was
        rounds: list[tuple[dict[str, float], dict[str, float]]] = []
        for _ in range(options.rounds):
            rounds.append((run(CAPACITY, log, records), run(DUCKDB, log, records)))
        ours = _median([r[0] for r in rounds])
        duck = _median([r[1] for r in rounds])
        print(f"median of {options.rounds} alternating rounds, each in its own process:")
        for label, r in (("capacity metrics", ours), ("DuckDB", duck)):
            print(
                f"  {label:<17} {r['seconds']:7.2f} s  peak RSS {r['rss_mb']:7,.0f} MB  completed {r['completed']:,}"
                f"  X {r['X']:,.1f}/min  R p95 {r['R_p95']:.4f} s  seed S p95 {r['seedS_p95']:.4f} s"
                f"  {r['minutes']} minutes"
            )
        each = ", ".join(f"{a['seconds']:.2f}/{b['seconds']:.2f}" for a, b in rounds)
        print(f"  rounds (capacity/DuckDB s): {each}")
        print(f"capacity vs DuckDB: {ours['seconds'] / duck['seconds']:.2f}x DuckDB's time (target <= 1.5x)")
        print(f"capacity peak memory: {max(r[0]['rss_mb'] for r in rounds) / 1024:.2f} GB (target < 4 GB)")
        as_commands(log, records, options.rounds)


def _median(results: list[dict[str, float]]) -> dict[str, float]:
    """The round whose time is the median (its figures with it)."""
    return sorted(results, key=lambda r: r["seconds"])[len(results) // 2]


if __name__ == "__main__":
    main()
