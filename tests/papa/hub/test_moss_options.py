"""jupyterhub-moss 10.1's option parsing, case by case, against ours.

The cases are those of moss's own tests (test/test_spawn.py: a spawn form
or spawn URL with a partition and CPUs, with an environment id, with a site
prologue) and of the validators those tests go through (moss's
``UserOptions`` model and its spawner's checks of the partition's limits),
restated here in our words: no code is taken.  Each is sent to the
spawner's own entry points, ``options_from_form`` (moss's POST) and
``options_from_query`` (moss's GET, a spawn URL), which both go through
:func:`papa.hub.options.user_options` and papa's
:meth:`~papa.slurm.partitions.SlurmSettings.check`.  Every case behaves as
in moss, or its ``differs`` says how ours behaves instead, and why.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from tornado.web import HTTPError

from papa.hub.spawner import MOSlurmSpawner
from tests.papa.hub.test_options import PARTITIONS, SINFO

SITE_PROLOGUE = "echo 'Using spawner prologue'"
DEFAULT_PATH = "/default/jupyter_env_path/bin/"


@dataclasses.dataclass(frozen=True)
class Case:
    """One request: *fields* as the browser sends them; either the options
    it gives (*gives*, a subset) or the field and message it is refused
    with (*refused*); *differs*: how and why ours differs from moss."""

    name: str
    fields: dict[str, str]
    gives: dict[str, Any] | None = None
    refused: tuple[str, str] | None = None
    differs: str = ""


CASES = [
    # test_spawn_simple: a partition and CPUs give the partition's first
    # environment, its path and no modules.
    Case(
        "partition and CPUs",
        {"partition": "partition_1", "nprocs": "4"},
        gives={
            "nprocs": 4,
            "environment_id": "default",
            "environment_path": DEFAULT_PATH,
            "environment_modules": "",
            "options": "",
        },
    ),
    # test_spawn_with_environment_id: the id's own path and modules win
    # over what the request says.
    Case(
        "environment id",
        {"partition": "partition_1", "environment_id": "modules"},
        gives={
            "environment_id": "modules",
            "environment_path": "",
            "environment_modules": "JupyterLab/3.6.0",
        },
    ),
    Case(
        "environment id over a given path",
        {
            "partition": "partition_1",
            "environment_id": "modules",
            "environment_path": "/ignored",
        },
        gives={"environment_path": "", "environment_modules": "JupyterLab/3.6.0"},
    ),
    # test_spawn_script_prologue: the site's prologue, then the
    # environment's, then its modules (add_to_path off: no PATH line).
    Case(
        "site and environment prologues",
        {"partition": "partition_1", "environment_id": "modules"},
        gives={
            "prologue": f"{SITE_PROLOGUE}\necho 'Using modules'\n"
            "module load JupyterLab/3.6.0"
        },
        differs="module names are shell-quoted (moss pastes them as given)",
    ),
    Case(
        "custom environment",
        {"partition": "partition_1", "environment_path": "/my/env/bin"},
        gives={
            "environment_id": "",
            "prologue": f'{SITE_PROLOGUE}\nexport PATH=/my/env/bin:"$PATH"',
        },
        differs='the PATH line quotes the path with the shell\'s rules (moss: "PATH")',
    ),
    # How the fields are read (UserOptions.parse_formdata).
    Case(
        "first value, stripped; unknown fields ignored",
        {"partition": " partition_1 ", "colour": "red"},
        gives={"partition": "partition_1"},
    ),
    Case("mem is memory", {"partition": "partition_1", "mem": "4G"}, {"memory": "4G"}),
    Case(
        "output=true keeps the output",
        {"partition": "partition_1", "output": "true"},
        gives={"output": "slurm-%j.out"},
    ),
    Case(
        "any other output throws it away",
        {"partition": "partition_1", "output": "yes"},
        gives={"output": "/dev/null"},
    ),
    Case(
        "gres and prologue never come from the user",
        {"partition": "partition_1", "gres": "gpu:x:9", "prologue": "rm -rf ~"},
        gives={
            "gres": "",
            "prologue": f'{SITE_PROLOGUE}\nexport PATH={DEFAULT_PATH}:"$PATH"',
        },
    ),
    Case(
        "a trailing newline is stripped",
        {"partition": "partition_1", "reservation": "r1\n"},
        gives={"reservation": "r1"},
    ),
    # What moss adds.
    Case(
        "every CPU of a node is exclusive",
        {"partition": "partition_1", "nprocs": "35", "options": "--qos=x"},
        gives={"options": "--exclusive --qos=x"},
    ),
    Case(
        "memory=0 is exclusive",
        {"partition": "partition_1", "memory": "0"},
        gives={"options": "--exclusive"},
    ),
    Case(
        "GPUs as the partition's gres",
        {"partition": "gpus", "ngpus": "2"},
        gives={"ngpus": 2, "gres": "gpu:A100:2"},
    ),
    # The validators' refusals (UserOptions).
    Case("no partition", {"nprocs": "1"}, refused=("partition", "Field required")),
    Case(
        "a newline inside a value",
        {"partition": "partition_1", "options": "--a\n#SBATCH --b"},
        refused=("options", "Must not contain newline"),
    ),
    Case(
        "a relative default_url",
        {"partition": "partition_1", "default_url": "lab"},
        refused=("default_url", "Must start with /"),
    ),
    Case(
        "memory with a unit of two letters",
        {"partition": "partition_1", "memory": "4GB"},
        refused=("memory", "Error in memory syntax"),
    ),
    Case(
        "no CPUs",
        {"partition": "partition_1", "nprocs": "0"},
        refused=("nprocs", "Input should be greater than 0"),
    ),
    Case(
        "fewer than no GPUs",
        {"partition": "partition_1", "ngpus": "-1"},
        refused=("ngpus", "Input should be greater than or equal to 0"),
    ),
    Case(
        "a runtime that is not a time",
        {"partition": "partition_1", "runtime": "1h"},
        refused=("runtime", "is not a Slurm time"),
        differs="refused too, with papa's message (moss: 'Failed to parse time limit')",
    ),
    # The spawner's checks against the partition (moss's own messages).
    Case(
        "an unknown partition",
        {"partition": "nosuch"},
        refused=("partition", "Partition nosuch is not available"),
    ),
    Case(
        "more CPUs than a node has",
        {"partition": "partition_1", "nprocs": "36"},
        refused=("nprocs", "Unsupported number of CPU cores"),
    ),
    Case(
        "more GPUs than a node has",
        {"partition": "gpus", "ngpus": "5"},
        refused=("ngpus", "Unsupported number of GPUs"),
    ),
    Case(
        "GPUs where there are none",
        {"partition": "partition_1", "ngpus": "1"},
        refused=("ngpus", "Unsupported number of GPUs"),
    ),
    Case(
        "a runtime over the limit",
        {"partition": "partition_1", "runtime": "1-00:00:01"},
        refused=("runtime", "Requested runtime exceeds partition time limit"),
    ),
    # Deliberate differences: papa's one parser checks more, or reads a
    # runtime as Slurm does.
    Case(
        "a lone number of minutes",
        {"partition": "partition_1", "runtime": "90"},
        gives={"runtime": "90"},
        differs="90 minutes, as sbatch --time reads it (moss: 90 hours, "
        "refused on this one-day partition)",
    ),
    Case(
        "a lone number of hours over the limit",
        {"partition": "partition_1", "runtime": "25:00:00"},
        refused=("runtime", "Requested runtime exceeds partition time limit"),
    ),
    Case(
        "more memory than a node has",
        {"partition": "partition_1", "memory": "500G"},
        refused=("memory", "exceeds the 196000M of memory of a node"),
        differs="refused here, by papa's check (moss passes it on to sbatch)",
    ),
    Case(
        "options that are not sbatch options",
        {"partition": "partition_1", "options": "hostname"},
        refused=("options", "must be sbatch options"),
        differs="refused here (moss writes them into the #SBATCH line)",
    ),
    Case(
        "a reservation that is not a name",
        {"partition": "partition_1", "reservation": "a;b"},
        refused=("reservation", "may only hold letters, digits"),
        differs="refused here (moss writes it into the #SBATCH line)",
    ),
]


@pytest.fixture
def spawner():
    result = MOSlurmSpawner(partitions=PARTITIONS, req_prologue=SITE_PROLOGUE)
    result.settings.query_sinfo = lambda: SINFO
    return result


@pytest.mark.parametrize("method", ["options_from_form", "options_from_query"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_moss_option_parsing(spawner, method, case):
    fields = {key: [value] for key, value in case.fields.items()}
    parse = getattr(spawner, method)
    if case.refused is None:
        assert case.gives is not None
        options = asyncio.run(parse(fields))
        assert {key: options[key] for key in case.gives} == case.gives
        # Completed options read again (as start() does) stay the same.
        again = asyncio.run(parse(dict(options)))
        assert again == options
        return
    field, message = case.refused
    with pytest.raises(HTTPError) as raised:
        asyncio.run(parse(fields))
    assert raised.value.status_code == 400
    assert message in (raised.value.log_message or "")
    # The form shown again has the values given and the message by field.
    assert spawner.form_state is not None
    values, errors = spawner.form_state
    assert set(errors) == {field} and message in errors[field]
    assert values == {k: v for k, v in case.fields.items() if k in values}
