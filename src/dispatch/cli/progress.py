"""What ``dispatch go --wait`` shows while a run goes.

On a terminal, a small table of the run's steps (status, messages,
deliveries, where the last delivery ran, its exit code) redrawn in place
each time zeo reports a commit, like ``watch``; only ANSI cursor moves,
no curses.  The rows come from :func:`dispatch.state.views.step_rows`.
Elsewhere (a pipe, a CI log, ``make demo``), one line per step
whose status changes, which scripts can read.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from typing import IO

from dispatch.state import model
from dispatch.state.views import HEADINGS

logger = logging.getLogger(__name__)

# ANSI control sequences (ECMA-48): erase the line, erase below the cursor,
# cursor up n lines, hide and show the cursor.
ERASE_LINE = "\x1b[2K"
ERASE_BELOW = "\x1b[J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"


def cursor_up(lines: int) -> str:
    """The sequence that moves the cursor *lines* up, to column 1."""
    return f"\r\x1b[{lines}A" if lines else "\r"


def render(run_id: str, status: str, rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of the table: a title, the headings, one line per step."""
    done = sum(row[2] == model.DONE for row in rows)
    table: list[Sequence[str]] = [HEADINGS, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(7)]
    lines = [f"run {run_id}: {status}, {done}/{len(rows)} step(s) done"]
    for row in table:
        cells = [text.ljust(width) for text, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


class LiveTable:
    """Draws lines on a terminal, each time over the previous drawing."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.drawn = 0  # lines of the last drawing, the cursor below them
        self.closed = False
        self.out.write(HIDE_CURSOR)

    def draw(self, lines: Sequence[str]) -> None:
        """Replace the last drawing with *lines* (cut to the terminal's
        width, so that none wraps and the count of lines stays right)."""
        width = max(20, shutil.get_terminal_size().columns - 1)
        parts = [cursor_up(self.drawn)]
        for line in lines:
            parts.append(f"{ERASE_LINE}{line[:width]}\n")
        parts.append(ERASE_BELOW)
        self.out.write("".join(parts))
        self.out.flush()
        self.drawn = len(lines)

    def close(self) -> None:
        """Leave the last drawing in place and show the cursor again."""
        if not self.closed:
            self.closed = True
            self.out.write(SHOW_CURSOR)
            self.out.flush()


class ProgressLines:
    """Writes ``step N: STATUS`` each time a step's status changes."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.shown: dict[str, str] = {}

    def draw(self, rows: Sequence[Sequence[str]]) -> None:
        for row in rows:
            node, state = row[0], row[2]
            if self.shown.get(node) != state:
                self.out.write(f"step {node}: {state}\n")
                self.shown[node] = state
        self.out.flush()

    def close(self) -> None:
        """Nothing to restore: the lines are written as they come."""
