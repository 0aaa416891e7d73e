"""``dispatch validate FILE...`` as a real process: exit codes and messages."""

import json
import subprocess

from tests.conftest import PYTHON

VALID = {"1": {"queue": "a"}, "start": [[1, {}]]}


def run_validate(*arguments):
    return subprocess.run(
        [PYTHON, "-m", "dispatch.cli", "validate", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_valid_invalid_unreadable_and_usage(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(VALID))
    cycle = tmp_path / "cycle.json"
    cycle.write_text(json.dumps({"1": {"output": 1}, "start": [[1, {}]]}))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    missing = tmp_path / "missing.json"

    completed = run_validate(good)
    assert completed.returncode == 0, completed.stderr
    assert f"{good}: valid" in completed.stdout

    completed = run_validate(good, cycle, broken, missing)
    assert completed.returncode == 1
    lines = completed.stderr.splitlines()
    assert f"{cycle}: Invalid recipe: Recipe contains cycle (['start', 1] -> 1)" in (
        lines
    )
    assert any(
        line.startswith(f"{broken}: Invalid recipe: not valid JSON") for line in lines
    )
    assert any(line.startswith(f"{missing}: cannot read") for line in lines)
    assert "3 of 4 recipe file(s) invalid" in completed.stderr

    assert run_validate().returncode == 2


def test_the_example_recipes_are_valid():
    from pathlib import Path

    examples = sorted(
        (Path(__file__).resolve().parents[2] / "examples" / "recipes").glob("*.json")
    )
    assert examples
    completed = run_validate(*examples)
    assert completed.returncode == 0, completed.stderr
