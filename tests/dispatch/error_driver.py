"""Misuse one engine in many ways and print what each raised, as JSON.

``python error_driver.py ENGINE`` with ENGINE ``ours`` or ``peer`` (real
DoJobber, importable only with the peer's PYTHONPATH).  For every case the
report holds the names of the builtin exception classes the raised
exception is an instance of (``None`` when nothing was raised) and its text.
"""

import builtins
import json
import sys


def builtin_classes(error):
    """Names of the builtin exception classes *error* is an instance of."""
    return sorted(
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and isinstance(error, value)
    )


def cases(module):
    """{case name: callable that misuses the engine}."""
    Job, DummyJob = module.Job, module.DummyJob

    def job(name, deps=(), **attributes):
        return type(name, (DummyJob,), {"DEPS": list(deps), **attributes})

    def configure(root, **options):
        module.DoJobber().configure(root, **options)

    leaf = job("Leaf")
    first = job("First")
    second = job("Second", [first])
    first.DEPS = [second]
    configured = module.DoJobber()
    configured.configure(job("Once", [leaf]))

    return {
        "deps_not_iterable": lambda: configure(job("Root", DEPS=5)),
        "deps_is_a_class": lambda: configure(job("Root", DEPS=leaf)),
        "deps_item_is_a_number": lambda: configure(job("Root", [5])),
        "duplicate_deps": lambda: configure(job("Root", [leaf, leaf])),
        "cycle": lambda: configure(job("Root", [second])),
        "tries_zero": lambda: configure(job("Root", TRIES=0)),
        "tries_negative": lambda: configure(job("Root", TRIES=-2)),
        "tries_text": lambda: configure(job("Root", TRIES="many")),
        "tries_list": lambda: configure(job("Root", TRIES=[2])),
        "retry_delay_negative": lambda: configure(job("Root", RETRY_DELAY=-1)),
        "retry_delay_text": lambda: configure(job("Root", RETRY_DELAY="soon")),
        "default_tries_zero": lambda: configure(leaf, default_tries=0),
        "default_retry_delay_negative": lambda: configure(leaf, default_retry_delay=-1),
        "configure_twice": lambda: configured.configure(job("Once", [leaf])),
        "root_is_a_name": lambda: configure("Leaf"),
        "checknrun_before_configure": lambda: module.DoJobber().checknrun(),
        "checknrun_unknown_node": lambda: configured.checknrun("NoSuchJob"),
        "job_is_abstract": lambda: configure(type("Plain", (Job,), {})),
    }


def main():
    if sys.argv[1] == "peer":
        import dojobber as module
    else:
        import dispatch.jobs as module
    report = {}
    for name, misuse in cases(module).items():
        try:
            misuse()
        except Exception as error:
            report[name] = {
                "builtins": builtin_classes(error),
                "text": f"{type(error).__name__}: {error}",
            }
        else:
            report[name] = None
    sys.stdout.write(json.dumps(report, sort_keys=True, indent=1) + "\n")


if __name__ == "__main__":
    main()
