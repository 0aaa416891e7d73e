"""Sized frames: a big-endian uint32 length followed by that many bytes."""

import struct

from ..exceptions import ProtocolError

# ZEO enforces no maximum.  We refuse frames over 256 MiB: a ZODB record or a
# blob chunk is far below that (blob chunks are 59,000 bytes, records are
# rarely over a few MB), and a garbage length word must not make a server
# buffer gigabytes before it notices.
MAX_FRAME_SIZE = 256 << 20

_size = struct.Struct(">I")
_pack_size = _size.pack
_unpack_size = _size.unpack_from


def frame(payload: bytes) -> bytes:
    """Return *payload* as one sized frame."""
    return _pack_size(len(payload)) + payload


class FrameDecoder:
    """Split a byte stream into frame payloads.

    ``feed(data)`` returns the list of complete payloads the new data
    finished (often one, possibly none or several).  A length word above
    *max_size* raises :class:`ProtocolError`; the caller then closes the
    connection.
    """

    __slots__ = ("_buf", "_need", "max_size")

    def __init__(self, max_size: int = MAX_FRAME_SIZE) -> None:
        # Leftover bytes of an unfinished frame.  A bytearray so that a large
        # record arriving in many small reads is appended to, not re-copied.
        self._buf = bytearray()
        self._need = 0  # 0: waiting for a size word; else payload length
        self.max_size = max_size

    @property
    def pending(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray) -> list[bytes]:
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        need = self._need
        while True:
            if not need:
                if end - pos < 4:
                    break
                (need,) = _unpack_size(buf, pos)
                pos += 4
                if need > self.max_size:
                    self._buf = bytearray()
                    self._need = 0
                    raise ProtocolError(
                        f"frame of {need} bytes exceeds the limit of "
                        f"{self.max_size} bytes"
                    )
                if need == 0:
                    out.append(b"")
                    continue
            if end - pos < need:
                break
            out.append(bytes(buf[pos : pos + need]))
            pos += need
            need = 0
        self._need = need
        if buf is self._buf:
            del self._buf[:pos]
        elif pos < end:
            self._buf = bytearray(buf[pos:])
        return out
