"""``dispatch go --wait`` on a real pseudo-terminal redraws a table of the
run's steps in place (read back through a small terminal model), and on a
pipe still prints plain progress lines; the exit codes are the same."""

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

from tests.conftest import PYTHON
from tests.dispatch.test_run_cli import (
    PIPELINE,
    POISONED,
    TIMEOUT,
    ServiceProcess,
    dispatch,
    environment,
)

COLUMNS, LINES = 120, 40
CONTROL = re.compile(r"\x1b\[(\??)(\d*)([A-Za-z])")


class Screen:
    """Just enough of a terminal to replay what the display writes:
    printable text, CR, LF, cursor up (``ESC [ n A``), erase line
    (``ESC [ 2 K``), erase below (``ESC [ J``); cursor show/hide ignored."""

    def __init__(self):
        self.lines = [""]
        self.row = self.column = 0
        self.redraws = 0  # cursor-up moves seen

    def feed(self, text):
        position = 0
        while position < len(text):
            match = CONTROL.match(text, position)
            if match:
                self._control(match.group(1), match.group(2), match.group(3))
                position = match.end()
                continue
            self._character(text[position])
            position += 1

    def _control(self, private, number, final):
        if private:
            return  # ?25l / ?25h: cursor visibility
        if final == "A":
            self.row = max(0, self.row - int(number or 1))
            self.redraws += 1
        elif final == "K":
            self.lines[self.row] = ""
        elif final == "J":
            del self.lines[self.row + 1 :]
            self.lines[self.row] = self.lines[self.row][: self.column]

    def _character(self, character):
        if character == "\r":
            self.column = 0
        elif character == "\n":
            self.row += 1
            if self.row == len(self.lines):
                self.lines.append("")
        else:
            line = self.lines[self.row].ljust(self.column)
            self.lines[self.row] = (
                line[: self.column] + character + line[self.column + 1 :]
            )
            self.column += 1

    def text(self):
        return "\n".join(line.rstrip() for line in self.lines).strip("\n")


class TerminalProcess:
    """A command whose stdin, stdout and stderr are a new pseudo-terminal."""

    def __init__(self, command, env):
        self.master, slave = pty.openpty()
        fcntl.ioctl(
            slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0)
        )
        self.process = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
        )
        os.close(slave)
        self.output = ""

    def read_until(self, condition, timeout=TIMEOUT):
        """Read the terminal until *condition(output)* or the end; returns
        whether the condition held."""
        deadline = time.monotonic() + timeout
        while not condition(self.output):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select([self.master], [], [], remaining)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                return condition(self.output)
            if not data:
                return condition(self.output)
            self.output += data.decode("utf-8", errors="replace")
        return True

    def finish(self):
        """Read to the end; returns the exit status."""
        self.read_until(lambda output: False)
        status = self.process.wait(TIMEOUT)
        os.close(self.master)
        return status

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def go_on_a_terminal(runzeo, recipe_path, *services):
    """Run ``go --wait`` on a terminal; start *services* only once its
    first table is drawn, so that the table must be redrawn.  Returns
    ``(exit status, Screen)``."""
    terminal = TerminalProcess(
        [PYTHON, "-m", "dispatch.cli", "go", str(recipe_path), "--wait"],
        environment(runzeo),
    )
    started = []
    try:
        assert terminal.read_until(lambda output: "STATUS" in output), terminal.output
        started = [ServiceProcess(runzeo, name) for name in services]
        status = terminal.finish()
    finally:
        terminal.kill()
        for service in started:
            service.stop()
    screen = Screen()
    screen.feed(terminal.output)
    return status, screen


def step_statuses(screen):
    """``{step: status}`` from the table on *screen*."""
    statuses = {}
    for line in screen.lines:
        cells = line.split()
        if len(cells) >= 3 and cells[0].isdigit():
            statuses[cells[0]] = cells[2]
    return statuses


def test_the_table_is_redrawn_until_every_step_is_done(runzeo, tmp_path):
    recipe = tmp_path / "pipeline.json"
    recipe.write_text(json.dumps(PIPELINE).replace("{text}", "live"))
    status, screen = go_on_a_terminal(runzeo, recipe, "Upper", "Collect")
    assert status == 0, screen.text()
    assert screen.redraws >= 1, screen.text()
    text = screen.text()
    assert step_statuses(screen) == {"1": "done", "2": "done"}, text
    assert re.search(r"run \S+: succeeded, 2/2 step\(s\) done", text), text
    assert "STEP  NAME" in text
    # Where it ran: the service's host and pid; one delivery each.
    (row,) = [line for line in screen.lines if line.startswith("1 ")]
    assert re.search(r"Upper\s+done\s+1\s+1\s+\S+ pid \d+", row), row
    assert text.rstrip().endswith("succeeded")
    # The table is drawn over itself: the final screen holds it once.
    assert text.count("STEP  NAME") == 1, text


def test_a_failed_run_on_a_terminal_exits_1(runzeo, tmp_path):
    recipe = tmp_path / "poisoned.json"
    recipe.write_text(json.dumps(POISONED))
    status, screen = go_on_a_terminal(runzeo, recipe, "Poison")
    assert status == 1, screen.text()
    assert step_statuses(screen) == {"1": "dead", "2": "waiting"}, screen.text()
    (row,) = [line for line in screen.lines if line.startswith("1 ")]
    assert re.search(r"Poison\s+dead\s+1\s+5\s", row), row
    assert "failed" in screen.text()


def test_on_a_pipe_the_progress_is_plain_lines(runzeo, tmp_path):
    recipe = tmp_path / "pipeline.json"
    recipe.write_text(json.dumps(PIPELINE))
    services = [ServiceProcess(runzeo, "Upper"), ServiceProcess(runzeo, "Collect")]
    try:
        completed = dispatch(runzeo, "go", recipe, "-p", "text=x", "--wait")
    finally:
        for service in services:
            service.stop()
    assert completed.returncode == 0, completed.stderr
    assert "\x1b" not in completed.stdout
    lines = completed.stdout.splitlines()
    run_id = lines[0]
    assert "step 1: done" in lines and "step 2: done" in lines
    assert lines[-1] == f"run {run_id}: succeeded"
