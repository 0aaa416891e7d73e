"""checknrun(parallel=N): ready jobs in up to N threads, same statuses."""

import random
import threading

import pytest

from dispatch import jobs
from dispatch.jobs import DoJobber, DummyJob, Job

from . import graphs


def random_graph(seed, size=40):
    """A random DAG of flaky, passing and broken jobs, deterministic per seed.

    Each job counts its own runs, so its outcome does not depend on the
    order in which the engine attempts jobs.
    """
    chooser = random.Random(seed)
    runs = {}
    lock = threading.Lock()
    made = []
    for index in range(size):
        needed = chooser.choice([0, 0, 1, 2, 3, 99])
        tries = chooser.choice([None, 1, 2, 4])
        deps = chooser.sample(made, min(len(made), chooser.choice([0, 1, 2, 3])))

        def check(self, needed=needed):
            with lock:
                done = runs.get(type(self).__name__, 0)
            if done < needed:
                raise RuntimeError(f"{done} < {needed}")
            return done

        def run(self):
            with lock:
                name = type(self).__name__
                runs[name] = runs.get(name, 0) + 1

        attributes = {"DEPS": deps, "Check": check, "Run": run}
        if tries is not None:
            attributes["TRIES"] = tries
        made.append(type(f"Job{index}", (Job,), attributes))
    root = type("RandomRoot", (DummyJob,), {"DEPS": made[-8:]})
    return root, runs


def run_graph(root, parallel):
    dojob = DoJobber()
    dojob.configure(root, default_retry_delay=0)
    dojob.checknrun(parallel=parallel)
    return dojob


@pytest.mark.parametrize("seed", range(6))
def test_random_graphs_end_the_same_in_parallel(seed):
    root, runs = random_graph(seed)
    sequential = run_graph(root, None)
    sequential_runs = dict(runs)
    root, runs = random_graph(seed)
    threaded = run_graph(root, 4)
    assert threaded.nodestatus == sequential.nodestatus
    assert threaded.nodeattempts == sequential.nodeattempts
    assert runs == sequential_runs
    assert threaded.noderesults == sequential.noderesults


def test_the_movie_graph_ends_the_same_in_parallel():
    root, options = graphs.build(jobs, "movie")
    sequential = DoJobber()
    sequential.configure(root, **options)
    sequential.checknrun()
    sequential_counts = dict(graphs.LOG["counts"])
    root, options = graphs.build(jobs, "movie")
    threaded = DoJobber()
    threaded.configure(root, **options)
    threaded.checknrun(parallel=3)
    assert threaded.nodestatus == sequential.nodestatus
    assert graphs.LOG["counts"] == sequential_counts


def test_independent_jobs_really_run_at_the_same_time():
    # Each job waits until the other has started: only concurrency passes.
    barrier = threading.Barrier(2, timeout=30)

    class Meet(Job):
        TRIES = 1

        def Check(self):
            if self._check_phase == "check":
                raise RuntimeError("not met")

        def Run(self):
            barrier.wait()

    left = type("Left", (Meet,), {})
    right = type("Right", (Meet,), {})
    top = type("Both", (DummyJob,), {"DEPS": [left, right]})
    dojob = run_graph(top, 2)
    assert dojob.nodestatus == {"Left": True, "Right": True, "Both": True}


def test_verbose_lines_of_one_attempt_stay_together(capsys):
    root, options = graphs.build(jobs, "round_robin")
    dojob = DoJobber()
    dojob.configure(root, verbose=True, **options)
    dojob.checknrun(parallel=3)
    lines = capsys.readouterr().err.splitlines()
    # Every "X.check: fail" is followed by X's run and recheck lines.
    for index, line in enumerate(lines):
        if line.endswith(".check: fail"):
            name = line[: -len(".check: fail")]
            assert lines[index + 1].startswith(f"{name}.run: ")
            assert lines[index + 2].startswith(f"{name}.recheck: ")
    assert len(lines) == 3 * (2 + 3 + 2)  # attempts of First, Second, Third


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_parallel_values_are_refused(value):
    dojob = DoJobber()
    dojob.configure(DummyJob)
    with pytest.raises(ValueError, match="parallel"):
        dojob.checknrun(parallel=value)
    assert dojob.nodestatus == {}


def test_a_persisted_parallel_run_records_every_attempt(zeo_database):
    root, runs = random_graph(3)
    dojob = DoJobber(db=zeo_database, run_name="threads")
    dojob.configure(root, default_retry_delay=0)
    dojob.checknrun(parallel=4)
    connection = zeo_database.open()
    try:
        run = jobs.persist.load_run(connection, "threads")
        recorded = {
            name: len(run.nodes[name].attempts) if name in run.nodes else 0
            for name in dojob.nodestatus
        }
        assert recorded == {name: dojob.nodeattempts[name] for name in dojob.nodestatus}
        assert {
            name: run.nodes[name].status
            for name in dojob.nodestatus
            if name in run.nodes
        } == {
            name: status
            for name, status in dojob.nodestatus.items()
            if name in run.nodes
        }
    finally:
        connection.close()
