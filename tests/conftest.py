from __future__ import annotations

import pytest
from typer.testing import CliRunner

from capacity.profiles import Profiles, load_profiles


@pytest.fixture(scope="session")
def shipped() -> Profiles:
    return load_profiles(None)


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()
