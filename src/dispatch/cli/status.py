"""``dispatch status [--within SECONDS]``: the live service instances, as
zocalo's status monitor shows them: dispatch services (their records in
zeo: queue, claims held and heartbeat; stale when no heartbeat came within
SECONDS) and python-workflows services on the ``zeo`` transport (their last
status broadcast)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from dispatch.cli import base
from dispatch.state import transport as messages
from dispatch.state import views


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--within",
        type=base.seconds,
        default=60.0,
        metavar="SECONDS",
        help=(
            "services heard from this recently (default 60): older dispatch "
            "instances are listed as stale, older workflows services not at all"
        ),
    )
    base.add_zeo_option(parser)
    base.add_site_options(parser)


def _ago(now: float, then: float | None) -> str:
    return "-" if then is None else f"{max(0.0, now - then):.0f}s ago"


def _dispatch_rows(dispatch: Any, now: float, within: float) -> list[tuple]:
    return [
        (
            document["service"],
            document["host"],
            str(document["pid"]),
            document["state"],
            document["queue"],
            str(document["claims"]),
            _ago(now, document["heartbeat"]),
        )
        for document in views.live_instances(dispatch, now, within)
    ]


def run(options: argparse.Namespace) -> int:
    base.site_of(options)
    now = time.time()
    with base.dispatch_at(options.zeo) as dispatch:
        rows = _dispatch_rows(dispatch, now, options.within)
        for status in messages.latest_statuses(dispatch, now, options.within):
            host, _dot, pid = str(status.get("host", "")).rpartition(".")
            text = str(status.get("statustext") or status.get("status"))
            heartbeat = _ago(now, status["heartbeat"])
            service = str(status.get("service"))
            rows.append((service, host, pid, text, "-", "-", heartbeat))
    print(
        f"{'SERVICE':<20}  {'HOST':<24}  {'PID':>7}  {'STATUS':<12}  "
        f"{'QUEUE':<16}  {'CLAIMS':>6}  HEARTBEAT"
    )
    for service, host, pid, state, queue, held, heartbeat in rows:
        print(
            f"{service:<20}  {host:<24}  {pid:>7}  {state:<12}  "
            f"{queue:<16}  {held:>6}  {heartbeat}"
        )
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="list live service instances",
    description="List live service instances (dispatch and workflows services).",
    add_arguments=add_arguments,
    run=run,
)
