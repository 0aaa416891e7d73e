"""What a process is to the kernel, whatever runs it.

:class:`ProcessSpec` is the parsed ``make process`` request.
:class:`ManagedProcess` is the interface every kind of process offers the
kernel: a local child (:mod:`papa.local`), a process adopted from an earlier
kernel (:mod:`papa.state`) and, later, a Slurm job.  The kernel and the
watchers only use this interface: a pid-like id, ``running``, ``started``,
an exit code, an :class:`~papa.output.OutputRing` and an exit callback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import grp
import logging
import os
import pwd
import re
import resource
from collections.abc import Callable

from .errors import Error
from .output import CLOSED, OutputRing

log = logging.getLogger(__name__)

DEFAULT_BUFSIZE = 1024 * 1024
UNKNOWN_EXIT_CODE = -255
OPTIONS = (
    "working_dir",
    "uid",
    "gid",
    "bufsize",
    "stdout",
    "stderr",
    "watch",
    "shell",
    "spill",
)
_SIZE_SUFFIXES = {"k": 1024, "m": 1024**2, "g": 1024**3}
_FORBIDDEN_IN_NAMES = re.compile(r"[\s:]")


def parse_size(text: str) -> int:
    """``bufsize`` as papa reads it: an integer or N with k/m/g (binary)."""
    text = text.strip()
    multiplier = _SIZE_SUFFIXES.get(text[-1:].lower(), 1)
    digits = text[:-1] if multiplier != 1 else text
    try:
        value = int(digits) * multiplier
    except ValueError:
        raise Error(f"bufsize must be a number like 65536, 64k or 1m, not {text!r}")
    if value < 0:
        raise Error("bufsize cannot be negative")
    return value


def split_options(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading ``key=value`` words, and the rest (papa's rule).

    One pair of double quotes around a value is removed, as papa does for
    values that end in a backslash.  An empty value is allowed (``env.X=``).
    """
    options: dict[str, str] = {}
    index = 0
    while index < len(words) and "=" in words[index]:
        key, _, value = words[index].partition("=")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        options[key] = value
        index += 1
    return options, words[index:]


def check_name(name: str, what: str) -> None:
    """Refuse names the line protocol and the clients cannot carry."""
    if _FORBIDDEN_IN_NAMES.search(name):
        raise Error(f"{what} names cannot contain spaces or ':' ({name!r})")


@dataclasses.dataclass
class ProcessSpec:
    """A ``make process`` request; equal specs make ``make process`` idempotent."""

    name: str
    args: list[str]
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    rlimits: dict[str, int] = dataclasses.field(default_factory=dict)
    working_dir: str | None = None
    uid: int | None = None
    gid: int | None = None
    user_name: str | None = None
    shell: bool = False
    stdout: bool = True
    stderr: str = "1"
    bufsize: int = DEFAULT_BUFSIZE
    spill: bool = False
    # The request of a Slurm job (papa.slurm); None for a local process.
    slurm: dict[str, str] | None = None

    @classmethod
    def from_words(cls, words: list[str]) -> tuple[ProcessSpec, bool]:
        """Parse ``NAME [k=v…] EXE [ARG…]``; also return the ``watch`` flag."""
        if not words:
            raise Error("Process requires a name")
        name = words[0]
        check_name(name, "Process")
        raw_options, args = split_options(words[1:])
        spec = cls(name, args)
        options = {}
        for key, value in raw_options.items():
            if key.startswith("env."):
                spec.env[key[4:]] = value
            elif key.startswith("rlimit."):
                spec.rlimits[_rlimit_name(key[7:])] = _rlimit_value(key[7:], value)
            elif key.startswith("slurm."):
                spec.slurm = dict(spec.slurm or {}, **{key[6:]: value})
            elif key == "slurm":
                if value not in ("", "0"):
                    spec.slurm = spec.slurm or {}
            elif key in OPTIONS:
                options[key] = value
            else:
                raise Error(
                    f'Unknown process option "{key}"; expected env.NAME=, '
                    "rlimit.NAME=, slurm.KEY= or one of: " + ", ".join(OPTIONS)
                )
        if not args:
            raise Error("No command")
        spec.working_dir = options.get("working_dir") or None
        if "bufsize" in options:
            spec.bufsize = parse_size(options["bufsize"])
        spec.shell = bool(options.get("shell"))
        spec.spill = options.get("spill", "") not in ("", "0")
        if spec.bufsize:
            spec.stdout = options.get("stdout", "1") != "0"
            spec.stderr = options.get("stderr", "1")
            if spec.stderr not in ("0", "1", "stdout"):
                raise Error('stderr must be 0, 1 or "stdout"')
        else:
            spec.stdout, spec.stderr = False, "0"
        spec._resolve_user(options.get("uid") or None, options.get("gid") or None)
        watch = options.get("watch", "0") not in ("", "0")
        return spec, watch

    def _resolve_user(self, uid: str | None, gid: str | None) -> None:
        # Unlike papa, uid/gid 0 are honoured (papa treated them as unset).
        if uid is not None:
            try:
                self.uid = int(uid)
            except ValueError:
                try:
                    self.uid = pwd.getpwnam(uid).pw_uid
                except KeyError:
                    raise Error(f"{uid!r} is not a valid user name")
            try:
                entry = pwd.getpwuid(self.uid)
            except KeyError:
                raise Error(f"{uid!r} is not a valid user id")
            self.user_name = entry.pw_name
        if gid is not None:
            try:
                self.gid = int(gid)
                grp.getgrgid(self.gid)
            except (KeyError, OverflowError):
                raise Error(f"No such group: {gid!r}")
            except ValueError:
                try:
                    self.gid = grp.getgrnam(gid).gr_gid
                except KeyError:
                    raise Error(f"No such group: {gid!r}")
        elif self.uid is not None:
            self.gid = pwd.getpwuid(self.uid).pw_gid

    def same_request(self, other: ProcessSpec) -> bool:
        """True when ``other`` asks for the same process again."""
        return dataclasses.astuple(self) == dataclasses.astuple(other)

    def to_state(self) -> dict:
        return dataclasses.asdict(self)


def _rlimit_name(name: str) -> str:
    if not hasattr(resource, f"RLIMIT_{name.upper()}"):
        raise Error(f'Unknown rlimit "{name}"')
    return name.lower()


def _rlimit_value(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise Error(f'The rlimit value for "{name}" must be an integer, not "{value}"')


class ManagedProcess:
    """The kernel's view of one process, whatever kind it is.

    Subclasses implement :meth:`start` and call :meth:`_exited` when the
    process ends; output goes into :attr:`output` (None when not captured).
    """

    kind = "process"
    # Kept in the state file after its end until delivered (papa.waited).
    kept_when_ended = False

    def __init__(self, spec: ProcessSpec):
        self.spec = spec
        self.pid = 0
        self.running = False
        self.started = 0.0
        self.exit_code: int | None = None
        self.output: OutputRing | None = None
        self.removed = False
        self.ticks: int | None = None  # start time in /proc, to re-adopt safely
        self.on_finished: Callable[[ManagedProcess], None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def start(self, sockets) -> None:  # pragma: no cover - interface
        """Launch the process; raise Error with a clear message on failure."""
        raise NotImplementedError

    def remove(self) -> None:
        """Stop keeping output; the entry goes once the process has ended."""
        self.removed = True
        if self.output is not None:
            self.output.discard()

    def _exited(self, exit_code: int) -> None:
        """Record the end of the process and queue the ``closed`` record."""
        self.running = False
        self.exit_code = exit_code
        log.info("process %s (pid %s) exited with %s", self.name, self.pid, exit_code)
        if self.output is not None:
            self.output.add(CLOSED, exit_code)
        if self.on_finished is not None:
            self.on_finished(self)

    @property
    def finished_and_delivered(self) -> bool:
        """Ended and nothing left for watchers: the entry may go."""
        return not self.running and (self.output is None or self.removed)

    def line(self, quote: Callable[[str], str] = str) -> str:
        """The process line of ``list processes`` (papa's field order)."""
        fields = [
            quote(self.name),
            f"pid={self.pid}",
            f"running={self.running}",
            f"started={self.started!r}",
        ]
        if self.spec.uid is not None:
            fields.append(f"uid={self.spec.uid}")
        if self.spec.gid is not None:
            fields.append(f"gid={self.spec.gid}")
        fields.extend(self.command_fields(quote))
        return " ".join(fields)

    def command_fields(self, quote: Callable[[str], str] = str) -> list[str]:
        """The last fields of a process line, what was run: every kind ends so."""
        fields = ["shell=True"] if self.spec.shell else []
        if self.spec.args:
            fields.append("args=" + " ".join(quote(arg) for arg in self.spec.args))
        return fields

    def to_state(self) -> dict:
        """What the state directory keeps to re-adopt this process."""
        return {
            "spec": self.spec.to_state(),
            "pid": self.pid,
            "started": self.started,
            "ticks": self.ticks,
        }

    def forgotten(self) -> None:
        """Its end was delivered and its entry dropped: remove what it left."""

    def close(self) -> None:
        """Release kernel-side resources (pipes, watches); never kills."""
        if self.output is not None:
            self.output.close()


def stop_watching_pidfd(loop: asyncio.AbstractEventLoop, pidfd: int) -> None:
    """Stop waiting for a process's end through its pidfd, and close the pidfd."""
    loop.remove_reader(pidfd)
    os.close(pidfd)
