"""Slurm's time formats, read the way Slurm reads them.

``sbatch --time`` and ``sinfo``'s limits use one grammar: ``MM``,
``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM`` and ``D-HH:MM:SS``, plus
``INFINITE``/``UNLIMITED``.  A lone number is *minutes* and ``30:00`` is 30
minutes: jupyterhub-moss read both as hours, which over-estimated short
partitions and let ``90`` pass as 90 hours.
"""

from __future__ import annotations

import re

from ..errors import Error

INFINITE = None
_WITH_DAYS = re.compile(r"^(\d+)-(\d+)(?::(\d+))?(?::(\d+))?$")
_WITHOUT_DAYS = re.compile(r"^(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_time(text: str) -> int | None:
    """Seconds for a Slurm time string; None for an unlimited one.

    Raises :class:`~papa.errors.Error` naming the accepted formats.
    """
    value = str(text).strip()
    if value.lower() in ("infinite", "unlimited"):
        return INFINITE
    match = _WITH_DAYS.match(value)
    if match:
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return _checked(value, ((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    match = _WITHOUT_DAYS.match(value)
    if match:
        parts = [int(part) for part in match.groups() if part is not None]
        if len(parts) == 1:  # MM
            seconds = parts[0] * 60
        elif len(parts) == 2:  # MM:SS
            seconds = parts[0] * 60 + parts[1]
        else:  # HH:MM:SS
            seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
        return _checked(value, seconds)
    raise Error(
        f"runtime {value!r} is not a Slurm time: use MM, MM:SS, HH:MM:SS, "
        "D-HH, D-HH:MM, D-HH:MM:SS or INFINITE"
    )


def _checked(text: str, seconds: int) -> int:
    if seconds <= 0:
        raise Error(f"runtime {text!r} must be longer than zero")
    return seconds


def format_time(seconds: int | None) -> str:
    """Seconds as Slurm prints them: ``[D-]HH:MM:SS`` or ``INFINITE``."""
    if seconds is INFINITE:
        return "INFINITE"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}-{text}" if days else text
