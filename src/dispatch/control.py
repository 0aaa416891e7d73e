"""Old home of ``dispatch cancel``, ``retry``, ``drain`` and ``shutdown``,
now one module each in :mod:`dispatch.cli`; their entry functions are
still importable from here."""

from dispatch.cli import cancel, drain, retry, shutdown


def cancel_main(argv: list[str]) -> int:
    """``dispatch cancel RUN``."""
    return cancel.COMMAND.main(argv)


def retry_main(argv: list[str]) -> int:
    """``dispatch retry RUN [STEP]``."""
    return retry.COMMAND.main(argv)


def drain_main(argv: list[str]) -> int:
    """``dispatch drain SOURCE DESTINATION``."""
    return drain.COMMAND.main(argv)


def shutdown_main(argv: list[str]) -> int:
    """``dispatch shutdown NAME...|--all``."""
    return shutdown.COMMAND.main(argv)
