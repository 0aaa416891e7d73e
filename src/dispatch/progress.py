"""Old home of what ``dispatch go --wait`` shows: the display is now
:mod:`dispatch.cli.progress`, its rows :func:`dispatch.state.views.step_rows`."""

from dispatch.cli.progress import (
    ERASE_BELOW,
    ERASE_LINE,
    HIDE_CURSOR,
    SHOW_CURSOR,
    LiveTable,
    ProgressLines,
    cursor_up,
    render,
)
from dispatch.state.views import HEADINGS, step_rows

__all__ = [
    "ERASE_BELOW",
    "ERASE_LINE",
    "HEADINGS",
    "HIDE_CURSOR",
    "SHOW_CURSOR",
    "LiveTable",
    "ProgressLines",
    "cursor_up",
    "render",
    "step_rows",
]
