from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from capacity.errors import InputError, ProfileError
from capacity.profiles import DEFAULT_DIR, Profiles, load_profiles


def test_shipped_profiles_carry_the_seeds(shipped: Profiles) -> None:
    # seed 002: small/medium/large/xlarge with CPU, memory, cost, policy, max workers
    medium = shipped.instance("medium")
    assert (medium.cpu, medium.memory, medium.cost_per_hour_usd, medium.max_workers) == (2, 4 * 2**30, 0.10, 20)
    assert (medium.policy.global_concurrency, medium.policy.per_tenant_concurrency) == (5, 2)
    assert [i.name for i in shipped.instances.instances] == ["small", "medium", "large", "xlarge"]
    # seed 002 and seed 004 job types
    assert shipped.job_type("3D Render").memory == (10**9, 2 * 10**9)
    assert shipped.job_type("email").duration == (1.0, 3.0)
    # seed 000 per-photo resources
    assert shipped.photos.per_photo.memory == (100 * 10**6, 200 * 10**6)
    # seed 004 time limits; seed 001 threads
    assert shipped.topologies.user_scenarios.task_time_limit == 600
    assert shipped.topologies.replica_tiers.threads_per_replica == 4
    assert "queue_depth" in shipped.thresholds.metrics


def test_profile_objects_are_frozen(shipped: Profiles) -> None:
    with pytest.raises(Exception, match="frozen"):
        shipped.instance("small").cpu = 99  # type: ignore[misc]


def test_unknown_names_suggest_the_closest(shipped: Profiles) -> None:
    with pytest.raises(InputError, match="did you mean 'medium'"):
        shipped.instance("mediun")


def _user_dir(tmp_path: Path, filename: str, text: str) -> Path:
    (tmp_path / filename).write_text(text, encoding="utf-8")
    return tmp_path


def test_invalid_profile_names_file_field_and_expectation(tmp_path: Path) -> None:
    text = (DEFAULT_DIR / "instances.yaml").read_text().replace("memory: 4GiB", "memory: 4XB")
    directory = _user_dir(tmp_path, "instances.yaml", text)
    with pytest.raises(ProfileError) as info:
        load_profiles(directory)
    message = str(info.value)
    assert str(directory / "instances.yaml") in message
    assert "instances.1.memory" in message
    assert "'4XB' is not a size" in message


def test_missing_field_is_named(tmp_path: Path) -> None:
    text = (DEFAULT_DIR / "instances.yaml").read_text().replace("    max_workers: 10\n", "", 1)
    with pytest.raises(ProfileError, match=r"instances\.0\.max_workers: Field required"):
        load_profiles(_user_dir(tmp_path, "instances.yaml", text))


def test_a_long_wrong_value_is_summed_up_not_echoed(tmp_path: Path) -> None:
    # found by the fuzz soak: a simulate report given as a fleet file was echoed whole, its table
    # borders and all, into the "one line" error
    from capacity.sizing.fleetfile import load_fleet

    report = tmp_path / "report.txt"
    report.write_text("Simulation\n" + "┌" + "─" * 200 + "┐\n" + "│ Model │ c=4 │\n" * 20)
    with pytest.raises(ProfileError) as info:
        load_fleet(report)
    assert re.search(r"\(top level\): .* \(got [\d,]+ characters of text\)$", str(info.value))
    assert "│" not in str(info.value) and "\n" not in str(info.value)


def test_the_shipped_profiles_parse_alike_with_libyaml_and_without() -> None:
    # load_file parses with libyaml's parser (fast start-up): every shipped file must give what
    # PyYAML's pure-Python safe loader gives, value for value
    import yaml

    from capacity.profiles import _LOADER

    assert _LOADER is yaml.CSafeLoader  # the wheels are built with libyaml: the fast path is taken
    for path in sorted(DEFAULT_DIR.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=_LOADER) == yaml.safe_load(text), path.name


def test_bad_yaml_gives_the_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"instances.yaml:2: not valid YAML \(found character .\\t."):
        load_profiles(_user_dir(tmp_path, "instances.yaml", "instances:\n\t- name: x\n"))


def test_user_directory_replaces_a_file_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(DEFAULT_DIR / "instances.yaml", tmp_path / "instances.yaml")
    text = (tmp_path / "instances.yaml").read_text().replace("cost_per_hour_usd: 0.10", "cost_per_hour_usd: 0.12")
    (tmp_path / "instances.yaml").write_text(text)
    monkeypatch.setenv("CAPACITY_PROFILES", str(tmp_path))
    loaded = load_profiles()
    assert loaded.instance("medium").cost_per_hour_usd == 0.12
    assert loaded.sources["instances.yaml"] == tmp_path / "instances.yaml"
    assert loaded.sources["photos.yaml"] == DEFAULT_DIR / "photos.yaml"


def test_missing_user_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profiles(tmp_path / "nope")
