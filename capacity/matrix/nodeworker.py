"""The reference BullMQ worker (Node) with its packages: the package's own folder where they are
installed (a checkout after ``scripts/setup.sh``), else a per-user cache filled on first use by
``npm ci`` from the lockfile shipped in the package (#22: after ``pip install``, ``bench
--protocol bullmq`` failed with Node's "Cannot find module 'bullmq'"). Not site-packages: it may
not be writable, and a cache outlives reinstalls of the same version."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from capacity.errors import RunFailed

SOURCE_DIR = Path(__file__).resolve().parent.parent / "workerside" / "node"
#: what the cache holds of the package: the scripts and the manifests npm ci installs from
FILES = ("package.json", "package-lock.json")
CACHE_ENV = "CAPACITY_CACHE_DIR"


def cache_root() -> Path:
    """$CAPACITY_CACHE_DIR, else $XDG_CACHE_HOME/capacity, else ~/.cache/capacity."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "capacity"


def _installed(folder: Path) -> bool:
    return (folder / "node_modules" / "bullmq" / "package.json").is_file()


def _sources(source: Path) -> list[Path]:
    return sorted([*source.glob("*.js"), *(source / name for name in FILES)])


@functools.cache
def node_worker_script(source: Path = SOURCE_DIR) -> Path:
    """worker.js of a folder where ``require('bullmq')`` resolves; installs the cache once."""
    if _installed(source):
        return source / "worker.js"
    digest = hashlib.sha256()
    for path in _sources(source):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target = cache_root() / f"node-worker-{digest.hexdigest()[:16]}"
    if _installed(target):
        return target / "worker.js"
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, found in (("node", node), ("npm", npm)) if found is None)
        raise RunFailed(
            f"the reference BullMQ worker needs Node.js 18+ and npm ({missing} not found): install them "
            "(Debian: apt-get install nodejs npm), or give your own worker with --worker-cmd"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        for path in _sources(source):
            shutil.copy2(path, staging / path.name)
        print(
            f"capacity: installing the reference BullMQ worker's packages (npm ci, once) into {target}",
            file=sys.stderr,
            flush=True,
        )
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(staging)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not _installed(staging):
            tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
            raise RunFailed(f"npm ci for the reference BullMQ worker failed (exit {done.returncode}): {tail}")
        try:
            staging.rename(target)  # whole or not at all: a second process may have won the race
        except OSError:
            if not _installed(target):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target / "worker.js"
