"""Client cache traces in ZEO's format, and a small report on one.

Set ``ZEO_CACHE_TRACE`` before a client starts, as with ZEO:

- to any value (``1``), a client with a persistent cache appends its trace
  to ``<cache file>.trace`` (ZEO's name; an in-memory cache is not traced);
- to a file name (with a ``/`` or ending in ``.trace``), every client of
  the process, in memory or not, appends to that file.

Each record is ZEO's (``ZEO/scripts/cache_stats.py`` documents it): 26
bytes ``>IiH8s8s`` (time in seconds, data length << 8 | code, oid length,
start tid, end tid) followed by the oid, so ZEO's own ``cache_stats`` and
``cache_simul`` read our traces.  The codes used are ZEO's: ``0x00`` trace
opened, ``0x20``/``0x22`` load of the current revision missed/hit,
``0x24``/``0x26`` load before a tid missed/hit, ``0x52``/``0x54`` store of a
current/non-current record, ``0x10`` invalidation of an uncached object,
``0x1C`` invalidation that keeps the old record as non-current, ``0x1E`` a
record dropped.  With tracing off the cache pays one attribute check.

``python -m zeo.cachetrace FILE [FILE...]`` prints what a trace says: the
loads, hits and hit rate, stores, invalidations, distinct objects and the
time it covers.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

logger = logging.getLogger(__name__)

RECORD = struct.Struct(">IiH8s8s")
ZERO_TID = b"\0" * 8
#: The data length shares a signed 32-bit field with the code: 23 bits.
MAX_DATA_LENGTH = 0x7FFFFF

OPENED = 0x00
INVALIDATE_MISS, INVALIDATE_KEEP, INVALIDATE_DROP = 0x10, 0x1C, 0x1E
LOAD_MISS, LOAD_HIT = 0x20, 0x22
LOAD_BEFORE_MISS, LOAD_BEFORE_HIT = 0x24, 0x26
STORE_CURRENT, STORE_NONCURRENT = 0x52, 0x54

HITS = frozenset({LOAD_HIT, LOAD_BEFORE_HIT})
MISSES = frozenset({LOAD_MISS, LOAD_BEFORE_MISS})
#: Invalidations that found the object cached (ZEO's ``inv(h)``).
INVALIDATIONS = frozenset({INVALIDATE_KEEP, INVALIDATE_DROP})
STORES = frozenset({STORE_CURRENT, STORE_NONCURRENT})


class CacheTrace:
    """An open trace file; ``write`` appends one record."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[bytes] | None = open(path, "ab")
        self.write(OPENED)

    def write(
        self,
        code: int,
        oid: bytes = b"",
        tid: bytes | None = None,
        end_tid: bytes | None = None,
        data_length: int = 0,
    ) -> None:
        if self._file is None:
            return
        encoded = (min(data_length, MAX_DATA_LENGTH) << 8) | code
        header = RECORD.pack(
            int(time.time()), encoded, len(oid), tid or ZERO_TID, end_tid or ZERO_TID
        )
        self._file.write(header + oid)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def open_trace(cache_path: str | None) -> CacheTrace | None:
    """The trace ``ZEO_CACHE_TRACE`` asks for a cache at *cache_path*, if any.

    A trace that cannot be opened is logged and skipped: tracing never stops
    a client.
    """
    setting = os.environ.get("ZEO_CACHE_TRACE", "")
    if not setting:
        return None
    if "/" in setting or setting.endswith(".trace"):
        path = setting
    elif cache_path:
        path = f"{cache_path}.trace"
    else:
        logger.info(
            "ZEO_CACHE_TRACE is set but this cache is in memory: name a trace "
            "file (ZEO_CACHE_TRACE=/path/x.trace) to trace it"
        )
        return None
    try:
        trace = CacheTrace(path)
    except OSError as exc:
        logger.warning("cannot write the cache trace %s (%s)", path, exc)
        return None
    logger.info("tracing the client cache to %s", path)
    return trace


# -- reading ---------------------------------------------------------------------


def read_records(stream: IO[bytes]) -> Iterator[tuple[int, int, int, bytes, bytes]]:
    """Yield ``(time, code, data length, oid, start tid)`` for each record.

    Raise ``ValueError`` for a record cut short (a trace being written may
    end with one: stop reading there).
    """
    while True:
        header = stream.read(RECORD.size)
        if not header:
            return
        if len(header) < RECORD.size:
            raise ValueError(f"a record is cut short after {len(header)} bytes")
        timestamp, encoded, oid_length, tid, _end_tid = RECORD.unpack(header)
        oid = stream.read(oid_length)
        if len(oid) < oid_length:
            raise ValueError("a record's oid is cut short")
        yield timestamp, encoded & 0x7E, encoded >> 8, oid, tid


def summarize(stream: IO[bytes]) -> dict[str, Any]:
    """What a trace says: counts by kind, hit rate, objects, time span."""
    codes: collections.Counter[int] = collections.Counter()
    oids: set[bytes] = set()
    first = last = None
    problem = None
    try:
        for timestamp, code, _length, oid, _tid in read_records(stream):
            codes[code] += 1
            if oid:
                oids.add(oid)
            first = timestamp if first is None else first
            last = timestamp
    except ValueError as exc:
        problem = str(exc)
    hits = sum(codes[code] for code in HITS)
    loads = hits + sum(codes[code] for code in MISSES)
    return {
        "records": sum(codes.values()),
        "opened": codes[OPENED],
        "loads": loads,
        "hits": hits,
        "misses": loads - hits,
        "hit_rate": hits / loads if loads else None,
        "stores": sum(codes[code] for code in STORES),
        "invalidations": sum(codes[code] for code in INVALIDATIONS),
        "objects": len(oids),
        "seconds": (last - first) if first is not None and last is not None else 0,
        "truncated": problem,
    }


def format_summary(name: str, summary: dict[str, Any]) -> str:
    rate = summary["hit_rate"]
    lines = [
        f"{name}: {summary['records']} records over {summary['seconds']} s, "
        f"{summary['opened']} client start(s)",
        f"  loads {summary['loads']}: hits {summary['hits']}, misses "
        f"{summary['misses']}, hit rate "
        + ("n/a" if rate is None else f"{100 * rate:.1f} %"),
        f"  stores {summary['stores']}, invalidations {summary['invalidations']}, "
        f"objects {summary['objects']}",
    ]
    if summary["truncated"]:
        lines.append(f"  the trace ends early: {summary['truncated']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m zeo.cachetrace FILE...``: print each trace's summary."""
    parser = argparse.ArgumentParser(
        prog="python -m zeo.cachetrace",
        description="Summarize client cache traces (ZEO_CACHE_TRACE files).",
    )
    parser.add_argument("traces", nargs="+", metavar="FILE")
    options = parser.parse_args(argv)
    status = 0
    for name in options.traces:
        try:
            with open(name, "rb") as stream:
                sys.stdout.write(format_summary(name, summarize(stream)) + "\n")
        except OSError as exc:
            sys.stderr.write(f"cannot read {name}: {exc}\n")
            status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
