"""A short coverage-guided run of every atheris target (``make test``).

One libFuzzer process fuzzes all targets together (``all``: the first byte
of an input picks the target) for ``ATHERIS_RUNS`` inputs, seeded from
``tests/fuzz/corpus``; ``make fuzz-atheris`` runs each target alone for
10**6.  Without atheris (``pip install -e '.[fuzz]'``; it has wheels for
Linux) this skips, or fails when ``ZEOPAPA_REQUIRE_ATHERIS=1``.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

from tests.fuzz.atheris_seeds import CORPUS
from tests.support import ROOT

RUNS = int(os.environ.get("ATHERIS_RUNS", "4000"))


def _require_atheris():
    if importlib.util.find_spec("atheris") is None:
        reason = "atheris is not installed: pip install -e '.[fuzz]'"
        if os.environ.get("ZEOPAPA_REQUIRE_ATHERIS"):
            pytest.fail(f"ZEOPAPA_REQUIRE_ATHERIS is set but {reason}")
        pytest.skip(reason)


def _fuzz(target, runs, directory):
    """Run *target* for *runs* inputs; return libFuzzer's output."""
    environment = dict(os.environ)
    path = [str(ROOT / "src"), str(ROOT), environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, path))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "tests.fuzz.atheris_targets", target),
            f"-runs={runs}",
            f"-artifact_prefix={directory}/",
            "-print_final_stats=1",
            str(directory / "corpus"),
        ],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=600,
    )
    crashes = sorted(path.name for path in directory.glob("crash-*"))
    assert result.returncode == 0 and not crashes, (
        f"{target} failed ({result.returncode}, {crashes}):\n{result.stderr[-6000:]}"
    )
    return result.stderr


def test_every_seed_is_in_the_corpus():
    # Each target has seeds to start from (remade by atheris_seeds).
    _require_atheris()
    from tests.fuzz.atheris_targets import NAMES

    assert NAMES == sorted(path.name for path in CORPUS.iterdir())


def test_every_atheris_target_holds_for_a_short_run(tmp_path):
    _require_atheris()
    (tmp_path / "corpus").mkdir()
    output = _fuzz("all", RUNS, tmp_path)
    assert f"Done {RUNS} runs" in output
    # The seeds of every target were read and kept (none failed).
    assert "stat::number_of_executed_units:" in output
