"""Job graphs defined once and built on either engine (ours or DoJobber).

Each builder takes the engine's module (anything with Job, DummyJob and
RunonlyJob) and returns ``(root, configure_options)``.  Flaky jobs count
their attempts in :data:`LOG`, so a graph behaves the same on both engines
as long as each is built in a fresh process (the comparison driver) or
after :func:`reset`.  The jobs are deliberately plain: the point is to
compare engines, not to exercise job code.
"""

LOG = {"events": [], "counts": {}}


def reset():
    LOG["events"].clear()
    LOG["counts"].clear()


def _count(name):
    LOG["counts"][name] = LOG["counts"].get(name, 0) + 1
    return LOG["counts"][name]


def flaky(module, name, runs_needed, deps=(), tries=None, delay=None):
    """A job whose Check passes only after its Run ran *runs_needed* times."""

    def check(self, *args, **kwargs):
        done = LOG["counts"].get(name + ".run", 0)
        if done < runs_needed:
            raise RuntimeError(f"{name} has run {done} of {runs_needed} times")
        return f"{name} ok"

    def run(self, *args, **kwargs):
        _count(name + ".run")

    attributes = {"DEPS": list(deps), "Check": check, "Run": run}
    if tries is not None:
        attributes["TRIES"] = tries
    if delay is not None:
        attributes["RETRY_DELAY"] = delay
    return type(name, (module.Job,), attributes)


def broken(module, name, deps=(), tries=None, run_raises=True):
    """A job that never passes; its Run raises or not."""

    def check(self, *args, **kwargs):
        raise ValueError(f"{name} is broken for good")

    def run(self, *args, **kwargs):
        if run_raises:
            raise OSError(f"{name} run exploded")

    attributes = {"DEPS": list(deps), "Check": check, "Run": run}
    if tries is not None:
        attributes["TRIES"] = tries
    return type(name, (module.Job,), attributes)


def passing(module, name, deps=()):
    def check(self, *args, **kwargs):
        return {"name": name, "args": list(args), "kwargs": sorted(kwargs)}

    def run(self, *args, **kwargs):
        raise AssertionError("Run of a passing job must not be called")

    return type(name, (module.Job,), {"DEPS": list(deps), "Check": check, "Run": run})


def movie(module):
    """A 20-odd job evening with flaky branches, dynamic jobs and a dead end."""
    validate = passing(module, "ValidateMovie")
    pick = flaky(module, "PickTimeAndDate", 1)
    details = type("DetermineDetails", (module.DummyJob,), {"DEPS": [validate, pick]})

    class SendInvite(module.Job):
        NEEDED = 0

        def Check(self, *args, **kwargs):
            name = type(self).__name__
            if LOG["counts"].get(name, 0) < self.NEEDED:
                raise RuntimeError(f"{name} not answered yet")

        def Run(self, *args, **kwargs):
            _count(type(self).__name__)

    invites = []
    for index, friend in enumerate(["Wendell Bagg", "Lawyer Cat", "Amy"]):
        # Dynamic jobs, as DoJobber's README makes them: subclasses created
        # at run time and listed in a DEPS before configure().
        invite = type(f"Invite {friend}", (SendInvite,), {})
        invite.DEPS = [details]
        invite.TRIES = 2 + index
        invite.NEEDED = index
        invites.append(invite)
    invite_friends = type("InviteFriends", (module.DummyJob,), {"DEPS": invites})
    arrive = flaky(module, "FriendsArrive", 2, deps=[invite_friends], tries=4)
    couch = flaky(module, "CleanCouch", 1)
    pillows = flaky(module, "FluffPillows", 3, tries=5)
    room = type("PrepareRoom", (module.DummyJob,), {"DEPS": [couch, pillows]})
    remote = flaky(module, "FindTVRemote", 2)
    tv = flaky(module, "TurnOnTV", 1, deps=[remote])

    class InsertDVD(module.RunonlyJob):
        DEPS = [tv]

        def Run(self, *args, **kwargs):
            if _count("InsertDVD") < 2:
                raise RuntimeError("disc upside down")
            return "inserted"

    sit = type("SitOnCouch", (module.DummyJob,), {"DEPS": [room]})
    bowl = flaky(module, "PopcornBowl", 1)
    popcorn = flaky(module, "Popcorn", 1, deps=[bowl])
    pizza = broken(module, "Pizza", tries=2)
    food = type("Food", (module.DummyJob,), {"DEPS": [popcorn, pizza]})
    start = type(
        "StartMovie", (module.DummyJob,), {"DEPS": [arrive, sit, InsertDVD, food]}
    )
    watch = type("WatchMovie", (module.DummyJob,), {"DEPS": [start]})
    return watch, {"default_retry_delay": 0}


def movie_no_pizza(module):
    """The evening without the dead end: everything eventually succeeds."""
    root, options = movie(module)
    food = next(dep for dep in root.DEPS[0].DEPS if dep.__name__ == "Food")
    food.DEPS = [dep for dep in food.DEPS if dep.__name__ != "Pizza"]
    return root, options


def round_robin(module):
    """Three independent flaky branches: retries interleave across phases."""
    first = flaky(module, "First", 2)
    second = flaky(module, "Second", 3, tries=4)
    third = broken(module, "Third", tries=2, run_raises=False)
    return type("Top", (module.DummyJob,), {"DEPS": [first, second, third]}), {
        "default_retry_delay": 0
    }


def chain(module):
    """A linear chain whose middle needs three attempts."""
    bottom = passing(module, "Bottom")
    middle = flaky(module, "Middle", 2, deps=[bottom])
    top = passing(module, "TopOfChain", deps=[middle])
    return top, {"default_retry_delay": 0}


def no_act(module):
    """The movie graph under no_act: checks only, one phase."""
    root, options = movie(module)
    return root, dict(options, no_act=True, cleanup=False)


def broken_constructor(module):
    class Unbuildable(module.Job):
        def __init__(self):
            raise OSError("no constructor for you")

        def Check(self, *args, **kwargs):
            pass

    above = type("AboveUnbuildable", (module.DummyJob,), {"DEPS": [Unbuildable]})
    return above, {"default_retry_delay": 0, "default_tries": 2}


def cleanup_order(module):
    """A <- B <- C where C needs two attempts; Cleanup records the order."""

    def cleanup(self):
        LOG["events"].append(type(self).__name__)

    a_job = type(
        "A",
        (module.Job,),
        {"Check": lambda self: None, "Run": lambda self: None, "Cleanup": cleanup},
    )
    b_job = type(
        "B",
        (module.Job,),
        {
            "DEPS": [a_job],
            "Check": lambda self: None,
            "Run": lambda self: None,
            "Cleanup": cleanup,
        },
    )
    c_base = flaky(module, "C", 2)
    c_job = type("C", (c_base,), {"DEPS": [b_job], "Cleanup": cleanup})
    return c_job, {"default_retry_delay": 0}


BUILDERS = {
    "movie": movie,
    "movie_no_pizza": movie_no_pizza,
    "round_robin": round_robin,
    "chain": chain,
    "no_act": no_act,
    "broken_constructor": broken_constructor,
    "cleanup_order": cleanup_order,
}


def build(module, name):
    reset()
    return BUILDERS[name](module)
