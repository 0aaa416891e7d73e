"""Running a soak of bench/soak briefly from a test (``make soak`` runs it long)."""

from __future__ import annotations

import json
import subprocess
import sys

from .peers import ROOT


def run_soak(name: str, *arguments: object, timeout: float = 600) -> tuple[dict, str]:
    """Run ``bench/soak/NAME.py`` with *arguments*; its figures (the last
    line, JSON) and its whole stdout.  A non-zero exit fails with its output."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak" / f"{name}.py")]
        + [str(argument) for argument in arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout
