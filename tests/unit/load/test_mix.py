"""Task mixes: exact apportionment by weight (the largest-remainder method), a deterministic
interleaving every shard agrees on, and one-line errors for a bad mix file."""

from __future__ import annotations

from pathlib import Path

import pytest

from capacity.errors import InputError
from capacity.load.mix import apportion, class_sequence, classes_of, load_mix
from capacity.load.schedules import Burst, Shard


def test_apportion_is_exact_and_follows_hamilton() -> None:
    assert apportion([3, 1], 400) == [300, 100]
    # by hand: 10 tasks at 1:1:1 -> quotas 3.33 each, floors 3,3,3, one left: to the earliest tie
    assert apportion([1, 1, 1], 10) == [4, 3, 3]
    # quotas 7 x (0.5, 0.3, 0.2) = 3.5, 2.1, 1.4: floors 3, 2, 1, one left to the largest remainder (0.5)
    assert apportion([0.5, 0.3, 0.2], 7) == [4, 2, 1]
    assert sum(apportion([2.5, 0.1, 7], 1_000_003)) == 1_000_003


def test_the_sequence_is_shuffled_deterministically_and_shards_agree() -> None:
    first = class_sequence([300, 100], 5)
    assert first == class_sequence([300, 100], 5) and first != class_sequence([300, 100], 6)
    assert first.count(0) == 300 and first.count(1) == 100 and first[:100].count(1) > 10
    mix = load_mix_text("- {task: a, weight: 3}\n- {task: b, weight: 1}\n")
    whole = classes_of(mix, Burst(400), 5)
    # a shard's run computes the same sequence from the whole schedule
    assert classes_of(mix, Shard(Burst(400), 1, 4), 5) == whole == first


def load_mix_text(text: str, tmp: Path | None = None) -> tuple:  # type: ignore[type-arg]
    import tempfile

    folder = Path(tempfile.mkdtemp()) if tmp is None else tmp
    path = folder / "mix.yaml"
    path.write_text(text)
    return load_mix(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a list"),
        ("- {weight: 1}\n", "needs task"),
        ("- {task: a, weight: 0}\n", "weight must be a number above zero"),
        ("- {task: a, weight: .nan}\n", "weight must be a number above zero"),
        ("- {task: a, wieght: 2}\n", "unknown key 'wieght'"),
        ("- {task: a, args: {x: 1}}\n", "args is a JSON list"),
        ('- {task: a, args: ["$sequence"]}\n', "$seq"),
        ("- {task: a, payload_file: missing.jsonl}\n", "cannot read"),
    ],
)
def test_a_bad_mix_is_one_line(text: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=message.replace("$", r"\$")):
        load_mix_text(text, tmp_path)
