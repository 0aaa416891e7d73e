"""What ``dispatch go --wait`` shows while a run goes.

On a terminal, a small table of the run's steps (status, messages,
deliveries, where the last delivery ran, its exit code) redrawn in place
each time zeo reports a commit, like ``watch``; only ANSI cursor moves,
no curses.  Elsewhere (a pipe, a CI log, ``make demo``), one line per step
whose status changes, which scripts can read.
"""

import logging
import shutil

from dispatch import model

logger = logging.getLogger(__name__)

# ANSI control sequences (ECMA-48): erase the line, erase below the cursor,
# cursor up n lines, hide and show the cursor.
ERASE_LINE = "\x1b[2K"
ERASE_BELOW = "\x1b[J"
HIDE_CURSOR = "\x1b[?25l"
SHOW_CURSOR = "\x1b[?25h"
HEADINGS = ("STEP", "NAME", "STATUS", "MESSAGES", "DELIVERIES", "WHERE", "EXIT")


def cursor_up(lines):
    """The sequence that moves the cursor *lines* up, to column 1."""
    return f"\r\x1b[{lines}A" if lines else "\r"


def _where(attempt):
    """Where a delivery ran: its Slurm job, else host and pid."""
    if getattr(attempt, "slurm_job", None):
        return f"slurm job {attempt.slurm_job}"
    return f"{attempt.host} pid {attempt.pid}"


def step_rows(dispatch, run_id):
    """One tuple of texts per step of run *run_id*, in the order of
    :data:`HEADINGS`."""
    run = dispatch.runs[run_id]
    rows = []
    for node, step in run.steps.items():
        messages = step.messages(run)
        definition = step.definition
        name = (
            definition.get("service")
            or definition.get("queue")
            or definition.get("topic")
            or " ".join(map(str, definition.get("command") or []))
            or "-"
        )
        attempts = [attempt for message in messages for attempt in message.attempts]
        last = max(attempts, key=lambda attempt: attempt.started, default=None)
        exit_code = last.exit_code if last is not None else None
        rows.append(
            (
                str(node),
                name,
                step.status(run),
                str(len(messages)),
                str(sum(message.deliveries for message in messages)),
                _where(last) if last is not None else "-",
                "-" if exit_code is None else str(exit_code),
            )
        )
    return rows


def render(run_id, status, rows):
    """The lines of the table: a title, the headings, one line per step."""
    done = sum(row[2] == model.DONE for row in rows)
    table = [HEADINGS, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(7)]
    lines = [f"run {run_id}: {status}, {done}/{len(rows)} step(s) done"]
    for row in table:
        cells = [text.ljust(width) for text, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


class LiveTable:
    """Draws lines on a terminal, each time over the previous drawing."""

    def __init__(self, out):
        self.out = out
        self.drawn = 0  # lines of the last drawing, the cursor below them
        self.closed = False
        self.out.write(HIDE_CURSOR)

    def draw(self, lines):
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

    def close(self):
        """Leave the last drawing in place and show the cursor again."""
        if not self.closed:
            self.closed = True
            self.out.write(SHOW_CURSOR)
            self.out.flush()


class ProgressLines:
    """Writes ``step N: STATUS`` each time a step's status changes."""

    def __init__(self, out):
        self.out = out
        self.shown = {}

    def draw(self, rows):
        for row in rows:
            node, state = row[0], row[2]
            if self.shown.get(node) != state:
                self.out.write(f"step {node}: {state}\n")
                self.shown[node] = state
        self.out.flush()

    def close(self):
        pass
