"""The example of docs/jobs.rst runs and prints what the page says."""

import re
import subprocess

from tests.conftest import PYTHON, ROOT

PAGE = ROOT / "docs" / "jobs.rst"


def test_the_example_prints_the_documented_lines(tmp_path):
    text = PAGE.read_text()
    example = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text)
    code = "\n".join(line[4:] for line in example.group(1).splitlines())
    promised = re.search(r"DoJobber's lines::\n\n((?:    .*\n)+)", text).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    completed = subprocess.run(
        [PYTHON, str(script)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.splitlines() == [
        line.strip() for line in promised.splitlines()
    ]
    assert completed.stdout.startswith("True {'MakeDirectory': True")
