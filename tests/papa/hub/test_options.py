"""papa.hub without a hub: moss's ``partitions`` rules and sinfo's reading,
case by case as jupyterhub-moss 10.1's own tests expect them (read from its
sources; the cases are restated here, no code taken).

sinfo's answer is given as text in the format ``papa.slurm.tools.sinfo``
asks for, for moss's own test partition; the real cluster is in
test_jupyterhub.py.
"""

from __future__ import annotations

import pytest

from papa.hub.config import ConfigurationError, check_partitions, slurm_settings
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


# The spawn form's options: test_moss_options.py, case by case.
