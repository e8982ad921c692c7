"""Issue #22: the tool as ``pip install`` leaves it, not as the checkout's set-up does.

A wheel is built from a copy of the sources, installed into a brand-new venv, and run from there
with HOME in a temporary folder: ``capacity bench --protocol bullmq`` must install the reference
Node worker's packages itself (``npm ci`` from the lockfile shipped in the wheel, into the per-user
cache) and run the matrix end to end on the embedded Redis and a real Node BullMQ worker.

The wheel is installed with ``--no-deps``; its dependencies come from this checkout's venv through
a path line (not its .pth files, so the checkout's editable ``capacity`` stays invisible): the
test is about what the wheel carries, and CI must not download the scientific stack twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests.realbrokers import ROOT


def _wheel(tmp_path: Path) -> Path:
    """The project's wheel, built from a copy of its sources (the checkout is left untouched)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "capacity", source / "capacity", ignore=shutil.ignore_patterns("node_modules", "__pycache__")
    )
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("worker_capacity-*.whl")
    return wheel


def test_a_pip_installed_bench_with_bullmq_installs_its_node_worker_and_runs(tmp_path: Path) -> None:
    # a real-component test must not skip: a machine without Node and npm fails here, loudly
    assert shutil.which("node") and shutil.which("npm"), "Node.js and npm are needed (the README's set-up)"
    wheel = _wheel(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "checkout-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    home = tmp_path / "home"
    home.mkdir()
    # the user's environment (its certificates, npm's settings) without this checkout's or our cache
    ours = ("PYTHONPATH", "VIRTUAL_ENV", "XDG_CACHE_HOME", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPACITY_") and k not in ours}
    # npm's download cache (tarballs) is the user's; our cache (the installed worker) starts empty
    env.update(HOME=str(home), COLUMNS="120", npm_config_cache=str(Path.home() / ".npm"))
    where = subprocess.run(
        [python, "-c", "import capacity; print(capacity.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(site)), where.stdout  # the wheel's copy, not the checkout's
    matrix = tmp_path / "m.yaml"
    matrix.write_text(
        "task: process_file\nqueue: wheel-bullmq\nkwargs: {sleep_s: 0.02}\nconcurrencies: [1, 2]\n"
        "modes:\n  - {mode: burst, count: 10}\n"
    )
    run_dir = tmp_path / "run"
    argv = ["bench", "--protocol", "bullmq", "--matrix", str(matrix), "--run-dir", str(run_dir), "-q", "-f", "json"]
    proc = subprocess.run(
        [env_dir / "bin" / "capacity", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "installing the reference BullMQ worker's packages" in proc.stderr
    cached = list((home / ".cache" / "capacity").glob("node-worker-*/node_modules/bullmq/package.json"))
    assert len(cached) == 1
    assert [c["completed"] for c in json.loads(proc.stdout)["cells"]] == [10, 10]
