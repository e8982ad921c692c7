"""The reference BullMQ worker after a pip install (#22): where the package's folder has no
node_modules, its packages are installed once, by npm ci from the lockfile shipped in the
package, into a per-user cache; without node or npm, one line naming what to install."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from capacity.errors import RunFailed
from capacity.matrix.nodeworker import SOURCE_DIR, node_worker_script


def installed_package_copy(tmp_path: Path) -> Path:
    """The node folder as a wheel installs it: the scripts and manifests, no node_modules."""
    site = tmp_path / "site" / "capacity" / "workerside" / "node"
    site.mkdir(parents=True)
    for name in ("worker.js", "package.json", "package-lock.json"):
        shutil.copy2(SOURCE_DIR / name, site / name)
    return site


def test_the_reference_node_worker_is_installed_into_a_cache_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is part of the suite's machine (the BullMQ worker)"
    site = installed_package_copy(tmp_path)
    monkeypatch.setenv("CAPACITY_CACHE_DIR", str(tmp_path / "cache"))
    node_worker_script.cache_clear()
    script = node_worker_script(site)
    assert script.parent.parent == tmp_path / "cache" and script.name == "worker.js"
    assert "installing the reference BullMQ worker's packages (npm ci, once)" in capfd.readouterr().err
    assert not (site / "node_modules").exists()  # the installed package is left as it is
    loads = subprocess.run(
        [node, "-e", "require('bullmq'); console.log('ok')"], cwd=script.parent, capture_output=True, text=True
    )
    assert loads.stdout.strip() == "ok", loads.stderr
    node_worker_script.cache_clear()
    assert node_worker_script(site) == script  # found in the cache: no second install
    assert "installing" not in capfd.readouterr().err


def test_without_node_or_npm_it_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = installed_package_copy(tmp_path)
    monkeypatch.setenv("CAPACITY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    node_worker_script.cache_clear()
    with pytest.raises(RunFailed, match=r"needs Node.js 18\+ and npm \(node and npm not found\)"):
        node_worker_script(site)
    node_worker_script.cache_clear()
