"""``zeo-nagios``: a Nagios check of a ZEO server, with ZEO's command line.

Usage::

    zeo-nagios [-m] [-s STATUS_FILE] [-u seconds|minutes|hours|days] ADDRESS

ADDRESS is ``host:port``, ``[v6]:port`` or a Unix socket path.  The check
sends the ``ruok`` probe (no session, nothing logged above DEBUG) and
prints one Nagios plugin line; the exit status is the Nagios state:

- 0 OK: every storage has at least one transaction;
- 1 WARNING: a storage is empty (``Empty storage '1'``), or none is served;
- 2 CRITICAL: the server cannot be reached (``Can't connect ...``) or does
  not answer within ``--timeout``;
- 3 UNKNOWN: bad usage, or the peer answers but not with a ZEO status.

States 0-2 and their texts are ZEO's; ZEO crashes with a traceback (status
1) where we say UNKNOWN.  ``-m`` appends performance data: ``active_txns``,
``connections`` and ``waiting`` now, and with ``-s FILE`` the rates of
``aborts commits conflicts conflicts_resolved loads stores`` per ``-u`` unit
since the previous run (the file holds the last status, as ZEO's does, and
the two commands can share one).  Storages other than ``1`` are labelled
``NAME:metric``.  ZEO has no thresholds beyond these states, nor do we.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .probe import parse_address, ruok

logger = logging.getLogger(__name__)

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3

NO_TRANSACTION = "0" * 16
#: Figures reported as they are.
GAUGES = ("active_txns", "connections", "waiting")
#: Figures reported as rates between two runs.
COUNTERS = ("aborts", "commits", "conflicts", "conflicts_resolved", "loads", "stores")
SECONDS_PER_UNIT = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
#: ZEO's check waits forever; a Nagios plugin should not (Nagios kills it at 10 s).
TIMEOUT = 9.0

Status = dict[str, dict[str, Any]]


def _metric(storage_id: str, name: str, value: object) -> str:
    if storage_id == "1":
        label = name
    elif " " in storage_id:
        label = f"'{storage_id}:{name}'"
    else:
        label = f"{storage_id}:{name}"
    return f"{label}={value}"


def format_result(messages: list[str], metrics: Sequence[str]) -> str:
    """Nagios's layout: the first metric after ``|`` on the first line, the
    others on further lines after a ``| ``."""
    lines = list(messages)
    if metrics:
        lines[0] += "|" + metrics[0]
    if len(metrics) > 1:
        lines.append("| " + "\n ".join(metrics[1:]))
    return "\n".join(lines)


def rates(
    status: Status, status_path: str, unit: str, now: float | None = None
) -> list[str]:
    """Rate metrics since the status saved in *status_path*; save *status*.

    A missing or unreadable previous file gives no rates this time (the next
    run has them); it is rewritten either way.
    """
    now = time.time() if now is None else now
    metrics: list[str] = []
    try:
        elapsed = now - os.stat(status_path).st_mtime
        with open(status_path) as previous_file:
            previous = json.load(previous_file)
    except (OSError, ValueError):
        previous, elapsed = {}, 0.0
    if elapsed > 0 and isinstance(previous, dict):
        elapsed /= SECONDS_PER_UNIT[unit]
        for storage_id, figures in sorted(status.items()):
            old = previous.get(storage_id)
            if not isinstance(old, dict):
                continue
            for name in COUNTERS:
                try:
                    rate = (figures[name] - old[name]) / elapsed
                except (KeyError, TypeError):
                    continue
                metrics.append(_metric(storage_id, name, rate))
    with open(status_path, "w") as status_file:
        json.dump(status, status_file)
    return metrics


def check(
    address: str,
    output_metrics: bool = False,
    status_path: str | None = None,
    unit: str = "minutes",
    timeout: float = TIMEOUT,
) -> tuple[int, str]:
    """Probe *address*; return ``(nagios state, text to print)``."""
    try:
        parse_address(address)
    except ValueError as exc:
        return UNKNOWN, f"UNKNOWN: bad address: {exc}"
    try:
        status = ruok(address, timeout=timeout)
    except TimeoutError as exc:
        return CRITICAL, f"Can't connect {exc or 'timed out'} (after {timeout:g} s)"
    except ConnectionError as exc:
        if exc.errno is None:  # connected, but no status came back
            return UNKNOWN, f"UNKNOWN: is {address} a ZEO server? {exc}"
        return CRITICAL, f"Can't connect {exc}"
    except OSError as exc:
        return CRITICAL, f"Can't connect {exc}"
    except Exception as exc:  # undecodable frames or JSON: not a ZEO status
        return UNKNOWN, f"UNKNOWN: bad status from {address}: {exc}"
    if not isinstance(status, dict) or not all(
        isinstance(figures, dict) for figures in status.values()
    ):
        return UNKNOWN, f"UNKNOWN: bad status from {address}: not a mapping"
    if not status:
        return WARNING, "No storages"
    metrics: list[str] = []
    if output_metrics:
        for storage_id, figures in sorted(status.items()):
            for name in GAUGES:
                metrics.append(_metric(storage_id, name, figures.get(name)))
        if status_path:
            metrics.extend(rates(status, status_path, unit))
    messages = [
        f"Empty storage {storage_id!r}"
        for storage_id, figures in sorted(status.items())
        if figures.get("last-transaction") == NO_TRANSACTION
    ]
    state = WARNING if messages else OK
    return state, format_result(messages or ["OK"], metrics)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zeo-nagios",
        description="Nagios check of a ZEO server through its ruok probe.",
        epilog="ADDRESS: host:port, [IPv6]:port, or a Unix socket path.",
    )
    parser.add_argument("address", metavar="ADDRESS")
    parser.add_argument(
        "-m", "--output-metrics", action="store_true", help="output metrics"
    )
    parser.add_argument(
        "-s", "--status-path", help="status file, needed to get rate metrics"
    )
    parser.add_argument(
        "-u",
        "--time-units",
        choices=sorted(SECONDS_PER_UNIT),
        default="minutes",
        help="time unit for rate metrics (default minutes)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT,
        metavar="SECONDS",
        help=f"CRITICAL when no answer comes within this (default {TIMEOUT:g})",
    )
    return parser


class _UnknownOnUsage(argparse.ArgumentParser):
    """A usage error is Nagios's UNKNOWN (3), not argparse's 2 (CRITICAL)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"zeo-nagios: {message}\n")
        sys.stdout.write(f"UNKNOWN: {message}\n")
        sys.exit(UNKNOWN)


def run(argv: Sequence[str]) -> int:
    """Check what *argv* names, print the plugin output, return the state."""
    parser = _parser()
    parser.__class__ = _UnknownOnUsage
    options = parser.parse_args(list(argv))
    try:
        state, text = check(
            options.address,
            options.output_metrics,
            options.status_path,
            options.time_units,
            options.timeout,
        )
    except OSError as exc:  # the status file
        state, text = UNKNOWN, f"UNKNOWN: cannot write the status file: {exc}"
    sys.stdout.write(text + "\n")
    return state


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``zeo-nagios`` console script."""
    sys.exit(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
