"""The value commands: ``set``, ``get``, ``list values``, ``remove values``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Error
from ..protocol import escape
from .table import PATTERN_HELP, command, listing

if TYPE_CHECKING:
    from ..kernel import Kernel
    from ..protocol import CommandStream


@command(
    "list values",
    "[NAME…]",
    "List values by name",
    "List values as 'NAME VALUE' lines." + PATTERN_HELP,
    position=50,
)
def list_values(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> str:
    quote = stream.quote
    return listing(
        kernel.values, arguments, lambda name, value: f"{quote(name)} {quote(value)}"
    )


@command(
    "remove values",
    "NAME…",
    "Remove values by name",
    "Remove values.  '*' alone is refused, even among other names." + PATTERN_HELP,
    position=80,
)
def remove_values(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> None:
    kernel.remove_values(arguments)


@command(
    "set",
    "NAME [VALUE…]",
    "Set a named value",
    "Set a named value; with no value the name is cleared.\n"
    "Examples:\n    set count 5\n    set count",
    position=120,
)
def set_value(kernel: Kernel, stream: CommandStream, arguments: list[str]) -> None:
    if not arguments or arguments == ["*"]:
        raise Error("Value requires a name")
    value = " ".join(arguments[1:]) if len(arguments) > 1 else None
    kernel.set_value(arguments[0], value)


@command(
    "get",
    "NAME",
    "Get a named value",
    "Get a named value (an empty reply if it is not set).\nExample:\n    get count",
    position=130,
)
def get_value(
    kernel: Kernel, stream: CommandStream, arguments: list[str]
) -> str | None:
    if not arguments:
        raise Error("Value requires a name")
    value = kernel.values.get(arguments[0])
    if value is None or not stream.escapes:
        return value
    return escape(value)
