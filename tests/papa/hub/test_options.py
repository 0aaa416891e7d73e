"""papa.hub without a hub: moss's ``partitions`` rules and the spawn form's
options, case by case as jupyterhub-moss 10.1's own tests expect them (read
from its sources; the cases are restated here, no code taken).

sinfo's answer is given as text in the format ``papa.slurm.tools.sinfo``
asks for, for moss's own test partition; the real cluster is in
test_jupyterhub.py.
"""

from __future__ import annotations

import pytest

from papa.hub.config import ConfigurationError, check_partitions, slurm_settings
from papa.hub.options import OptionsError, slurm_request, user_options
from papa.slurm.partitions import parse_sinfo

# moss's test partition: "partition_1 2/46/0/48 35+ 38/1642/0/1680 (null)
# 196000+ 1-00:00:00", and one with GPUs.
SINFO = """\
partition_1|2/46/0/48|35+|38/1642/0/1680|(null)|196000+|1-00:00:00
gpus|0/2/0/2|16|0/32/0/32|gpu:A100:4(S:0-1)|512000|4:00:00
"""
PARTITIONS = {
    "partition_1": {
        "architecture": "x86_86",
        "description": "Partition 1",
        "simple": True,
        "jupyter_environments": {
            "default": {
                "description": "Virtual environment",
                "path": "/default/jupyter_env_path/bin/",
                "add_to_path": True,
            },
            "modules": {
                "description": "Environment modules",
                "modules": "JupyterLab/3.6.0",
                "add_to_path": False,
                "prologue": "echo 'Using modules'",
            },
        },
    },
    "gpus": {
        "simple": False,
        "jupyter_environments": {"default": {"description": "env", "path": "/env"}},
    },
}


@pytest.fixture
def settings():
    result = slurm_settings(PARTITIONS)
    result.query_sinfo = lambda: SINFO
    return result


def request(settings, prologue="", **fields):
    options = user_options(fields)
    return options, slurm_request(options, settings, site_prologue=prologue)


# -- the partitions setting ---------------------------------------------------------
def test_the_form_table_merges_sinfo_and_the_configuration(settings):
    row = {row["name"]: row for row in settings.table()}["partition_1"]
    assert (row["nodes_idle"], row["nodes_total"]) == (46, 48)
    assert (row["cpus_idle"], row["cpus_total"]) == (1642, 1680)
    assert row["max_nprocs"] == 35 and row["memory_mb"] == 196000
    assert row["max_ngpus"] == 0 and row["max_runtime"] == "1-00:00:00"
    assert row["description"] == "Partition 1" and row["architecture"] == "x86_86"


def test_defaults_are_filled_in():
    checked = check_partitions(PARTITIONS)["partition_1"]
    assert checked["gpu"] is None and checked["max_nprocs"] is None
    modules = checked["jupyter_environments"]["modules"]
    assert modules["path"] == "" and modules["modules"] == "JupyterLab/3.6.0"
    assert checked["jupyter_environments"]["default"]["modules"] == ""


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"max_nprocs": 0}, "max_nprocs: Value must be strictly positive"),
        ({"max_runtime": -1}, "max_runtime: Value must be strictly positive"),
        ({"max_ngpus": -1}, "max_ngpus: Value must be positive"),
        ({"max_nprocs": "4"}, "max_nprocs must be int or None"),
        ({"simple": "yes"}, "simple must be bool"),
        ({"gpu": "gpu:A100"}, "--gres template holding {}"),
        (
            {"jupyter_environments": {"e": {"description": "x"}}},
            "Jupyter environment path or modules is required",
        ),
        (
            {"jupyter_environments": {"e": {"description": " ", "path": "/p"}}},
            "description is required",
        ),
        (
            {"jupyter_environments": {"e": {"description": "x", "path": 1}}},
            "path must be str",
        ),
    ],
)
def test_bad_partitions_are_refused_as_moss_refuses_them(change, message):
    partition = dict(PARTITIONS["partition_1"], **change)
    with pytest.raises(ConfigurationError, match=message.replace("{}", r"\{\}")):
        check_partitions({"partition_1": partition})


def test_environments_are_required():
    with pytest.raises(ConfigurationError, match="jupyter_environments is required"):
        check_partitions({"p": {"description": "no environments"}})


def test_an_empty_gpu_template_switches_gpus_off():
    partition = dict(PARTITIONS["gpus"], gpu="", max_ngpus=4)
    assert check_partitions({"gpus": partition})["gpus"]["max_ngpus"] == 0


@pytest.mark.parametrize(
    "gres, template, count",
    [
        ("gpu:model:2", "gpu:model:{}", 2),
        ("gpu:brand_model-pcie.10:2(S:0-1)", "gpu:brand_model-pcie.10:{}", 2),
        ("gpu:modelA:1,gpu:modelB:3", "gpu:modelA:{}", 1),
        ("gpu:modelA:6(S:0-1),gpu:1g.10gb:28(S:0-1)", "gpu:modelA:{}", 6),
        ("other:nameA:2,gpu:modelA:3,other:nameB:2", "gpu:modelA:{}", 3),
        ("(null)", "", 0),
        ("other:name:2", "", 0),
    ],
)
def test_gpus_are_read_from_sinfo_as_moss_reads_them(gres, template, count):
    info = parse_sinfo(f"p|0/1/0/1|4|0/4/0/4|{gres}|1000|1:00:00")["p"]
    assert (info.gpu, info.max_ngpus) == (template, count)


# -- the user's options ---------------------------------------------------------------
def test_a_simple_spawn_takes_the_first_environment(settings):
    options, sent = request(settings, partition="partition_1", nprocs="4")
    assert options["environment_id"] == "default"
    assert options["environment_path"] == "/default/jupyter_env_path/bin/"
    assert options["environment_modules"] == ""
    assert sent["nprocs"] == "4" and sent["partition"] == "partition_1"
    assert "export PATH=/default/jupyter_env_path/bin/" in sent["prologue"]


def test_an_environment_id_uses_its_configuration(settings):
    options, sent = request(
        settings,
        prologue="echo 'Using spawner prologue'",
        partition="partition_1",
        environment_id="modules",
        environment_path="/ignored",
    )
    assert options["environment_path"] == ""
    assert options["environment_modules"] == "JupyterLab/3.6.0"
    lines = sent["prologue"].splitlines()
    assert lines == [
        "echo 'Using spawner prologue'",
        "echo 'Using modules'",
        "module load JupyterLab/3.6.0",
    ]  # add_to_path is off: no PATH line


def test_a_custom_environment_is_always_on_the_path(settings):
    options, sent = request(
        settings, partition="partition_1", environment_path="/my/env/bin"
    )
    assert options["environment_id"] == ""
    assert sent["prologue"] == 'export PATH=/my/env/bin:"$PATH"'


def test_form_values_are_read_as_moss_reads_them():
    options = user_options(
        {
            "partition": [" partition_1 ", "ignored"],
            "mem": ["4G"],
            "output": ["true"],
            "gres": ["gpu:evil:9"],
            "prologue": ["rm -rf ~"],
            "colour": ["red"],
        }
    )
    assert options["partition"] == "partition_1"
    assert options["memory"] == "4G"
    assert options["output"] == "slurm-%j.out"
    assert options["gres"] == "" and options["prologue"] == ""
    assert "colour" not in options
    assert user_options({"partition": "p"})["output"] == "/dev/null"
    assert user_options({"partition": "p", "output": "yes"})["output"] == "/dev/null"
    assert user_options({"partition": "p"})["nprocs"] == 1


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({}, "partition", "Field required"),
        ({"runtime": "1:00\n#SBATCH -x"}, "runtime", "Must not contain newline"),
        ({"options": "--a\n--b"}, "options", "Must not contain newline"),
        ({"environment_path": "/a\rb"}, "environment_path", "newline"),
        ({"default_url": "lab"}, "default_url", "Must start with /"),
        ({"memory": "4GB"}, "memory", "Error in memory syntax"),
        ({"nprocs": "0"}, "nprocs", "greater than 0"),
        ({"nprocs": "two"}, "nprocs", "whole number"),
        ({"ngpus": "-1"}, "ngpus", "greater than or equal to 0"),
        ({"runtime": "1h"}, "runtime", "is not a Slurm time"),
    ],
)
def test_bad_options_name_their_field(fields, field, message):
    if field != "partition":
        fields = {"partition": "partition_1", **fields}
    with pytest.raises(OptionsError, match=message) as raised:
        user_options(fields)
    assert raised.value.field == field


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"partition": "nosuch"}, "partition", "Partition nosuch is not available"),
        ({"nprocs": "36"}, "nprocs", "Unsupported number of CPU cores"),
        ({"ngpus": "1"}, "ngpus", "Unsupported number of GPUs"),
        ({"runtime": "1-00:00:01"}, "runtime", "exceeds partition time limit"),
        ({"partition": "gpus", "ngpus": "5"}, "ngpus", "Unsupported number of GPUs"),
    ],
)
def test_limits_are_checked_with_moss_messages(settings, fields, field, message):
    with pytest.raises(OptionsError, match=message) as raised:
        request(settings, **{"partition": "partition_1", **fields})
    assert raised.value.field == field


def test_what_moss_adds(settings):
    _, whole_node = request(settings, partition="partition_1", nprocs="35")
    assert whole_node["options"] == "--exclusive"
    _, all_memory = request(settings, partition="partition_1", memory="0")
    assert all_memory["options"].startswith("--exclusive")
    _, some = request(settings, partition="partition_1", nprocs="2", options="--qos=x")
    assert some["options"] == "--qos=x"
    options, gpus = request(settings, partition="gpus", ngpus="2")
    assert options["gres"] == "gpu:A100:2" and gpus["ngpus"] == "2"


def test_a_runtime_is_read_as_slurm_reads_it(settings):
    # The one difference from moss, on purpose: "90" is 90 minutes (moss:
    # 90 hours, which it then refused on a one-day partition).
    _, sent = request(settings, partition="partition_1", runtime="90")
    assert sent["runtime"] == "90"
    with pytest.raises(OptionsError, match="exceeds partition time limit"):
        request(settings, partition="partition_1", runtime="25:00:00")
