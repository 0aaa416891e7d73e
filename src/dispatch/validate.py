"""``dispatch validate FILE...``: check recipe files, like
``workflows.validate_recipe`` (usable as a pre-commit hook).

Exit status 0 when every file is a valid recipe, 1 when any is not (each
failure is printed as ``FILE: reason`` on stderr), 2 for a usage error.
"""

import argparse
import logging
import sys

from dispatch.recipe import RecipeError, validate_file

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def validate_main(argv):
    """Validate each recipe file in *argv*; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="dispatch validate",
        description="Check recipe JSON files (zocalo/workflows format).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="recipe files")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the failures"
    )
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit:
        return EXIT_OK if exit.code == 0 else EXIT_USAGE
    logging.basicConfig(format="dispatch validate: %(message)s", level=logging.WARNING)
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
    return EXIT_OK
