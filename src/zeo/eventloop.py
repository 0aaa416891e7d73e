"""The one place zeo makes an event loop (client I/O thread and server).

uvloop's loop when uvloop is installed (its I/O costs less per message);
asyncio's own otherwise, which behaves the same.
"""

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is importable, else asyncio's default."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in our extras
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
