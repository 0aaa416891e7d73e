"""Run id and step as structured fields of every log record, and a JSON
lines formatter, so that logs go to Graylog or Loki ready for searching.

While a consumer hands a message to its handler, :func:`message_context`
names the run, step and message; :class:`ContextFilter` puts them on every
record logged meanwhile (``run_id``, ``step``, ``message_id``; None
outside), so a text format can use ``%(run_id)s`` and
:class:`JsonLinesFormatter` writes them as fields.  ``dispatch`` commands log
JSON lines when ``$DISPATCH_LOG_FORMAT`` is ``json``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

FORMAT_VARIABLE = "DISPATCH_LOG_FORMAT"
FIELDS = ("run_id", "step", "message_id")

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "dispatch_message", default=None
)


@contextmanager
def message_context(run_id: str, step: int, message_id: str) -> Iterator[None]:
    """Records logged inside carry *run_id*, *step* and *message_id*."""
    token = _current.set({"run_id": run_id, "step": step, "message_id": message_id})
    try:
        yield
    finally:
        _current.reset(token)


class ContextFilter(logging.Filter):
    """Adds the fields of the current message (or None) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _current.get() or {}
        for field in FIELDS:
            if not hasattr(record, field):
                setattr(record, field, current.get(field))
        return True


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger,
    message, the message fields and, for an exception, its traceback."""

    def __init__(self, command: str | None = None) -> None:
        super().__init__()
        self.command = command

    def format(self, record: logging.LogRecord) -> str:
        moment = time.gmtime(record.created)
        fraction = f"{record.created % 1:.3f}"[1:]
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", moment) + fraction + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.command:
            document["command"] = self.command
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                document[field] = value
        if record.exc_info:
            document["traceback"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def install(handler: logging.Handler, json_lines: bool, command: str | None) -> None:
    """Give *handler* the context filter, and the JSON formatter if asked."""
    handler.addFilter(ContextFilter())
    if json_lines:
        handler.setFormatter(JsonLinesFormatter(command))
