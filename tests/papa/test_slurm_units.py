"""papa.slurm without a cluster: time formats, limits, sinfo text, the script,
the poller's interval.

The sinfo text below is in the exact format ``papa.slurm.tools.sinfo``
asks for (``-o '%P|%F|%c|%C|%G|%m|%l'``), as the test cluster prints it.
"""

from __future__ import annotations

import subprocess

import pytest

from papa.errors import Error, RequestError, error_from_reply
from papa.process import ProcessSpec
from papa.slurm import Environment, Partition, SlurmSettings, format_time, parse_time
from papa.slurm.partitions import parse_sinfo
from papa.slurm.poller import FAST_SECONDS, SLOW_SECONDS, JobPoller
from papa.slurm.script import render

SINFO = """\
debug*|0/1/0/1|2|0/2/0/2|(null)|24105|2:00:00
long|0/1/0/1|2|0/2/0/2|(null)|24105|infinite
gpu|1/2/0/3|64|16/176/0/192|gpu:A100:4(S:0-1)|512000|30:00
gpu|0/1/0/1|128|0/128/0/128|gpu:A100:8|1024000+|30:00
"""


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30", 30 * 60),  # a lone number is minutes (moss: hours)
        ("30:00", 30 * 60),  # MM:SS (moss: 30 hours)
        ("1:30", 90),
        ("2:00:00", 7200),
        ("1-0", 86400),
        ("1-2", 86400 + 7200),
        ("1-2:30", 86400 + 7200 + 1800),
        ("2-00:00:01", 2 * 86400 + 1),
        ("INFINITE", None),
        ("unlimited", None),
    ],
)
def test_slurm_time_formats(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "1h", "1:2:3:4", "-5", "0", "1-", "a-1"])
def test_bad_times_name_the_formats(text):
    with pytest.raises(Error, match="MM, MM:SS, HH:MM:SS|longer than zero"):
        parse_time(text)


def test_format_time():
    assert format_time(90) == "00:01:30"
    assert format_time(86400 + 3661) == "1-01:01:01"
    assert format_time(None) == "INFINITE"


def test_sinfo_groups_are_summed_and_maximised():
    live = parse_sinfo(SINFO)
    assert live["debug"].default and not live["long"].default
    assert live["debug"].max_runtime == 7200
    assert live["long"].max_runtime is None
    gpu = live["gpu"]
    assert gpu.nodes == (1, 3, 0, 4)
    assert gpu.cpus == (16, 304, 0, 320)
    assert gpu.max_nprocs == 128 and gpu.memory_mb == 1024000
    assert gpu.gpu == "gpu:A100:{}" and gpu.max_ngpus == 4  # first entry wins
    assert gpu.max_runtime == 1800  # "30:00" is 30 minutes


def settings(*partitions, environments=()) -> SlurmSettings:
    result = SlurmSettings(partitions, environments)
    result.query_sinfo = lambda: SINFO
    return result


def test_limits_from_sinfo_name_the_limit():
    unconfigured = settings()
    request = unconfigured.check({"partition": "debug", "nprocs": "2", "runtime": "90"})
    assert request.directives == ["--partition=debug", "--cpus-per-task=2", "--time=90"]
    with pytest.raises(Error, match="nprocs 3 exceeds max-nprocs 2 of partition debug"):
        unconfigured.check({"partition": "debug", "nprocs": "3"})
    with pytest.raises(Error, match="runtime 2:00:01 exceeds max-runtime 02:00:00"):
        unconfigured.check({"partition": "debug", "runtime": "2:00:01"})
    with pytest.raises(Error, match="runtime 31 exceeds max-runtime 00:30:00"):
        unconfigured.check({"partition": "gpu", "runtime": "31"})
    with pytest.raises(Error, match="memory 30G exceeds the 24105M"):
        unconfigured.check({"partition": "debug", "memory": "30G"})
    with pytest.raises(Error, match="has no GPUs"):
        unconfigured.check({"partition": "debug", "ngpus": "1"})
    with pytest.raises(Error, match="ngpus 5 exceeds max-ngpus 4"):
        unconfigured.check({"partition": "gpu", "ngpus": "5"})
    assert (
        "--gres=gpu:A100:2"
        in unconfigured.check({"partition": "gpu", "ngpus": "2"}).directives
    )
    with pytest.raises(Error, match="not known to Slurm; known: debug, long, gpu"):
        unconfigured.check({"partition": "nosuch", "nprocs": "1"})
    # No partition: the default one's limits apply.
    with pytest.raises(Error, match="of partition debug"):
        unconfigured.check({"nprocs": "4"})


def test_configured_limits_win_over_sinfo():
    configured = settings(
        Partition("long", description="Long jobs", max_nprocs=1, max_runtime=600),
        Partition("debug", simple=False),
    )
    with pytest.raises(Error, match="nprocs 2 exceeds max-nprocs 1 of partition long"):
        configured.check({"nprocs": "2"})  # the first simple partition is the default
    with pytest.raises(Error, match="runtime 11 exceeds max-runtime 00:10:00"):
        configured.check({"partition": "long", "runtime": "11"})
    with pytest.raises(
        Error, match="'gpu' is not configured; configured partitions: long, debug"
    ):
        configured.check({"partition": "gpu"})
    table = {row["name"]: row for row in configured.table()}
    assert table["long"]["description"] == "Long jobs"
    assert table["long"]["max_nprocs"] == 1 and table["debug"]["max_nprocs"] == 2


def test_configured_partition_missing_from_sinfo_is_reported():
    table = settings(Partition("gone")).table()
    assert table == [{"name": "gone", "description": "", "missing": "not in sinfo"}]


@pytest.mark.parametrize(
    "request_, message",
    [
        ({"partition": "debug\n#SBATCH --x"}, "must not contain a newline"),
        ({"options": "--hold\n#SBATCH --x"}, "must not contain a newline"),
        ({"colour": "red"}, 'Unknown slurm request "colour"'),
        ({"nprocs": "two"}, "nprocs must be a whole number"),
        ({"nprocs": "0"}, "nprocs must be at least 1"),
        ({"memory": "lots"}, "memory 'lots' is not like 500M"),
        ({"account": "a b"}, "may only hold letters"),
        ({"array": "0-3; rm"}, "is not a Slurm array"),
        ({"dependency": "after ok"}, "is not like afterok:123"),
        ({"options": "--hold 'unclosed"}, "cannot be split"),
        ({"options": "hold"}, "must be sbatch options"),
        ({"environment": "nosuch"}, "environment 'nosuch' is not configured"),
        ({"runtime": "1h"}, "is not a Slurm time"),
    ],
)
def test_bad_requests_are_refused(request_, message):
    with pytest.raises(Error, match=message):
        settings().check({"partition": "debug", **request_})


def test_a_prologue_may_span_lines():
    # It is shell code in the script's body, not an #SBATCH line (a site's
    # prologue, as jupyterhub-moss's req_prologue, often is several lines).
    checked = settings().check({"partition": "debug", "prologue": "umask 027\nset -x"})
    assert checked.prologue == ["umask 027\nset -x"]


def test_environments_build_the_prologue():
    site = Environment(
        "site", path="/opt/tools/bin", modules="gcc python", prologue="umask 027"
    )
    special = Environment("special", path="/opt/special", add_to_path=False)
    configured = settings(
        Partition("debug", environments={"special": special}), environments=[site]
    )
    assert configured.check({}).prologue == []  # the partition's first: no PATH
    assert configured.check({"environment": "site"}).prologue == [
        "umask 027",
        "module load gcc python",
        'export PATH=/opt/tools/bin:"$PATH"',
    ]
    custom = configured.check({"path": "/x y", "prologue": "echo start"}).prologue
    assert custom == ["echo start", "export PATH='/x y':\"$PATH\""]


def test_script_quotes_the_command_and_writes_its_status(tmp_path):
    text = render(
        "job",
        str(tmp_path),
        ["/bin/echo", "it's", "$HOME"],
        False,
        {"GREETING": "hello world"},
        ["--partition=debug", "--time=5"],
        ["--hold"],
        ["umask 027"],
    )
    assert "#SBATCH --partition=debug\n#SBATCH --time=5\n" in text
    assert "export GREETING='hello world'" in text
    assert "/bin/echo 'it'\"'\"'s' '$HOME'" in text
    # Run a script here with bash: it must write its own exit status.
    script = tmp_path / "job.sh"
    script.write_text(
        render("job", str(tmp_path), ["sh", "-c", "exit 7"], False, {}, [], [], [])
    )
    completed = subprocess.run(["bash", str(script)], capture_output=True)
    assert completed.returncode == 7
    assert (tmp_path / "exit-status").read_text() == "7\n"


def test_process_spec_reads_slurm_options():
    spec, _ = ProcessSpec.from_words(
        ["job", "slurm.partition=long", "slurm.options=--hold --x", "/bin/true"]
    )
    assert spec.slurm == {"partition": "long", "options": "--hold --x"}
    plain, _ = ProcessSpec.from_words(["job", "slurm=1", "/bin/true"])
    assert plain.slurm == {}
    local, _ = ProcessSpec.from_words(["job", "/bin/true"])
    assert local.slurm is None


class _Job:
    def __init__(self, state, age, reason=""):
        self.job_id = id(self)
        self.state = state
        self.state_since = 1000.0 - age
        self.reason = reason


@pytest.mark.parametrize(
    "jobs, seconds",
    [
        ([], FAST_SECONDS),
        ([("PENDING", 600)], FAST_SECONDS),
        ([("RUNNING", 1)], FAST_SECONDS),
        ([("RUNNING", 600), ("PENDING", 600)], FAST_SECONDS),
        ([("RUNNING", 600, "state unknown: down")], FAST_SECONDS),
        ([("RUNNING", 10)], 1.0),
        ([("RUNNING", 600), ("RUNNING", 12)], 1.2),
        ([("RUNNING", 600)], SLOW_SECONDS),
    ],
)
def test_poll_interval_is_fast_while_jobs_move_and_slow_when_they_run(jobs, seconds):
    poller = JobPoller()
    try:
        for job in (_Job(*row) for row in jobs):
            poller.jobs[job.job_id] = job
        assert poller.interval(now=1000.0) == pytest.approx(seconds)
    finally:
        poller.close()


@pytest.mark.parametrize(
    "request_, field",
    [
        ({"nprocs": "3"}, "nprocs"),
        ({"nprocs": "two"}, "nprocs"),
        ({"runtime": "1h"}, "runtime"),
        ({"runtime": "2:00:01"}, "runtime"),
        ({"memory": "30G"}, "memory"),
        ({"ngpus": "1"}, "ngpus"),
        ({"reservation": "a b"}, "reservation"),
        ({"options": "hold"}, "options"),
        ({"environment": "nosuch"}, "environment"),
        ({"output": "a\nb"}, "output"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_refused_request_names_its_field(request_, field):
    with pytest.raises(RequestError) as refused:
        settings().check({"partition": "debug", **request_})
    assert refused.value.field == field
    # On the wire the field leads the text; the client reads it back.
    read_back = error_from_reply(str(refused.value))
    assert isinstance(read_back, RequestError)
    assert (read_back.field, read_back.message) == (field, refused.value.message)
    assert not str(refused.value.message).startswith("slurm.")


def test_an_unknown_partition_is_the_partition_field():
    with pytest.raises(RequestError) as refused:
        settings().check({"partition": "nosuch"})
    assert refused.value.field == "partition"
    assert type(error_from_reply("cannot read sinfo")) is Error


def test_the_table_tells_a_form_which_partitions_are_simple():
    configured = settings(
        Partition("gpu", environments={"cuda": Environment("cuda", modules="cuda/12")}),
        Partition("debug", simple=False),
        environments=[Environment("python")],
    )
    table = {row["name"]: row for row in configured.table()}
    assert table["gpu"]["simple"] and not table["debug"]["simple"]
    assert table["gpu"]["gpu"] and not table["debug"]["gpu"]
    assert table["gpu"]["environments"] == "cuda,python"
    assert table["debug"]["environments"] == "python"
