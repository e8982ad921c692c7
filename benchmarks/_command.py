"""A command timed as a user runs it: a new process, start-up included, with its own peak memory;
and DuckDB computing the figures `capacity metrics` prints, as the baseline #26 names."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from typing import Any

# the child runs under a fresh interpreter whose only child is the command: RUSAGE_CHILDREN's
# peak is the command's own (ru_maxrss in KiB on Linux)
_WRAPPER = (
    "import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stdout.write(done.stdout); sys.stderr.write(done.stderr); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)"
)

# The figures `capacity metrics -f json` prints, computed by DuckDB in one query the way a user
# would write it (no checks: it trusts the files), printed under the same JSON keys. ``{timings}``
# is the CTE ``g``: one row per task id with received, started, finished, record_start, state.
SAME_FIGURES = """
import json, duckdb
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute("SET enable_progress_bar = false")
cursor = con.execute('''
    WITH l AS (SELECT task_id, min(epoch(CAST(sent_at AS TIMESTAMPTZ))) AS sent, count(*) AS n
               FROM read_json({log!r}, format = 'newline_delimited',
                              columns = {{'type': 'VARCHAR', 'task_id': 'VARCHAR', 'sent_at': 'VARCHAR'}})
               WHERE type IS NULL GROUP BY task_id),
    g AS ({timings}),
    j AS (SELECT l.sent, l.n, g.*, l.sent IS NOT NULL AND g.state = 'SUCCESS' AS ok,
                 l.sent IS NOT NULL AND g.state <> 'SUCCESS' AS failed
          FROM l FULL OUTER JOIN g USING (task_id)),
    d AS (SELECT *, CASE WHEN ok THEN finished - started END AS s, CASE WHEN ok THEN started - sent END AS w,
                 CASE WHEN ok THEN started - received END AS wr, CASE WHEN ok THEN finished - sent END AS r,
                 CASE WHEN ok THEN finished - record_start END AS ss FROM j)
    SELECT count(sent) AS sent, count(*) FILTER (WHERE ok) AS completed, count(*) FILTER (WHERE failed) AS failed,
           count(*) FILTER (WHERE sent IS NULL) AS unknown_timings, sum(n) - count(sent) AS duplicates,
           min(sent) AS first_sent, max(finished) FILTER (WHERE ok) AS last_finished,
           quantile_cont(finished, [0.1, 0.9]) FILTER (WHERE ok) AS spread,
           histogram(floor(finished / 60)::BIGINT) FILTER (WHERE ok) AS per_minute,
           {stats}
    FROM d''')
row = dict(zip([c[0] for c in cursor.description], cursor.fetchone()))
out = {{k: row[k] for k in ("sent", "completed", "failed", "unknown_timings", "duplicates")}}
window = row["last_finished"] - row["first_sent"]
out.update(missing=row["sent"] - row["completed"] - row["failed"], window_s=window,
           throughput_per_min=row["completed"] / window * 60,
           throughput_steady_per_min=0.8 * row["completed"] / (row["spread"][1] - row["spread"][0]) * 60)
for name, column in (("service_time", "s"), ("wait", "w"), ("wait_from_received", "wr"), ("response_time", "r"),
                     ("seed_s", "ss")):
    q = row[column + "_q"] or [None] * 4
    out.update({{f"{{name}}_mean_s": row[column + "_mean"], f"{{name}}_max_s": row[column + "_max"]}})
    out.update({{f"{{name}}_p{{p}}_s": v for p, v in zip((50, 90, 95, 99), q)}})
first, per_minute = int(row["first_sent"] // 60), row["per_minute"]
out["timeline_per_min"] = [{{"minute": m - first, "completed": per_minute.get(m, 0)}}
                           for m in range(first, max(per_minute) + 1)]
print(json.dumps(out))
"""
_STATS = (
    "avg({c}) AS {c}_mean, quantile_cont({c}, [0.5, 0.9, 0.95, 0.99]) AS {c}_q, max({c}) AS {c}_max"
)


def same_figures(log: str, timings: str, columns: tuple[str, ...]) -> str:
    """The program: DuckDB's query over ``log`` and the timing rows ``timings`` (SQL giving
    task_id, received, started, finished, record_start, state), with S, W, W from receipt, R and
    seed S over ``columns`` (the ones this source can give; the others print null)."""
    stats = ", ".join(
        _STATS.format(c=c) if c in columns else f"NULL AS {c}_mean, NULL AS {c}_q, NULL AS {c}_max"
        for c in ("s", "w", "wr", "r", "ss")
    )
    return SAME_FIGURES.format(log=log, timings=timings, stats=stats)


def timed_command(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak resident MB, stdout) of ``argv`` run as a new process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:3]} exited {done.returncode}: {done.stderr[-500:]}")
    *out, peak = done.stdout.rstrip("\n").split("\n")
    return wall, int(peak) / 1024, "\n".join(out)


def _differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """The keys of the reference whose value is not ours: floats to a microsecond or a millionth (the
    inputs are to the microsecond, and an epoch's last bit is 0.24 µs: DuckDB's epoch() and ours round
    it apart)."""
    wrong = []
    for key, value in theirs.items():
        mine = ours.get(key)
        if isinstance(value, float) and isinstance(mine, float):
            if not math.isclose(value, mine, rel_tol=1e-6, abs_tol=1e-6):
                wrong.append(f"{key}: {mine} vs {value}")
        elif value != mine:
            wrong.append(f"{key}: {str(mine)[:60]} vs {str(value)[:60]}")
    return wrong


def compare_as_commands(ours: list[str], same: list[str], narrower: list[str], rounds: int, target: float) -> None:
    """#26: `capacity metrics` and DuckDB computing the same figures, each as a user runs them (new
    processes, start-up and imports included), in rounds that rotate which runs first (a
    multiple of 3 puts each in each place as often): the medians, the ratio and the peak. Every
    figure DuckDB printed is checked against ours; the narrower query (fewer figures: the baseline
    of #12 and of the first measurement of #26) is timed too, for the record."""
    # each round starts with the next contender: a process run right after another one's gigabyte
    # ran 0.1-0.3 s slower here, so a fixed order would always hand that to the same one
    contenders = [ours, same, narrower]
    results: list[tuple[tuple[float, float, str], ...]] = []
    for round_ in range(rounds):
        order = [(round_ + i) % 3 for i in range(3)]
        timed = {index: timed_command(contenders[index]) for index in order}
        results.append(tuple(timed[i] for i in range(3)))
    wrong = _differences(json.loads(results[0][0][2]), json.loads(results[0][1][2]))
    if wrong:
        raise RuntimeError("DuckDB's figures are not capacity's: " + "; ".join(wrong))
    mine, theirs, fewer = (sorted(r[i][0] for r in results)[rounds // 2] for i in range(3))
    peak = max(r[0][1] for r in results)
    print(f"as commands (new processes, start-up included; median of {rounds} rounds, the order rotating):")
    print(f"  capacity metrics                {mine:7.2f} s  peak {peak:7,.0f} MB")
    figures = len(json.loads(results[0][1][2]))
    print(f"  DuckDB, the same figures        {theirs:7.2f} s  ({figures} figures, each equal to capacity's)")
    print(f"  DuckDB, fewer figures (#12)     {fewer:7.2f} s")
    rows = ", ".join(f"{a[0]:.2f}/{b[0]:.2f}/{c[0]:.2f}" for a, b, c in results)
    print(f"  rounds (capacity/same/fewer s): {rows}")
    print(f"capacity metrics as a command vs DuckDB computing the same figures: {mine / theirs:.2f}x "
          f"(target <= {target}x); vs the narrower query {mine / fewer:.2f}x; "
          f"peak {peak / 1024:.2f} GB (target <= 2 GB)")  # fmt: skip
