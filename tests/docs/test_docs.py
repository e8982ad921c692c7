"""Every command the docs show is run, as written (#22).

The rules, which docs/index.md states for readers too:

* a ```bash block is a script a reader can paste: this test runs it with ``bash -euo pipefail`` in
  a folder of its own per page (the page's blocks in order, in the same folder), with
  ``CAPACITY_BROKER_URL`` pointing at a real redis-server started for the page and
  ``CAPACITY_TIMINGS`` at the folder's ``timings/``; a page that says ``<!-- docs-test: worker
  QUEUES -->`` gets the reference Celery worker (the probe loaded) consuming those queues, as the
  page tells the reader to run one; ``PORT`` is a free port for pages that start their own broker;
* a ``$ capacity ...`` line in a ```text block is a transcript: the command is run in the same
  folder and must end with the ``(exit N)`` shown under it, or 0;
* a ```sh block needs the reader's own infrastructure (machines over ssh, a container engine, a
  cluster): it is listed in SH_BLOCKS below with why it cannot run here, and a block not listed
  fails this test (so does a listed one that no page shows any more).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from capacity.matrix.embedded import free_port
from tests.realbrokers import ROOT, RedisServer, wait_until_ready

DOCS = ROOT / "docs"
PAGES = sorted([*DOCS.rglob("*.md"), ROOT / "README.md"])

#: the first command of each ```sh block (its first line that is not a comment), and why it is
#: not run here
SH_BLOCKS = {
    "pip install 'worker-capacity[all]'     # the command is `capacity`": (
        "the package is not on the index this machine reaches; the same install from the built wheel into a "
        "fresh venv is tests/integration/test_wheel_e2e.py"
    ),
    "bash scripts/run.sh": (
        "the README's two commands set the machine up (pip, npm ci, apt) and cannot run beside the suite: "
        "CI runs command 2 itself, and command 1's job, `capacity bench`, runs in "
        "tests/integration/test_matrix_e2e.py"
    ),
    "START=$(date -u -d '+1 min' +%FT%TZ)": "four load-generator machines reachable over ssh, and an S3 bucket",
    "docker build -t registry.example.com/capacity:0.1.0 .": "a container engine and a registry (none here)",
    "capacity matrix run my.yaml --broker sqs:// --timings redis://10.0.0.5:6379/2 \\": (
        "a Kubernetes cluster the --worker-up/--worker-down templates scale (matrix run's templates are run by "
        "tests/integration/test_matrix_e2e.py with shell commands)"
    ),
}


def first_command(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int


def blocks(page: Path) -> list[Block]:
    found, language, start, body = [], None, 0, []
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("```"):
            if language is None:
                language, start, body = line[3:].strip() or "none", number, []
            else:
                found.append(Block(language, "\n".join(body) + "\n", start))
                language = None
        elif language is not None:
            body.append(line)
    return found


def transcripts(text: str) -> Iterator[tuple[str, int]]:
    """The ``$ ...`` commands of a text block (continued by a trailing backslash) and the exit
    code shown under each, ``(exit N)``, or 0."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        command = lines[i][2:]
        while command.endswith("\\") and i + 1 < len(lines):
            i += 1
            command = command[:-1] + " " + lines[i].strip()
        i += 1
        expected = 0
        while i < len(lines) and not lines[i].startswith("$ "):
            shown = re.fullmatch(r"\(exit (\d+)\)", lines[i].strip())
            if shown:
                expected = int(shown.group(1))
            i += 1
        yield command, expected


def _env(sandbox: Path, broker: str, port: int) -> dict[str, str]:
    ours = ("PYTHONPATH", "CELERY_BROKER_URL", "SQS_QUEUE_NAME", "AWS_REGION")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPACITY_") and k not in ours}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        CAPACITY_BROKER_URL=broker,
        CAPACITY_TIMINGS=str(sandbox / "timings"),
        PORT=str(port),
        COLUMNS="100",
        CAPACITY_DISTURBED_PERCENT="100",  # the suite's other tests beside a page are not its subject
    )
    return env


@contextmanager
def _worker(page_text: str, env: dict[str, str], sandbox: Path) -> Iterator[None]:
    asked = re.search(r"<!-- docs-test: worker (\S+) -->", page_text)
    if asked is None:
        yield
        return
    log = sandbox / "reference-worker.log"
    argv = [sys.executable, "-m", "celery", "-A", "capacity.worker", "worker", "--pool", "threads", "-c", "4"]
    argv += ["-Q", asked.group(1), "--include", "capacity.probe", "-l", "INFO", "--without-gossip"]
    argv += ["--without-mingle", "-n", f"docs-{os.getpid()}@%h"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env={**env, "PYTHONPATH": str(ROOT)}, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(log)
        yield
    finally:
        process.terminate()
        process.wait(30)


def page_script(runnable: list[Block], page: Path) -> str:
    """The page as one script, as a reader pastes it into one shell: its bash blocks in order,
    and each transcript's command run where it stands, its exit code checked against the page's."""
    parts = []
    for block in runnable:
        where = f"{page.relative_to(ROOT)}:{block.line}"
        if block.language == "bash":
            parts.append(f"# --- {where}\n{block.text}")
            continue
        for command, expected in transcripts(block.text):
            quoted = shlex.quote(command)
            parts.append(
                f"# --- {where}\nset +e\n( {command} ) > transcript.out 2>&1\nrc=$?\nset -e\n"
                f'if [ "$rc" -ne {expected} ]; then echo "{where}: "{quoted}" exited $rc, the page shows '
                f'{expected}" >&2; tail -20 transcript.out >&2; exit 99; fi\n'
            )
    return "\n".join(parts)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_the_page_shows_runs_as_written(page: Path, tmp_path: Path) -> None:
    found = blocks(page)
    runnable = [b for b in found if b.language == "bash" or (b.language == "text" and "\n$ " in "\n" + b.text)]
    for block in found:
        if block.language == "sh":
            first = first_command(block.text)
            assert first in SH_BLOCKS, f"{page.name}:{block.line}: a ```sh block not in SH_BLOCKS: {first!r}"
    if not runnable:
        return
    sandbox = tmp_path / "sandbox"
    (sandbox / "load_tests").mkdir(parents=True)
    for script in (ROOT / "load_tests").glob("*.py"):  # the seeds' command lines, as in a checkout
        (sandbox / "load_tests" / script.name).write_bytes(script.read_bytes())
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    env = _env(sandbox, server.url, free_port())
    script = tmp_path / "page.sh"
    script.write_text(page_script(runnable, page))
    output = tmp_path / "page.out"
    try:
        with _worker(page.read_text(), env, sandbox), output.open("wb") as out:
            # its own session: whatever the page leaves in the background is stopped with it
            process = subprocess.Popen(
                ["bash", "-euo", "pipefail", str(script)],
                env=env,
                cwd=sandbox,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                code = process.wait(timeout=420)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        shown = output.read_text(errors="replace")[-4000:]
        assert code is not None, f"{page.relative_to(ROOT)}: still running after 420 s\n{shown}"
        assert code == 0, f"{page.relative_to(ROOT)}: exit {code}\n{shown}"
    finally:
        server.stop()


def test_every_sh_block_listed_is_still_shown() -> None:
    shown = {first_command(b.text) for page in PAGES for b in blocks(page) if b.language == "sh"}
    assert set(SH_BLOCKS) <= shown, sorted(set(SH_BLOCKS) - shown)


def test_the_walkthroughs_exist_and_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for name in ("celery-in-5-minutes.md", "bullmq-in-5-minutes.md"):
        assert f"docs/walkthroughs/{name}" in readme
        assert any(b.language == "bash" for b in blocks(DOCS / "walkthroughs" / name))
