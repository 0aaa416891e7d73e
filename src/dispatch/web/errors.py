"""The one way a handler refuses a request: :class:`ConsoleError`, turned
into a 4xx answer with a clear message (JSON under ``/api/``, a page
elsewhere) by the error middleware of :mod:`dispatch.web.app`."""

from __future__ import annotations

from collections.abc import Mapping


class ConsoleError(Exception):
    """A request the console refuses: an HTTP *status* and a message that
    says what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ConsoleError:
    return ConsoleError(400, message)


def not_found(message: str) -> ConsoleError:
    return ConsoleError(404, message)


def query_integer(
    query: Mapping[str, str], name: str, default: int, low: int, high: int
) -> int:
    """The integer query field *name* (*default* when absent), between
    *low* and *high*; a 400 otherwise."""
    text = query.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit():
        raise bad_request(f"{name} must be a whole number, not {text!r}")
    value = int(text)
    if not low <= value <= high:
        raise bad_request(f"{name} must be between {low} and {high}, not {value}")
    return value
