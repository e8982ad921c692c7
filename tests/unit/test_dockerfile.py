"""The repository's Dockerfile (the injector image, issue #27) is not built here (no container
engine): what can be checked without one is. Every COPY source exists, the extras it installs
are the package's, and the image ends with the command the Job's pods run."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dockerfile_copies_what_exists_and_installs_known_extras() -> None:
    text = (ROOT / "Dockerfile").read_text()
    sources = [word for line in text.splitlines() if line.startswith("COPY ") for word in line.split()[1:-1]]
    assert sources and all((ROOT / s).exists() for s in sources), sources
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installed = re.findall(r"'\.\[([a-z,]+)\]'", text)
    assert installed and set(installed[0].split(",")) <= extras
    assert 'ENTRYPOINT ["capacity"]' in text
