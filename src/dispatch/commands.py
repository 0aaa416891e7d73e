"""Old home of ``dispatch go``, ``list``, ``show`` and the plumbing every
command shared; now :mod:`dispatch.cli.base` (the plumbing),
:mod:`dispatch.cli.go`, :mod:`dispatch.cli.list_`, :mod:`dispatch.cli.show`,
:mod:`dispatch.state.database` and :mod:`dispatch.state.views`.  The names
are still importable from here."""

from dispatch.cli import base as _base
from dispatch.cli import go as _go
from dispatch.cli import list_ as _list
from dispatch.cli import show as _show

# The plumbing is re-exported whole: this module is its old name, and a
# second list of the same names here would drift from the first.
from dispatch.cli.base import *  # noqa: F403
from dispatch.cli.go import (
    RECIPES_VARIABLE,
    find_recipe,
    parse_parameters,
    wait_for_run,
)
from dispatch.state.database import dispatch_state
from dispatch.state.views import run_document, step_states

__all__ = [
    *_base.__all__,
    "RECIPES_VARIABLE",
    "dispatch_state",
    "find_recipe",
    "go_main",
    "list_main",
    "parse_parameters",
    "run_document",
    "show_main",
    "step_states",
    "wait_for_run",
]


# Entry functions of the old layout: each is its command's ``main``.
go_main = _go.COMMAND.main
list_main = _list.COMMAND.main
show_main = _show.COMMAND.main
