"""papa.slurm.form without a kernel: fields as moss reads them (first value,
unknown ignored, newlines refused) and the simple tab's choices per
partition, from rows shaped as ``list partitions`` gives them."""

from multidict import MultiDict

from papa.slurm import form

ROWS = {
    "debug": {"max_nprocs": 16, "max_runtime": "02:00:00", "gpu": False},
    "gpu": {
        "max_nprocs": 64,
        "max_ngpus": 2,
        "gpu": True,
        "max_runtime": "INFINITE",
        "environments": "cuda,python",
    },
    "hidden": {"simple": False, "max_nprocs": 4, "max_runtime": "1:00:00"},
    "gone": {"missing": "not in sinfo"},
}


def test_first_value_wins_and_unknown_fields_are_ignored():
    fields = MultiDict(
        [("nprocs", "4"), ("nprocs", "8"), ("colour", "red"), ("command", " ls ")]
    )
    request = form.parse(fields)
    assert request.values == {"nprocs": "4", "command": "ls"}
    assert request.slurm == {"nprocs": "4"} and request.wants_submission
    assert not request.errors
    assert form.parse({"runtime": ["1:00:00", "2"]}).slurm == {"runtime": "1:00:00"}


def test_newlines_and_giant_values_are_refused_by_field():
    request = form.parse({"partition": "debug\n#SBATCH --x", "modules": "x" * 5000})
    assert request.errors["partition"] == "partition must not contain a newline"
    assert "longer than" in request.errors["modules"]
    both = form.parse({"recipe": "r", "command": "c"})
    assert "not both" in both.errors["command"]
    assert not form.parse({"nprocs": "2"}).wants_submission


def test_simple_choices_fit_each_partition():
    choices = form.simple_choices(ROWS)
    assert choices["partitions"] == ["debug", "gpu"]  # not hidden, not gone
    cpus = {choice.value: choice.partitions for choice in choices["cpus"]}
    # 1, 2, 4 and a quarter of the largest (16 -> 4, 64 -> 16).
    assert cpus == {
        "1": ("debug", "gpu"),
        "2": ("debug", "gpu"),
        "4": ("debug", "gpu"),
        "16": ("gpu",),
    }
    gpus = {choice.value: choice.partitions for choice in choices["gpus"]}
    assert gpus == {"0": ("gpu",), "1": ("gpu",), "2": ("gpu",)}
    hours = {choice.value: choice.partitions for choice in choices["runtimes"]}
    assert hours["2:00:00"] == ("debug", "gpu") and hours["3:00:00"] == ("gpu",)
    assert len(hours) == 12
    assert [c.value for c in choices["environments"]] == ["cuda", "python"]
