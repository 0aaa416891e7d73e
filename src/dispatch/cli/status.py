"""``dispatch status [--within SECONDS]``: the live service instances, as
zocalo's status monitor shows them: dispatch services (their records in
zeo) and python-workflows services on the ``zeo`` transport (their last
status broadcast)."""

from __future__ import annotations

import argparse
import time

from dispatch.cli import base
from dispatch.state import admin
from dispatch.state import transport as messages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--within",
        type=base.seconds,
        default=60.0,
        metavar="SECONDS",
        help="workflows services heard from this recently (default 60)",
    )
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    now = time.time()
    rows = []
    with base.dispatch_at(options.zeo) as dispatch:
        for instance in admin.instances_of(dispatch).values():
            if instance.stopped is not None:
                continue
            state = "stopping" if instance.stop_requested else "running"
            rows.append(
                (instance.service, instance.host, str(instance.pid), state, "-")
            )
        for status in messages.latest_statuses(dispatch, now, options.within):
            host, _dot, pid = str(status.get("host", "")).rpartition(".")
            text = str(status.get("statustext") or status.get("status"))
            heartbeat = f"{now - status['heartbeat']:.0f}s ago"
            rows.append((str(status.get("service")), host, pid, text, heartbeat))
    print(f"{'SERVICE':<20}  {'HOST':<24}  {'PID':>7}  {'STATUS':<12}  HEARTBEAT")
    for service, host, pid, state, heartbeat in rows:
        print(f"{service:<20}  {host:<24}  {pid:>7}  {state:<12}  {heartbeat}")
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="list live service instances",
    description="List live service instances (dispatch and workflows services).",
    add_arguments=add_arguments,
    run=run,
)
