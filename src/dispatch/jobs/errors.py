"""The errors of the job engine, catchable as what DoJobber raised.

DoJobber 0.6.3 reports a misconfigured graph with whatever Python raised on
the way: ``TypeError`` for DEPS that is not iterable, ``ValueError`` for
TRIES that ``int()`` cannot read, ``AttributeError`` for a DEPS entry that
is not a class or for ``checknrun()`` before ``configure()``, and
``RuntimeError`` (pygraph's ``AdditionError`` among them) for cycles,
duplicate DEPS and bad TRIES/RETRY_DELAY values.  Programs written for it
catch those builtins.  Each of our errors derives from
:class:`JobConfigurationError` (a ``RuntimeError``, with a message that says
what to change) *and* from the builtin DoJobber raised in that case, so
``except TypeError`` in a DoJobber program goes on working and
``except JobConfigurationError`` catches every one of them.
"""


class JobConfigurationError(RuntimeError):
    """The job graph or a job's settings cannot be used; nothing was run."""


class JobTypeError(JobConfigurationError, TypeError):
    """DEPS, TRIES or RETRY_DELAY of the wrong type (DoJobber: TypeError)."""


class JobValueError(JobConfigurationError, ValueError):
    """TRIES that is not an integer, e.g. text (DoJobber: ValueError)."""


class DependencyEntryError(JobTypeError, AttributeError):
    """A DEPS entry that is neither a Job class nor a job name.

    DoJobber raised AttributeError (it read the entry's ``__name__``).
    """


class NotConfiguredError(JobConfigurationError, AttributeError):
    """``checknrun()`` or the graph asked for before ``configure()``.

    DoJobber raised AttributeError (its graph was still None).
    """


class GraphRenderError(RuntimeError):
    """A graph could not be rendered (graphviz missing or failing)."""
