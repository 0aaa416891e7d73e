"""The ``dispatch`` command: routes each sub-command to its module.

Each entry of :data:`COMMANDS` imports its module only when used, so
``dispatch validate`` does not pay for ZODB imports.
"""

import sys

USAGE = "usage: dispatch COMMAND [ARGUMENTS...]  (commands: {commands})"
EXIT_USAGE = 2


def _jobs(argv):
    from dispatch.jobs.cli import jobs_main

    return jobs_main(argv)


def _validate(argv):
    from dispatch.validate import validate_main

    return validate_main(argv)


def _lazy(module_name, function_name):
    """A command function that imports its module only when run."""

    def command(argv):
        import importlib

        return getattr(importlib.import_module(module_name), function_name)(argv)

    return command


# name -> (function taking the remaining arguments, one-line help)
COMMANDS = {
    "jobs": (_jobs, "look at recorded job runs: list, show, graph"),
    "validate": (_validate, "check recipe JSON files (exit 1 if any is invalid)"),
    "go": (_lazy("dispatch.commands", "go_main"), "start a run of recipes [--wait]"),
    "list": (_lazy("dispatch.commands", "list_main"), "list runs and their status"),
    "show": (
        _lazy("dispatch.commands", "show_main"),
        "a run's steps, messages, attempts",
    ),
    "cancel": (_lazy("dispatch.control", "cancel_main"), "cancel a run"),
    "retry": (
        _lazy("dispatch.control", "retry_main"),
        "send a run's dead letters again",
    ),
    "drain": (
        _lazy("dispatch.control", "drain_main"),
        "move pending messages to another queue",
    ),
    "service": (
        _lazy("dispatch.service", "service_main"),
        "run a service (entry point group dispatch.services)",
    ),
    "wrap": (
        _lazy("dispatch.wrap", "wrap_main"),
        "run a program as a step, reporting into the run",
    ),
    "supervise": (
        _lazy("dispatch.supervise", "supervise_main"),
        "keep the services of a configuration running through papa",
    ),
    "shutdown": (
        _lazy("dispatch.control", "shutdown_main"),
        "ask running services to stop",
    ),
    "dlq-check": (
        _lazy("dispatch.deadletters", "check_main"),
        "count dead letters (exit 1 if any)",
    ),
    "dlq-purge": (
        _lazy("dispatch.deadletters", "purge_main"),
        "move dead letters to JSON files",
    ),
    "dlq-reinject": (
        _lazy("dispatch.deadletters", "reinject_main"),
        "send purged dead letters back",
    ),
}


def main(argv=None):
    """Entry point of the ``dispatch`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    names = ", ".join(sorted(COMMANDS))
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(commands=names))
        for name, (_, help_text) in sorted(COMMANDS.items()):
            print(f"  {name:<10} {help_text}")
        return 0 if argv else EXIT_USAGE
    command = COMMANDS.get(argv[0])
    if command is None:
        print(
            f"dispatch: unknown command {argv[0]!r} (known commands: {names}; "
            f"see `dispatch --help`)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return command[0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
