"""The semantics table of DoJobber, case by case, on our engine in memory."""

import logging
import os
import time

import pytest

from dispatch import jobs
from dispatch.jobs import DoJobber, DummyJob, Job, JobConfigurationError, RunonlyJob

from . import graphs


def configured(root, **options):
    options.setdefault("default_retry_delay", 0)
    dojob = DoJobber()
    dojob.configure(root, **options)
    return dojob


def recorder():
    """A list and a Job base class whose attempts append to it."""
    events = []

    class Recorded(Job):
        FAILURES = 0  # how many rechecks fail before it passes
        CHECK_PASSES = False

        def Check(self, *args, **kwargs):
            name = type(self).__name__
            events.append(f"{name}.{self._check_phase}")
            runs = sum(1 for event in events if event == f"{name}.run")
            if self.CHECK_PASSES or (
                self._check_phase == "recheck" and runs > self.FAILURES
            ):
                return name.lower()
            raise RuntimeError(f"{name} not there ({runs} runs)")

        def Run(self, *args, **kwargs):
            events.append(f"{type(self).__name__}.run")

    return events, Recorded


def test_dependencies_are_attempted_first_in_deps_order():
    events, base = recorder()
    left = type("Left", (base,), {})
    right = type("Right", (base,), {})
    middle = type("Middle", (base,), {"DEPS": [right, left]})
    top = type("Top", (base,), {"DEPS": [middle, left]})
    dojob = configured(top)
    dojob.checknrun()
    assert dojob.success()
    firsts = [event.split(".")[0] for event in events if event.endswith(".check")]
    assert firsts == ["Right", "Left", "Middle", "Top"]


def test_retries_round_robin_across_phases():
    events, base = recorder()
    first = type("First", (base,), {"FAILURES": 1})
    second = type("Second", (base,), {"FAILURES": 2})
    top = type("Top", (DummyJob,), {"DEPS": [first, second]})
    dojob = configured(top)
    dojob.checknrun()
    assert dojob.success()
    runs = [event.split(".")[0] for event in events if event.endswith(".run")]
    # Phase 0: First, Second; phase 1: First (passes), Second; phase 2: Second.
    assert runs == ["First", "Second", "First", "Second", "Second"]


def test_a_dependency_that_succeeds_unblocks_dependents_in_the_same_phase():
    events, base = recorder()
    bottom = type("Bottom", (base,), {"FAILURES": 1})
    top = type("Above", (base,), {"DEPS": [bottom]})
    dojob = configured(top)
    dojob.checknrun()
    assert dojob.success()
    assert events.index("Above.check") > events.index("Bottom.recheck")
    assert events.count("Above.check") == 1


def test_tries_counts_attempts_not_retries():
    events, base = recorder()
    once = type("Once", (base,), {"FAILURES": 5, "TRIES": 1})
    twice = type("Twice", (base,), {"FAILURES": 5, "TRIES": 2})
    top = type("Top", (DummyJob,), {"DEPS": [once, twice]})
    dojob = configured(top)
    dojob.checknrun()
    assert events.count("Once.run") == 1
    assert events.count("Twice.run") == 2
    assert dojob.nodestatus == {"Once": False, "Twice": False, "Top": None}
    assert dojob.nodeattempts["Twice"] == 2


def test_default_tries_is_three():
    events, base = recorder()
    never = type("Never", (base,), {"FAILURES": 99})
    configured(never).checknrun()
    assert events.count("Never.run") == 3


@pytest.mark.parametrize(
    "tries, words",
    [(0, "must be >= 1"), (-2, "must be >= 1"), (1.1, "integer"), (True, "integer")],
)
def test_bad_tries_is_a_clear_configuration_error(tries, words):
    bad = type("BadTries", (DummyJob,), {"TRIES": tries})
    dojob = DoJobber()
    with pytest.raises(JobConfigurationError, match=words) as caught:
        dojob.configure(bad)
    assert "BadTries" in str(caught.value)
    assert isinstance(caught.value, RuntimeError)  # what DoJobber raised


@pytest.mark.parametrize("delay", [-1, float("inf"), "1"])
def test_bad_retry_delay_is_a_clear_configuration_error(delay):
    bad = type("BadDelay", (DummyJob,), {"RETRY_DELAY": delay})
    with pytest.raises(JobConfigurationError, match="RETRY_DELAY"):
        DoJobber().configure(bad)


def test_bad_defaults_are_refused():
    with pytest.raises(JobConfigurationError, match="default_tries"):
        DoJobber().configure(DummyJob, default_tries=0)
    with pytest.raises(JobConfigurationError, match="default_retry_delay"):
        DoJobber().configure(DummyJob, default_retry_delay=-0.5)


def test_a_cycle_is_an_error_naming_it():
    first = type("CycleA", (DummyJob,), {})
    second = type("CycleB", (DummyJob,), {"DEPS": [first]})
    first.DEPS = [second]
    top = type("CycleTop", (DummyJob,), {"DEPS": [first]})
    with pytest.raises(JobConfigurationError, match="cycles") as caught:
        DoJobber().configure(top)
    message = str(caught.value)
    assert "CycleA -> CycleB -> CycleA" in message


def test_two_classes_with_one_name_are_an_error():
    passing = type("Twin", (DummyJob,), {})
    failing = type("Twin", (Job,), {"Check": lambda self: 1 / 0})
    top = type(
        "Parent",
        (DummyJob,),
        {"DEPS": [passing, type("Mid", (DummyJob,), {"DEPS": [failing]})]},
    )
    with pytest.raises(JobConfigurationError, match="two different job classes"):
        DoJobber().configure(top)


def test_same_dependency_twice_is_an_error():
    dep = type("Dep", (DummyJob,), {})
    top = type("Top", (DummyJob,), {"DEPS": [dep, dep]})
    with pytest.raises(JobConfigurationError, match="twice"):
        DoJobber().configure(top)


def test_deps_must_be_a_list_of_classes():
    dep = type("Dep", (DummyJob,), {})
    with pytest.raises(JobConfigurationError, match="not a list"):
        DoJobber().configure(type("Top", (DummyJob,), {"DEPS": dep}))
    with pytest.raises(JobConfigurationError, match="not iterable"):
        DoJobber().configure(type("Top", (DummyJob,), {"DEPS": 5}))
    with pytest.raises(JobConfigurationError, match="neither"):
        DoJobber().configure(type("Top", (DummyJob,), {"DEPS": [5]}))


def test_string_deps_resolve_to_a_class_in_the_graph_or_fail_clearly():
    dep = type("Named", (DummyJob,), {})
    other = type("Other", (DummyJob,), {"DEPS": [dep]})
    top = type("Top", (DummyJob,), {"DEPS": [other, "Named"]})
    dojob = configured(top)
    dojob.checknrun()
    assert dojob.nodestatus == {"Named": True, "Other": True, "Top": True}
    lost = type("Lost", (DummyJob,), {"DEPS": ["Nowhere"]})
    with pytest.raises(JobConfigurationError, match="Nowhere"):
        DoJobber().configure(lost)


def test_configure_twice_and_checknrun_before_configure_are_errors():
    dojob = DoJobber()
    with pytest.raises(JobConfigurationError, match="configure"):
        dojob.checknrun()
    dojob.configure(DummyJob)
    with pytest.raises(JobConfigurationError, match="already"):
        dojob.configure(DummyJob)


def test_retry_delay_is_measured_from_the_previous_start():
    starts = []

    class Slow(Job):
        RETRY_DELAY = 0.3
        TRIES = 3

        def Check(self):
            if self._check_phase == "check":
                starts.append(time.monotonic())
            raise RuntimeError("not yet")

        def Run(self):
            time.sleep(0.1)  # part of the attempt: the delay counts from its start

    began = time.monotonic()
    configured(Slow, default_retry_delay=5).checknrun()
    elapsed = time.monotonic() - began
    assert len(starts) == 3
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    # The job records its start a few microseconds after the engine does;
    # 5 ms of slack covers that skew, not the delay itself.
    assert all(gap >= 0.3 - 0.005 for gap in gaps), gaps
    assert all(gap < 3 for gap in gaps), gaps
    assert elapsed >= 0.6
    # Generous upper bound: the delay is 0.3 s from the start, not 0.3 s
    # after the 0.1 s attempt plus the default 5 s.
    assert elapsed < 4.5


def test_first_attempts_never_wait_for_retry_delay():
    class Patient(DummyJob):
        RETRY_DELAY = 30

    began = time.monotonic()
    configured(Patient).checknrun()
    assert time.monotonic() - began < 10


def test_retry_delay_overlaps_other_branches_work():
    starts = {}

    def make(name, sleep):
        def check(self):
            if self._check_phase == "check":
                starts.setdefault(name, []).append(time.monotonic())
            raise RuntimeError(name)

        def run(self):
            time.sleep(sleep)

        return type(name, (Job,), {"Check": check, "Run": run, "TRIES": 2})

    delayed = make("Delayed", 0)
    delayed.RETRY_DELAY = 0.4
    busy = make("Busy", 0.25)
    top = type("Top", (DummyJob,), {"DEPS": [delayed, busy]})
    configured(top).checknrun()
    gap = starts["Delayed"][1] - starts["Delayed"][0]
    assert gap >= 0.4 - 0.005
    assert gap < 5
    # Busy's first attempt ran while Delayed waited for its next phase.
    assert starts["Delayed"][0] < starts["Busy"][0] < starts["Delayed"][1]


def test_storage_is_per_attempt_and_global_storage_per_run():
    seen = []

    class Writer(Job):
        TRIES = 2

        def Check(self):
            seen.append(("check", dict(self.storage), self._check_phase))
            self.storage["phase"] = self._check_phase
            self.global_storage.setdefault("writes", 0)
            self.global_storage["writes"] += 1
            if self._check_phase == "recheck" and self.global_storage["writes"] > 3:
                return "done"
            raise RuntimeError("again")

        def Run(self):
            assert self.storage["phase"] == "check"

    class Reader(Job):
        DEPS = [Writer]

        def Check(self):
            return self.global_storage["writes"]

    dojob = configured(Reader)
    dojob.checknrun()
    assert dojob.nodestatus == {"Writer": True, "Reader": True}
    # Each attempt's first Check starts with an empty storage.
    assert [entry[1] for entry in seen if entry[2] == "check"] == [{}, {}]
    assert dojob.noderesults["Reader"] == 4


def test_global_storage_stays_with_the_jobs_that_filled_it():
    class Counter(DummyJob):
        def Check(self):
            self.global_storage["hits"] = self.global_storage.get("hits", 0) + 1
            return self.global_storage["hits"]

    dojob = configured(Counter)
    dojob.checknrun()
    dojob.checknrun()
    assert dojob.noderesults == {"Counter": 1}


def test_runonly_job_runs_every_attempt_and_fails_under_no_act():
    calls = []

    class Once(RunonlyJob):
        def Run(self, *args):
            calls.append(args)
            return "ran"

    dojob = configured(Once)
    dojob.set_args("x")
    dojob.checknrun()
    assert dojob.nodestatus == {"Once": True}
    assert dojob.noderesults == {"Once": "ran"}
    assert calls == [("x",)]

    dry = configured(Once, no_act=True)
    dry.checknrun()
    assert dry.nodestatus == {"Once": False}
    assert "intentionally fails" in str(dry.nodeexceptions["Once"])
    assert calls == [("x",)]


def test_runonly_failure_is_the_run_exception():
    class Failing(RunonlyJob):
        TRIES = 1

        def Run(self):
            raise KeyError("missing")

    dojob = configured(Failing)
    dojob.checknrun()
    assert isinstance(dojob.nodeexceptions["Failing"], KeyError)


def test_no_act_runs_only_first_checks_and_blocks_dependents(capsys):
    events, base = recorder()
    good = type("Good", (base,), {"CHECK_PASSES": True})
    bad = type("Bad", (base,), {})
    top = type("Top", (base,), {"DEPS": [good, bad]})
    dojob = configured(top, no_act=True, verbose=True)
    dojob.checknrun()
    assert dojob.nodestatus == {"Good": True, "Bad": False, "Top": None}
    assert events == ["Good.check", "Bad.check"]
    assert capsys.readouterr().err.splitlines() == [
        "Good.check: pass",
        "Bad.check: fail",
    ]
    assert dojob.nodereasons["Top"] == {"reason": "blocked", "blocked_by": ["Bad"]}


def test_blocked_jobs_are_none_and_never_false():
    events, base = recorder()
    broken = type("Broken", (base,), {"FAILURES": 99})
    middle = type("Middle", (base,), {"DEPS": [broken]})
    top = type("Top", (base,), {"DEPS": [middle]})
    dojob = configured(top)
    dojob.checknrun()
    assert dojob.nodestatus == {"Broken": False, "Middle": None, "Top": None}
    assert dojob.nodereasons["Top"]["blocked_by"] == ["Broken"]
    assert not dojob.success()
    assert not dojob.partial_success()
    assert dojob.failure()


def test_success_before_any_run_is_false_not_an_empty_dict():
    dojob = configured(DummyJob)
    assert dojob.success() is False
    assert dojob.partial_success() is False
    assert dojob.failure() is True


def test_exceptions_are_kept_only_for_failed_jobs():
    events, base = recorder()
    flaky = type("Flaky", (base,), {"FAILURES": 1})
    dojob = configured(flaky)
    dojob.checknrun()
    assert dojob.nodestatus == {"Flaky": True}
    assert dojob.nodeexceptions == {}
    assert dojob.noderesults == {"Flaky": "flaky"}


def test_a_second_checknrun_gives_exhausted_jobs_no_tries():
    events, base = recorder()
    never = type("Never", (base,), {"FAILURES": 99, "TRIES": 2})
    dojob = configured(never)
    dojob.checknrun()
    assert dojob.nodestatus == {"Never": False}
    dojob.checknrun()
    assert dojob.nodestatus == {"Never": None}
    assert dojob.nodereasons["Never"] == {"reason": "out_of_tries"}
    assert events.count("Never.run") == 2


def test_a_second_checknrun_keeps_successes_and_failures_readable():
    events, base = recorder()
    always = type("Always", (base,), {"CHECK_PASSES": True})
    never = type("Never", (base,), {"FAILURES": 99, "TRIES": 2})
    top = type("Top", (base,), {"DEPS": [always, never], "CHECK_PASSES": True})
    dojob = configured(top)
    dojob.checknrun()
    assert dojob.nodestatus == {"Always": True, "Never": False, "Top": None}
    before = list(events)
    dojob.checknrun()
    assert events == before  # nothing checked or run again
    assert dojob.nodestatus == {"Always": True, "Never": None, "Top": None}
    assert dojob.noderesults == {"Always": "always"}
    # Out of tries, as in DoJobber, and its last error is still readable.
    assert dojob.nodereasons["Never"] == {"reason": "out_of_tries"}
    assert "Never not there" in str(dojob.nodeexceptions["Never"])
    assert dojob.nodeattempts["Never"] == 2


def test_a_second_checknrun_does_not_recheck_jobs_that_passed():
    events, base = recorder()
    always = type("Always", (base,), {"CHECK_PASSES": True})
    dojob = configured(always)
    dojob.checknrun()
    dojob.checknrun()
    assert events == ["Always.check"]
    assert dojob.nodestatus == {"Always": True}
    assert dojob.noderesults == {"Always": "always"}


def test_checknrun_from_another_node_runs_its_subgraph_only():
    events, base = recorder()
    leaf = type("Leaf", (base,), {"FAILURES": 99, "TRIES": 1})
    other = type("Other", (base,), {"CHECK_PASSES": True})
    top = type("Top", (base,), {"DEPS": [leaf, other]})
    dojob = configured(top)
    dojob.checknrun(node=other)
    assert dojob.nodestatus == {"Other": True}
    dojob.checknrun(node="Leaf")  # DoJobber raised KeyError here
    assert dojob.nodestatus == {"Leaf": False}


def test_constructor_failure_fails_the_job_and_is_retried():
    built = []

    class Fragile(DummyJob):
        TRIES = 2

        def __init__(self):
            super().__init__()
            built.append(1)
            if len(built) == 1:
                raise OSError("first construction fails")

    dojob = configured(Fragile)
    dojob.checknrun()
    assert dojob.nodestatus == {"Fragile": True}
    assert len(built) == 2


def test_job_without_super_init_still_works():
    class Lazy(RunonlyJob):
        def __init__(self):
            self.mine = 1

        def Run(self):
            return self.mine

    dojob = configured(Lazy)
    dojob.checknrun()
    assert dojob.noderesults == {"Lazy": 1}


def test_set_args_reach_check_and_run():
    received = []

    class Arguments(Job):
        def Check(self, *args, **kwargs):
            received.append(("check", args, kwargs))
            if self._check_phase == "check":
                raise RuntimeError("run me")

        def Run(self, *args, **kwargs):
            received.append(("run", args, kwargs))

    dojob = configured(Arguments)
    dojob.set_args(1, 2, name="n")
    dojob.checknrun()
    assert [entry[0] for entry in received] == ["check", "run", "check"]
    assert all(entry[1:] == ((1, 2), {"name": "n"}) for entry in received)


def test_working_directory_is_reset_before_each_step(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []

    class Wanderer(Job):
        def Check(self):
            seen.append(os.getcwd())
            if self._check_phase == "check":
                os.chdir("/")
                raise RuntimeError("wander")

        def Run(self):
            seen.append(os.getcwd())
            os.chdir("/")

    configured(Wanderer).checknrun()
    assert seen == [str(tmp_path)] * 3
    assert os.getcwd() == str(tmp_path)


def test_cleanup_is_lifo_once_per_attempt():
    graphs.reset()
    root, options = graphs.cleanup_order(jobs)
    dojob = configured(root, **options)
    dojob.checknrun()
    assert dojob.success()
    assert graphs.LOG["events"] == ["C", "C", "B", "A"]
    dojob.cleanup()  # each object is cleaned once, not again
    assert graphs.LOG["events"] == ["C", "C", "B", "A"]


def test_cleanup_can_be_deferred_to_the_caller():
    graphs.reset()
    root, options = graphs.cleanup_order(jobs)
    dojob = configured(root, **dict(options, cleanup=False))
    dojob.checknrun()
    assert graphs.LOG["events"] == []
    assert dojob.cleanup() == []
    assert graphs.LOG["events"] == ["C", "C", "B", "A"]


def test_a_failed_cleanup_does_not_hide_the_result_or_stop_others(capsys):
    cleaned = []

    class Bottom(DummyJob):
        def Cleanup(self):
            cleaned.append("Bottom")

    class Top(DummyJob):
        DEPS = [Bottom]

        def Cleanup(self):
            raise KeyError("unittest_dict")

    dojob = configured(Top)
    dojob.checknrun()  # does not raise
    assert dojob.success()
    assert cleaned == ["Bottom"]
    assert [name for name, _ in dojob.cleanup_errors] == ["Top"]
    assert "Top.cleanup: fail \"'unittest_dict'\"" in capsys.readouterr().err


def test_cleanup_debug_lines(capsys):
    class Tidy(DummyJob):
        def Cleanup(self):
            pass

    configured(Tidy, debug=True).checknrun()
    assert capsys.readouterr().err.splitlines() == [
        "Tidy.check: pass",
        "Tidy.cleanup running",
        "Tidy.cleanup: pass",
    ]


def test_verbose_lines(capsys):
    events, base = recorder()
    flaky = type("Flaky Job", (base,), {"FAILURES": 1})
    configured(flaky, verbose=True).checknrun()
    assert capsys.readouterr().err.splitlines() == [
        "Flaky Job.check: fail",
        "Flaky Job.run: pass",
        'Flaky Job.recheck: fail "Flaky Job not there (1 runs)"',
        "Flaky Job.check: fail",
        "Flaky Job.run: pass",
        "Flaky Job.recheck: pass",
    ]


def test_dynamic_jobs_created_at_run_time():
    created = []

    class SendInvite(Job):
        def Check(self):
            if type(self).__name__ not in created:
                raise RuntimeError("not sent")

        def Run(self):
            created.append(type(self).__name__)

    class InviteAll(DummyJob):
        DEPS = []

    for friend in ("Ann", "Bob"):
        invite = type(f"Invite {friend}", (SendInvite,), {})
        InviteAll.DEPS.append(invite)
    dojob = configured(InviteAll)
    dojob.checknrun()
    assert dojob.nodestatus == {
        "Invite Ann": True,
        "Invite Bob": True,
        "InviteAll": True,
    }
    assert created == ["Invite Ann", "Invite Bob"]


def test_a_long_chain_does_not_hit_the_recursion_limit():
    previous = []
    for index in range(3000):
        previous = [type(f"Link{index}", (DummyJob,), {"DEPS": previous})]
    dojob = configured(previous[0])
    dojob.checknrun()
    assert dojob.success()
    assert len(dojob.nodestatus) == 3000


def test_keyboard_interrupt_is_not_swallowed():
    class Interrupted(Job):
        def Check(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        configured(Interrupted).checknrun()


@pytest.fixture
def restored_logging():
    """Undo what dojobber_loglevel does to the package logger."""
    from dispatch.jobs import engine

    package_logger = logging.getLogger("dispatch.jobs")
    handlers = list(package_logger.handlers)
    yield
    package_logger.handlers[:] = handlers
    package_logger.setLevel(logging.NOTSET)
    engine._handler_installed = False


def test_dojobber_loglevel_logs_once_however_many_engines(capsys, restored_logging):
    class Unbuildable(Job):
        TRIES = 1

        def __init__(self):
            raise OSError("no")

    for _ in range(3):
        dojob = DoJobber(dojobber_loglevel=logging.ERROR)
        dojob.configure(Unbuildable)
        dojob.checknrun()
    lines = capsys.readouterr().err.splitlines()
    message = 'Could not create Job "Unbuildable" - check its __init__'
    assert lines == [f"DoJobber ERROR              : {message}"] * 3


def test_errors_are_caught_as_the_builtins_dojobber_raised():
    class NotIterable(DummyJob):
        DEPS = 5

    class WordyTries(DummyJob):
        TRIES = "many"

    with pytest.raises(TypeError, match="not iterable") as caught:
        configured(NotIterable)
    assert isinstance(caught.value, JobConfigurationError)
    with pytest.raises(ValueError, match="TRIES"):
        configured(WordyTries)
    with pytest.raises(AttributeError, match="configure"):
        DoJobber().checknrun()
