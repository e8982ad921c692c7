"""metrics at scale, against baselines in the same run.

    .venv/bin/python benchmarks/bench_metrics.py [--tasks 10000000]

Generates a task log of N tasks and matching probe timings (one `done` line per task), then
times, each in its own process (so each peak RSS is its own):
  1. capacity metrics (the library call the CLI makes),
  2. a straightforward per-line Python loop doing the same join and statistics (target: >= 10x),
  3. DuckDB running the same join and aggregates over the same files (target: <= 1.5x DuckDB).
Target peak memory for capacity: under 4 GB. DuckDB is a dependency of capacity (its metrics engine).
Then #26's comparison, as a user runs them (new processes, start-up included): `capacity metrics
... -f json` against DuckDB computing every figure that command prints in one query
(``_command.SAME_FIGURES``; S, W, W from receipt and R, the counts, X, the steady X, the timeline;
each checked equal to capacity's), target <= 1.2x and <= 2 GB; query 3 is timed beside them.
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

# Each contender prints its figures and its own peak RSS (VmHWM: reset by exec, unlike ru_maxrss).
PEAK = "int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) / 1024"

CAPACITY = """
import sys, json, time
sys.path.insert(0, {root!r})
from pathlib import Path
from capacity.measure.metrics import run_metrics
start = time.perf_counter()
d = run_metrics([Path({log!r})], [{timings!r}]).to_json()
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "rss_mb": {peak}, "completed": d["completed"],
    "S_mean": d["service_time_mean_s"], "S_p95": d["service_time_p95_s"], "W_mean": d["wait_mean_s"],
    "R_p99": d["response_time_p99_s"], "X": d["throughput_per_min"]}}))
"""

# The same work, line by line: first send per id, earliest start / latest finish per id across
# lines, a left join, then mean / p50 / p90 / p95 / p99 / max of S, W and R.
LOOP = """
import sys, json, time, os
from datetime import datetime
start = time.perf_counter()
sent = {{}}
with open({log!r}) as f:
    for line in f:
        row = json.loads(line)
        if "task_id" in row:
            t = datetime.fromisoformat(row["sent_at"]).timestamp()
            if row["task_id"] not in sent or t < sent[row["task_id"]]:
                sent[row["task_id"]] = t
timing = {{}}
for name in os.listdir({timings!r}):
    with open(os.path.join({timings!r}, name)) as f:
        for line in f:
            row = json.loads(line)
            cur = timing.setdefault(row["task_id"], [None, None, None])
            if row["event"] == "done":
                cur[0] = row["started"] if cur[0] is None else min(cur[0], row["started"])
                cur[1] = row["finished"] if cur[1] is None else max(cur[1], row["finished"])
                cur[2] = row["state"] if cur[2] is None else max(cur[2], row["state"])
S, W, R, finishes = [], [], [], []
for task_id, t_sent in sent.items():
    got = timing.get(task_id)
    if got and got[1] is not None and got[2] == "SUCCESS":
        S.append(got[1] - got[0]); W.append(got[0] - t_sent); R.append(got[1] - t_sent); finishes.append(got[1])
def stats(values):
    values.sort()
    pick = lambda q: values[round(q * (len(values) - 1))]
    return [sum(values) / len(values), pick(.5), pick(.9), pick(.95), pick(.99), values[-1]]
s, w, r = stats(S), stats(W), stats(R)
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "rss_mb": {peak}, "completed": len(S), "S_mean": s[0], "S_p95": s[3],
    "W_mean": w[0], "R_p99": r[4], "X": len(S) / (max(finishes) - min(sent.values())) * 60}}))
"""

# The same work in one DuckDB query over the same files.
DUCKDB = """
import json, time, duckdb
start = time.perf_counter()
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
row = con.execute(\"\"\"
  WITH l AS (
    SELECT task_id, min(epoch(CAST(sent_at AS TIMESTAMPTZ))) AS sent
    FROM read_json({log!r}, format='newline_delimited', columns={{'task_id': 'VARCHAR', 'sent_at': 'VARCHAR'}})
    WHERE task_id IS NOT NULL GROUP BY task_id),
  g AS (
    SELECT task_id, min(started) AS started, max(finished) AS finished, max(state) AS state
    FROM read_json({timings!r} || '/*.jsonl', format='newline_delimited',
      columns={{'task_id': 'VARCHAR', 'event': 'VARCHAR', 'started': 'DOUBLE', 'finished': 'DOUBLE',
                'state': 'VARCHAR'}})
    GROUP BY task_id),
  j AS (SELECT l.sent, g.started, g.finished, g.state = 'SUCCESS' AS ok FROM l LEFT JOIN g USING (task_id))
  SELECT count(*) FILTER (WHERE ok),
         avg(finished - started) FILTER (WHERE ok),
         quantile_cont(finished - started, [0.5, 0.9, 0.95, 0.99]) FILTER (WHERE ok),
         max(finished - started) FILTER (WHERE ok),
         avg(started - sent), quantile_cont(started - sent, [0.5, 0.9, 0.95, 0.99]), max(started - sent),
         avg(finished - sent) FILTER (WHERE ok),
         quantile_cont(finished - sent, [0.5, 0.9, 0.95, 0.99]) FILTER (WHERE ok),
         max(finished - sent) FILTER (WHERE ok),
         count(*) FILTER (WHERE ok) / (max(finished) - min(sent)) * 60
  FROM j\"\"\").fetchall()[0]
elapsed = time.perf_counter() - start
print(json.dumps({{"seconds": elapsed, "rss_mb": {peak}, "completed": row[0], "S_mean": row[1],
    "S_p95": row[2][2], "W_mean": row[4], "R_p99": row[8][3], "X": row[10]}}))
"""


def generate(directory: Path, n: int) -> tuple[Path, Path]:
    """A task log and a probe directory for ``n`` tasks, written in chunks (vectorised times)."""
    rng = np.random.default_rng(7)
    log = directory / "worker_tasks_20260101_000000.log"
    timings = directory / "timings"
    timings.mkdir()
    chunk = 1_000_000
    with log.open("w") as log_file, (timings / "timings-bench-1.jsonl").open("w") as probe_file:
        log_file.write(json.dumps({"type": "run", "mode": "sustained", "rate_per_s": 1000.0, "count": n}) + "\n")
        for start in range(0, n, chunk):
            size = min(chunk, n - start)
            index = np.arange(start, start + size)
            sent = T0 + index / 1000.0
            started = sent + rng.exponential(0.5, size)
            finished = started + rng.lognormal(-1.0, 0.5, size)
            stamps = np.datetime_as_string((sent * 1e6).astype("datetime64[us]"), unit="us")
            ids = [f"00000000-0000-4000-8000-{i:012x}" for i in index]
            log_file.write(
                "".join(
                    f'{{"task_id":"{i}","scheduled_at":"{s}+00:00","sent_at":"{s}+00:00","size_bytes":1,"queue":"celery"}}\n'
                    for i, s in zip(ids, stamps, strict=True)
                )
            )
            probe_file.write(
                "".join(
                    f'{{"task_id":"{i}","event":"done","started":{a:.6f},"finished":{b:.6f},"state":"SUCCESS",'
                    f'"host":"h","pid":1}}\n'
                    for i, a, b in zip(ids, started.tolist(), finished.tolist(), strict=True)
                )
            )
    return log, timings


def run(code: str, log: Path, timings: Path) -> dict[str, float]:
    source = code.format(root=str(ROOT), log=str(log), timings=str(timings), peak=PEAK)
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def as_commands(log: Path, timings: Path, rounds: int) -> None:
    """#26: as a user runs them: `capacity metrics ... -f json`, and a Python process running DuckDB's
    query of the same figures (its import included); the query above (fewer figures) for the record."""
    sys.path.insert(0, str(ROOT))  # run as a script: the repository is not on the path
    from benchmarks._command import compare_as_commands, same_figures

    argv = [str(Path(sys.executable).parent / "capacity"), "metrics", "--tasks-log", str(log)]
    argv += ["--timings", f"probe:{timings}", "-f", "json"]
    fewer = [sys.executable, "-c", DUCKDB.format(root=str(ROOT), log=str(log), timings=str(timings), peak=PEAK)]
    probe = f"""
        SELECT task_id, min(CASE WHEN event = 'received' THEN t END) AS received, min(started) AS started,
               max(finished) AS finished, NULL::DOUBLE AS record_start, max(state) AS state
        FROM read_json('{timings}/*.jsonl', format = 'newline_delimited',
                       columns = {{'task_id': 'VARCHAR', 'event': 'VARCHAR', 't': 'DOUBLE', 'started': 'DOUBLE',
                                  'finished': 'DOUBLE', 'state': 'VARCHAR'}})
        GROUP BY task_id"""
    same = [sys.executable, "-c", same_figures(str(log), probe, ("s", "w", "wr", "r"))]
    compare_as_commands(argv, same, fewer, rounds, 1.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000_000)
    parser.add_argument("--skip-loop", action="store_true", help="leave out the per-line loop (slow)")
    parser.add_argument("--data", type=Path, help="keep the generated files here and reuse them next time")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit for capacity (e.g. 3GB)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the as-commands comparison (median)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as name:
        started = time.perf_counter()
        folder = options.data or Path(name)
        if options.data and (folder / "timings").is_dir():
            log, timings = folder / "worker_tasks_20260101_000000.log", folder / "timings"
            verb = "reused"
        else:
            verb = "generated"
            folder.mkdir(parents=True, exist_ok=True)
            log, timings = generate(folder, options.tasks)
        size_mb = (log.stat().st_size + sum(p.stat().st_size for p in timings.iterdir())) / 1e6
        print(
            f"{verb} {options.tasks:,} tasks ({size_mb:,.0f} MB of JSON Lines) in {time.perf_counter() - started:.1f} s"
        )
        # the same start for both: the files in the page cache (whichever ran first read them
        # from disk: 14.1 s against 7.4 s for the same capacity run, once)
        for path in [log, *timings.iterdir()]:
            with path.open("rb") as handle:
                while handle.read(1 << 24):
                    pass
        ours = run(CAPACITY, log, timings)
        duck = run(DUCKDB, log, timings)
        loop = None if options.skip_loop else run(LOOP, log, timings)
        rows = [("capacity metrics", ours), ("DuckDB", duck)] + ([("per-line loop", loop)] if loop else [])
        for label, r in rows:
            print(
                f"  {label:<17} {r['seconds']:8.2f} s  peak RSS {r['rss_mb']:7,.0f} MB  completed {r['completed']:,}"
                f"  S mean {r['S_mean']:.4f} s  S p95 {r['S_p95']:.4f} s  W mean {r['W_mean']:.4f} s"
                f"  R p99 {r['R_p99']:.4f} s"
                f"  X {r['X']:,.1f}/min"
            )
        print(f"capacity vs DuckDB: {ours['seconds'] / duck['seconds']:.2f}x DuckDB's time (target <= 1.5x)")
        if loop:
            print(f"capacity vs per-line loop: {loop['seconds'] / ours['seconds']:.1f}x faster (target >= 10x)")
        print(f"capacity peak memory: {ours['rss_mb'] / 1024:.2f} GB (target < 4 GB)")
        as_commands(log, timings, options.rounds)


if __name__ == "__main__":
    main()
