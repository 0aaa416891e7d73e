"""Old home of ``dispatch cancel``, ``retry``, ``drain`` and ``shutdown``,
now one module each in :mod:`dispatch.cli`; their entry functions are
still importable from here."""

from dispatch.cli import cancel, drain, retry, shutdown

# Entry functions of the old layout: each is its command's ``main``.
cancel_main = cancel.COMMAND.main
retry_main = retry.COMMAND.main
drain_main = drain.COMMAND.main
shutdown_main = shutdown.COMMAND.main
