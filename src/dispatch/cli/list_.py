"""``dispatch list [--state S] [--recipe NAME] [--age 1h] [--page N]
[--size N | --all]``: runs newest first with their status, read from the
run index as the web console's runs list is (the same
:func:`dispatch.state.views.list_runs`)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from dispatch.cli import base
from dispatch.state import views

# Runs per page unless --size or --all says otherwise.
PAGE_SIZE = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", choices=views.RUN_STATES, help="only runs in it")
    parser.add_argument("--recipe", metavar="NAME", help="only runs of this recipe")
    parser.add_argument(
        "--age", metavar="AGE", help="only runs started this recently (90s, 1h, 2d)"
    )
    parser.add_argument("--page", type=int, default=1, help="page number, from 1")
    parser.add_argument(
        "--size", type=int, default=PAGE_SIZE, help=f"runs a page (default {PAGE_SIZE})"
    )
    parser.add_argument("--all", action="store_true", help="every run, one page")
    parser.add_argument("--json", action="store_true", help="one JSON page")
    base.add_zeo_option(parser)


def run(options: argparse.Namespace) -> int:
    try:
        since = (
            None if options.age is None else time.time() - views.parse_age(options.age)
        )
    except ValueError as error:
        raise base.CommandError(str(error), base.EXIT_USAGE) from None
    if options.page < 1 or options.size < 1:
        raise base.CommandError("--page and --size start at 1", base.EXIT_USAGE)
    with base.dispatch_at(options.zeo) as dispatch:
        size = max(1, len(dispatch.runs)) if options.all else options.size
        page = 1 if options.all else options.page
        found = views.list_runs(
            dispatch, options.state, None, page, size, options.recipe, since
        )
    if options.json:
        print(json.dumps(_page_document(found), indent=2, default=str))
        return base.EXIT_OK
    print(f"{'RUN':<24}  {'RECIPE':<16}  {'STATUS':<9}  {'CREATED':<19}  STEPS DONE")
    for row in found.rows:
        done = f"{row['steps_done']}/{row['steps']}"
        print(
            f"{row['run']:<24}  {row['name'] or '-':<16}  {row['status']:<9}  "
            f"{base.when(row['created']):<19}  {done}"
        )
    if found.has_next:
        print(f"(more: --page {found.page + 1})")
    return base.EXIT_OK


def _page_document(found: views.RunPage) -> dict[str, Any]:
    return {
        "runs": found.rows,
        "page": found.page,
        "size": found.size,
        "has_next": found.has_next,
        "total": found.total,
    }


COMMAND = base.Command(
    __name__,
    summary="list runs and their status [--state, --recipe, --age]",
    description="List runs, newest first, a page at a time.",
    add_arguments=add_arguments,
    run=run,
)
