"""The persistent client cache file: its format, reading and locking.

The layout (``ZPC1``): a header (magic, last tid, record count), then per
record its oid, start tid, end tid (zero: current), data length and data,
then ``ZPCE`` and the CRC-32 of everything before it.  A file that does not
parse raises ``ValueError`` saying where it went wrong.
"""

import struct
import zlib

import zc.lockfile

from ..exceptions import CacheError

ZERO_TID = b"\0" * 8

FILE_MAGIC = b"ZPC1"
FILE_END = b"ZPCE"  # followed by the CRC-32 of everything before it
_crc = struct.Struct(">I")
_header = struct.Struct(">4s8sQ")  # magic, last tid, record count
_record_header = struct.Struct(">8s8s8sI")  # oid, start, end (zero: current), len


def _parse_cache_file(content):
    """Return ``(last_tid or None, [(oid, start, end, data)])`` or raise."""
    trailer = len(FILE_END) + _crc.size
    if len(content) < _header.size + trailer:
        raise ValueError("file is too short")
    magic, last_tid, count = _header.unpack_from(content, 0)
    if magic != FILE_MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    limit = len(content) - trailer
    if content[limit : limit + len(FILE_END)] != FILE_END:
        raise ValueError("end marker missing (the file was truncated)")
    (checksum,) = _crc.unpack_from(content, limit + len(FILE_END))
    if zlib.crc32(memoryview(content)[:limit]) != checksum:
        raise ValueError("checksum mismatch")
    position = _header.size
    records = []
    for _ in range(count):
        if position + _record_header.size > limit:
            raise ValueError("record header runs past the end")
        oid, start, end, length = _record_header.unpack_from(content, position)
        position += _record_header.size
        if position + length > limit:
            raise ValueError("record data runs past the end")
        data = content[position : position + length]
        position += length
        if end != ZERO_TID and end <= start:
            raise ValueError("record with an empty tid range")
        records.append((oid, start, None if end == ZERO_TID else end, data))
    if position != limit:
        raise ValueError("trailing bytes after the last record")
    return (None if last_tid == ZERO_TID else last_tid), records


def _lock_cache_file(path):
    lock_path = f"{path}.lock"
    try:
        return zc.lockfile.LockFile(lock_path)
    except zc.lockfile.LockError:
        raise CacheError(
            f"the client cache file {path} is in use by another process "
            f"(lock file {lock_path}). A persistent cache cannot be shared: "
            f"give each process its own cache file (the `cache` or `client` "
            f"option) or stop the other process."
        ) from None
