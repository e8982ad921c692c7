"""matrix run and report, without brokers: run directories, bottleneck notes, the recommended
concurrency, the HTML page. The real runs are in test_matrix_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from capacity.errors import InputError
from capacity.matrix.analysis import ValidationCheck, recommended_concurrency, usl_fits, validate
from capacity.matrix.cells import Cell
from capacity.matrix.results import CSV_COLUMNS, CellResult, ResourceSummary, prepare_run_dir, write_results
from capacity.matrix.sampler import bottleneck
from capacity.matrix.spec import CellSpec, Matrix, ModeSpec, cells
from capacity.render.formats import render
from capacity.render.model import Report, Table
from capacity.sizing.usl import USLFit


def tiny(concurrencies: tuple[int, ...] = (1, 2)) -> Matrix:
    return Matrix(sizes=(1000,), concurrencies=concurrencies, modes=(ModeSpec(mode="burst", count=5),))


def test_cell_ids_are_stable_and_numbered() -> None:
    matrix = Matrix(
        sizes=(50_000_000,),
        concurrencies=(1, 4),
        modes=(ModeSpec(mode="burst", count=5), ModeSpec(mode="sustained", rate="10/min", count=5)),
    )
    assert [c.cell_id for c in cells(matrix)] == [
        "01-50MB-c1-burst",
        "02-50MB-c4-burst",
        "03-50MB-c1-sustained",
        "04-50MB-c4-sustained",
    ]


def test_a_run_directory_belongs_to_one_matrix(tmp_path: Path) -> None:
    run = tmp_path / "run"
    prepare_run_dir(run, tiny(), fresh=False)
    prepare_run_dir(run, tiny(), fresh=False)  # the same matrix: resumes
    with pytest.raises(InputError, match="different matrix"):
        prepare_run_dir(run, tiny((1, 2, 4)), fresh=False)
    (run / "cells" / "01-1kB-c1-burst").mkdir(parents=True)
    prepare_run_dir(run, tiny((1, 2, 4)), fresh=True)  # --fresh starts over
    assert not (run / "cells").exists()


def test_results_files_are_rebuilt_from_finished_cells_only(tmp_path: Path) -> None:
    for name, sent in (("01-a", 10), ("02-b", 20)):
        (tmp_path / "cells" / name).mkdir(parents=True)
        record = {"cell": {"cell": name, "concurrency": 1}, "metrics": {"sent": sent}, "bottleneck": "x"}
        (tmp_path / "cells" / name / "result.json").write_text(json.dumps(record))
    (tmp_path / "cells" / "03-interrupted").mkdir()  # no result.json: not finished
    results = write_results(tmp_path)
    assert [r.cell.cell for r in results] == ["01-a", "02-b"]
    import csv

    with (tmp_path / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # the columns come from the result's types: the cell, the metrics' public keys, the resources
    assert tuple(rows[0]) == CSV_COLUMNS and CSV_COLUMNS[:5] == ("cell", "size", "size_bytes", "concurrency", "mode")
    assert (rows[1]["cell"], rows[1]["concurrency"], rows[1]["sent"], rows[1]["bottleneck"]) == ("02-b", "1", "20", "x")
    # a result survives its JSON round trip
    assert CellResult.from_json(results[1].to_json()) == results[1]


def spec(concurrency: int, mode: str = "burst") -> CellSpec:
    return CellSpec(1, "c", 1000, concurrency, ModeSpec(mode=mode, count=5, rate="1/s" if mode != "burst" else None))


@pytest.mark.parametrize(
    ("cell", "utilization", "cpu", "expected"),
    [
        # 4 slots on 2 cores: 170% of one core is 85% of the 2 usable ones
        (spec(4), 0.95, 170.0, "worker CPU: 170% of 2 usable core(s)"),
        (spec(1), 0.97, 35.0, "slots: 97% busy, CPU 35%"),
        (spec(4, "sustained"), 0.2, 20.0, "none: kept up with the arrivals (20% busy)"),
    ],
)
def test_bottleneck_follows_what_was_measured(cell: CellSpec, utilization: float, cpu: float, expected: str) -> None:
    resources = ResourceSummary(
        cores=2, worker_cpu_mean_percent=cpu, worker_rss_peak_bytes=10**8, host_memory_bytes=10**10
    )
    assert bottleneck(cell, {"utilization": utilization}, resources).startswith(expected)


def test_bottleneck_without_samples_says_so() -> None:
    assert bottleneck(spec(2), {"utilization": None}, None) == "not measured"


def test_recommended_concurrency_by_hand() -> None:
    # sigma 0, kappa 0.02, lambda 100: N* = sqrt(1/0.02) = 7.07, X(N*) = 707.1/1.8586 = 380.4,
    # 95% of it = 361.4; X(5) = 500/1.4 = 357.1 (short), X(6) = 600/1.6 = 375.0: 6
    model = USLFit(sigma=0.0, kappa=0.02, lambda_=100.0, r_squared=1.0, points=3)
    assert recommended_concurrency(model, tested_max=4) == (6, "smallest N reaching 95% of the fitted peak")
    linear = USLFit(sigma=0.0, kappa=0.0, lambda_=100.0, r_squared=1.0, points=3)
    assert recommended_concurrency(linear, tested_max=4)[0] is None
    # sigma 0.1, kappa 0: X -> lambda/sigma = 1000; 95% needs N/(1 + 0.1(N-1)) >= 9.5, N >= 171
    far = USLFit(sigma=0.1, kappa=0.0, lambda_=100.0, r_squared=1.0, points=3)
    best, note = recommended_concurrency(far, tested_max=8)
    assert best == 171 and "beyond twice the tested range" in note


def test_usl_is_fitted_on_burst_cells_only(tmp_path: Path) -> None:
    def cell(c: int, mode: str, x: float) -> Cell:
        result = {"cell": {"cell": f"{mode}{c}", "size_bytes": 1000, "concurrency": c, "mode": mode, "rate": None}}
        result["metrics"] = {"throughput_per_min": x}
        return Cell(CellResult.from_json(result), tmp_path)

    # X = 100 N / (1 + 0.02 N (N - 1)) at N = 1, 2, 4, 8: 100, 192.3, 320.5, 347.8
    burst = [cell(n, "burst", 100 * n / (1 + 0.02 * n * (n - 1))) for n in (1, 2, 4, 8)]
    fits = usl_fits([*burst, cell(1, "sustained", 60.0), cell(2, "sustained", 60.0), cell(4, "sustained", 60.0)])
    by_mode = {f.group[1]: f for f in fits}
    assert by_mode["burst"].fit is not None
    assert by_mode["burst"].fit.kappa == pytest.approx(0.02, rel=1e-4)
    assert by_mode["burst"].recommended == 6
    assert by_mode["sustained"].fit is None and "arrival rate" in by_mode["sustained"].note


def test_html_page_escapes_text_and_embeds_images() -> None:
    report = Report(
        "R",
        {},
        (("a", "<b>"),),
        (Table("T", ("c",), (("<script>x</script>",),)),),
        ("n & m",),
        images=(("plot.png", b"\x89PNG fake"),),
    )
    page = render(report, "html")
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert 'src="data:image/png;base64,iVBORyBmYWtl"' in page and "n &amp; m" in page
    assert "http" not in page  # nothing to fetch: opens offline


def fcfs_cell(tmp_path: Path, delay_s: float) -> Cell:
    """10 tasks sent at once to 2 slots, 1 s each: task i starts at floor(i/2) (+ a delivery
    delay), so by hand W = mean(0,0,1,1,2,2,3,3,4,4) = 2 s, R = 3 s, window 5 s, X = 120/min."""
    lines = ["task_id,sent,received,started,finished,state,service_s,wait_s,response_s"]
    for i in range(10):
        start = i // 2 + delay_s
        lines.append(f"t{i},1000.0,,{1000 + start},{1001 + start},SUCCESS,1.0,{start},{start + 1}")
    (tmp_path / "tasks.csv").write_text("\n".join(lines) + "\n")
    metrics = {
        "sent": 10,
        "throughput_per_min": 10 / (5 + delay_s) * 60,
        "service_time_mean_s": 1.0,
        "wait_mean_s": 2.0 + delay_s,
        "response_time_mean_s": 3.0 + delay_s,
    }
    return Cell(CellResult.from_json({"cell": {"cell": "c", "concurrency": 2}, "metrics": metrics}), tmp_path)


def test_model_reproduces_an_fcfs_pool_exactly(tmp_path: Path) -> None:
    check = validate(fcfs_cell(tmp_path, 0.0))
    assert check is not None
    for key in ("throughput_per_min", "service_time_mean_s", "wait_mean_s", "response_time_mean_s"):
        assert getattr(check, key).error == pytest.approx(0, abs=1e-9), key
    assert check.within_target and check.why == ""
    assert ValidationCheck.from_json(check.to_json()) == check


def test_model_misses_are_named_not_tuned(tmp_path: Path) -> None:
    # every task starts 0.5 s late (delivery): R is 3.5 s against the model's 3 s, -14%
    check = validate(fcfs_cell(tmp_path, 0.5))
    assert check is not None
    assert check.response_time_mean_s.error == pytest.approx(3.0 / 3.5 - 1)
    assert not check.within_target
    assert check.why.startswith("waits +500 ms over the model")


def test_reference_worker_behaves_like_the_profile_job_types() -> None:
    import random

    from capacity.workerside.reference import job_plan, process_file

    rng = random.Random(3)
    for _ in range(200):
        # seed 002's 2D Render: cpu 0.2-0.5 of a core, 200-500 MB, 5-15 s; here at 1/100 the time
        plan = job_plan("2d render", time_scale=0.01, memory_scale=0.5, rng=rng)
        duration = plan["cpu_s"] + plan["sleep_s"]
        assert 0.05 <= duration <= 0.15
        assert 0.2 <= plan["cpu_s"] / duration <= 0.5
        assert 100e6 <= plan["memory_bytes"] <= 250e6
    # seed 002's 3D Render asks for 1-2 CPUs: one process can use one, so it is all CPU
    assert job_plan("3D Render", rng=rng)["sleep_s"] == 0
    with pytest.raises(ValueError, match="unknown job type 'nope'; known: 2d render"):
        job_plan("nope")
    # the task itself: holds the memory, spins the CPU time, sleeps the rest
    import time

    before = time.process_time()
    done = process_file.run(cpu_s=0.02, sleep_s=0.01, memory_bytes=5e6)
    assert time.process_time() - before >= 0.02  # CPU time, not wall clock: it spins until spent
    assert (done["cpu_s"], done["sleep_s"]) == (0.02, 0.01)


def test_a_report_combines_runs_and_names_each_cell_by_its_run(tmp_path: Path) -> None:
    from capacity.matrix.cells import load_cells

    for run in ("monday", "tuesday"):
        for n in (1, 2, 4):
            name = f"0{n}-1MB-c{n}-burst"
            (tmp_path / run / "cells" / name).mkdir(parents=True)
            record = {
                "cell": {"cell": name, "size_bytes": 10**6, "concurrency": n, "mode": "burst", "rate": None},
                "metrics": {"throughput_per_min": 100 * n / (1 + 0.02 * n * (n - 1))},
            }
            (tmp_path / run / "cells" / name / "result.json").write_text(json.dumps(record))
    cells = load_cells([tmp_path / "monday", tmp_path / "tuesday"])
    assert [c.label for c in cells][:2] == ["monday/01-1MB-c1-burst", "monday/02-1MB-c2-burst"]
    (only,) = usl_fits(cells)  # one (size, mode): both runs' points in one fit
    assert len(only.points) == 6 and only.fit is not None
    assert load_cells([tmp_path / "monday"])[0].label == "01-1MB-c1-burst"
    with pytest.raises(InputError, match="no finished cells"):
        load_cells([tmp_path])


def test_fresh_deletes_only_a_run_directory(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="was not created by capacity matrix run"):
        prepare_run_dir(precious, tiny(), fresh=True)
    assert (precious / "thesis.tex").read_text() == "years of work"
    # #23: a project folder holding its own matrix.yaml, used as the run directory once, then
    # --fresh: it removed proj/src/app.py. The folder was not made by matrix run: never deleted
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "app.py").write_text("the user's app")
    (project / "matrix.yaml").write_text(yaml.safe_dump(tiny().model_dump(mode="json")))
    prepare_run_dir(project, tiny(), fresh=False)  # runs there, as asked
    with pytest.raises(InputError, match="was not created by capacity matrix run"):
        prepare_run_dir(project, tiny(), fresh=True)
    assert (project / "src" / "app.py").read_text() == "the user's app"
    # a marker that is a link (to a file saying whatever) does not make a folder ours
    (project / ".capacity-run").symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text('{"run_id": "x"}')
    with pytest.raises(InputError, match="was not created"):
        prepare_run_dir(project, tiny(), fresh=True)
    # one matrix run made is its own: --fresh starts it over
    ours = tmp_path / "ours"
    prepare_run_dir(ours, tiny(), fresh=False)
    (ours / "cells").mkdir()
    prepare_run_dir(ours, tiny(), fresh=True)
    assert not (ours / "cells").exists() and (ours / ".capacity-run").is_file()


def test_template_fields_are_data_not_shell(tmp_path: Path) -> None:
    from capacity.matrix.processes import WorkerControl, WorkerProcess

    fields = {"queue": "q;touch pwned;echo", "concurrency": "2", "broker": "redis://h/0", "events": "-E"}
    fields |= {"limiter": "--limiter-max 10 --limiter-duration 1000"}
    control = WorkerControl(up="cd " + str(tmp_path) + " && echo {queue} {events} {limiter} > seen", down="true")
    worker = WorkerProcess(control, fields, tmp_path / "worker.log", "redis://h/0", "probe:/tmp/t")
    worker._shell(control.up or "", "--worker-up")
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "seen").read_text() == "q;touch pwned;echo -E --limiter-max 10 --limiter-duration 1000\n"


def test_delivery_bound_and_host_saturated_cells_are_named() -> None:
    # issue #12: on SQS with Celery's default polling, W was 5.6-7.9 s while the wait from receipt
    # was 0.08 s at 12-15% utilisation: the note must say delivery-bound and name polling_interval
    sqs = {"wait_mean_s": 6.4, "wait_from_received_mean_s": 0.08, "utilization": 0.13}
    note = bottleneck(spec(4), sqs, ResourceSummary(cores=2, worker_cpu_mean_percent=10.0), broker="sqs")
    assert note.startswith("delivery-bound: W 6.40 s from send but 0.08 s from receipt, slots 13% busy")
    assert "polling_interval" in note
    # a CPU-bound resize on a saturated host: not "more concurrency helps"
    busy = {"utilization": 0.95, "wait_mean_s": 3.0, "wait_from_received_mean_s": 2.9}
    note = bottleneck(spec(8), busy, ResourceSummary(cores=2, worker_cpu_mean_percent=60.0, host_cpu_mean_percent=97.0))
    # issue #21: the worker used 60% of 200% on a host 97% busy: the rest was other processes
    assert note.startswith("host CPU 97% busy but the worker used 60% of 200%: other processes took the rest")
    assert "more concurrency" not in note
    mine = ResourceSummary(cores=2, worker_cpu_mean_percent=185.0, host_cpu_mean_percent=97.0)
    assert bottleneck(spec(8), busy, mine).startswith("host CPU saturated (97% of 2 cores)")
    # the same slots busy on an idle host: waiting inside, more concurrency helps
    note = bottleneck(spec(8), busy, ResourceSummary(cores=2, worker_cpu_mean_percent=20.0, host_cpu_mean_percent=30.0))
    assert "more concurrency helps" in note


def test_a_matrix_without_sizes_is_concurrency_by_mode() -> None:
    matrix = Matrix(concurrencies=(1, 2), modes=(ModeSpec(mode="burst", count=5),), args=["$task_id"])
    assert matrix.cell_ids() == ["01-c1-burst", "02-c2-burst"]
    assert [c.size_bytes for c in cells(matrix)] == [0, 0]


def test_numbers_read_as_numbers() -> None:
    # issue #12: "1.17e+03" and "-0%" in the report
    from capacity.matrix.analysis import Comparison, readable, signed_percent

    assert [readable(v) for v in (1170.4, 12.345, 0.012345, 0.0, 98765.4)] == ["1,170", "12.3", "0.0123", "0", "98,765"]
    assert [signed_percent(v) for v in (-0.001, 0.004, 0.126, -0.034)] == ["0%", "0%", "+13%", "-3%"]
    assert Comparison(1170.4, 1180.0, -0.001).pair() == "1,170 / 1,180 (0%)"


def test_replicas_against_threads_at_the_same_slots(tmp_path: Path) -> None:
    from capacity.matrix.analysis import replicas_vs_threads, usl_fits

    def cell(name: str, replicas: int, concurrency: int, x: float) -> Cell:
        info = {"cell": name, "concurrency": concurrency, "replicas": replicas, "mode": "burst", "size_bytes": 0}
        return Cell(CellResult.from_json({"cell": info, "metrics": {"throughput_per_min": x}}), tmp_path)

    cells_ = [cell("a", 1, 8, 400.0), cell("b", 2, 4, 500.0), cell("c", 1, 4, 300.0), cell("d", 1, 2, 160.0)]
    # seed 001's question: 2 containers x 4 threads against 1 x 8, both 8 slots
    assert replicas_vs_threads(cells_) == [
        "burst, 8 slots: 8: X 400/min; 2 x 4: X 500/min (+25%) (replicas vs threads)"
    ]
    points = usl_fits(cells_)[0].points
    assert sorted(n for n, _ in points) == [2, 4, 8, 8]  # the USL's N is replicas x concurrency


def test_a_worker_command_takes_leading_assignments_and_the_cells_env(tmp_path: Path) -> None:
    # #22: `--worker-cmd "WORKER_CONCURRENCY={concurrency} node worker.js"` was refused ("cannot start
    # 'WORKER_CONCURRENCY=2'"), and a matrix had no per-cell env
    import sys
    import threading

    from capacity.matrix.processes import WorkerControl, WorkerProcess
    from capacity.matrix.run import _cell_env

    fields = {"concurrency": "3", "queue": "q", "cell": "01-c3-burst", "replica": "0", "broker": "redis://h/0"}
    script = "import os, time; print(os.environ['WORKER_CONCURRENCY'], os.environ['APP_QUEUE'], 'ready.', flush=True)"
    script += "; time.sleep(30)"
    command = "WORKER_CONCURRENCY={concurrency} " + f"{sys.executable} -c {json.dumps(script)}"
    env = _cell_env({"APP_QUEUE": "{queue}-{concurrency}"}, fields)
    assert env == {"APP_QUEUE": "q-3"}
    worker = WorkerProcess(WorkerControl(command=command, env=env), fields, tmp_path / "w.log", "redis://h/0", "x")
    worker.start(threading.Event())
    worker.stop()
    assert (tmp_path / "w.log").read_text().strip() == "3 q-3 ready."
    with pytest.raises(InputError, match="the matrix file's env: bad template"):
        _cell_env({"X": "{nope}"}, fields)


def test_a_node_worker_without_protocol_bullmq_is_told_so(tmp_path: Path) -> None:
    import sys
    import threading

    from capacity.errors import RunFailed
    from capacity.matrix.processes import WorkerControl, WorkerProcess

    # a worker that never prints Celery's banner, started by a command that looks like Node
    script = tmp_path / "worker.js"
    script.write_text("")
    command = f"{sys.executable} -c 'import time; time.sleep(5)' {script}"
    control = WorkerControl(command=command, ready_timeout_s=0.5)
    worker = WorkerProcess(control, {"replica": "0", "broker": "redis://h/0"}, tmp_path / "w.log", "redis://h/0", "x")
    with pytest.raises(RunFailed, match="looks like a Node worker: give --protocol bullmq"):
        worker.start(threading.Event())
    worker.stop()


def test_job_options_in_a_matrix_are_bullmqs() -> None:
    from capacity.load.inject import check_job_options

    check_job_options({"attempts": 3, "removeOnComplete": True}, "bullmq", "job_options")
    with pytest.raises(InputError, match="are BullMQ's job options: give --protocol bullmq"):
        check_job_options({"attempts": 3}, "celery", "job_options")
    with pytest.raises(InputError, match="each job's id is the injector's"):
        check_job_options({"jobId": "x"}, "bullmq", "job_options")
    matrix = Matrix(
        concurrencies=(1,), modes=(ModeSpec(mode="burst"),), env={"A": "{concurrency}"}, job_options={"attempts": 2}
    )
    assert matrix.env == {"A": "{concurrency}"} and matrix.job_options == {"attempts": 2}


def test_no_name_the_run_directory_holds_is_written_through_a_symlink(tmp_path: Path) -> None:
    """Issue #23: links planted at the names a matrix run writes (its matrix copy, results, a
    worker's log, collected events) are replaced or refused, never followed to their target."""
    from capacity import files
    from capacity.errors import WriteFailed
    from capacity.matrix.results import write_results

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "matrix.yaml").symlink_to(victim)
    with pytest.raises(InputError, match="different matrix"):  # not ours: refused, nothing written
        prepare_run_dir(run_dir, tiny(), fresh=False)
    (run_dir / "matrix.yaml").unlink()
    for name in ("results.json", "results.csv"):
        (run_dir / name).symlink_to(victim)
    prepare_run_dir(run_dir, tiny(), fresh=False)
    write_results(run_dir)
    assert victim.read_text() == "keep me"
    assert not any((run_dir / n).is_symlink() for n in ("matrix.yaml", "results.json", "results.csv"))
    log = tmp_path / "worker.log"
    log.symlink_to(victim)
    with pytest.raises(WriteFailed):
        files.append(log, binary=True)
    assert victim.read_text() == "keep me"
