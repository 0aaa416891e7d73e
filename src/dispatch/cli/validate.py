"""``dispatch validate FILE...``: check recipe files, like
``workflows.validate_recipe`` (usable as a pre-commit hook).

Exit status 0 when every file is a valid recipe, 1 when any is not (each
failure is printed as ``FILE: reason`` on stderr), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys

from dispatch.cli import base
from dispatch.state.recipe import RecipeError, validate_file

logger = logging.getLogger(__name__)

# Any file is not a valid recipe.
EXIT_INVALID = base.EXIT_FAILED


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="recipe files")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the failures"
    )


def run(arguments: argparse.Namespace) -> int:
    """Validate each recipe file named; returns the exit status."""
    failures = 0
    for path in arguments.files:
        try:
            validate_file(path)
        except RecipeError as error:
            failures += 1
            print(f"{path}: {error}", file=sys.stderr)
        except OSError as error:
            failures += 1
            print(f"{path}: cannot read: {error.strerror or error}", file=sys.stderr)
        except UnicodeDecodeError as error:
            failures += 1
            print(f"{path}: not UTF-8 text: {error}", file=sys.stderr)
        else:
            if not arguments.quiet:
                print(f"{path}: valid")
    if failures:
        print(
            f"{failures} of {len(arguments.files)} recipe file(s) invalid",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return base.EXIT_OK


COMMAND = base.Command(
    __name__,
    summary="check recipe JSON files (exit 1 if any is invalid)",
    description="Check recipe JSON files (zocalo/workflows format).",
    add_arguments=add_arguments,
    run=run,
    # Only the recipe's own warnings are printed, without a level.
    log_format="dispatch validate: %(message)s",
)
