"""The ZEO 5 wire protocol as pure classes: bytes in, events out.

Nothing here touches a socket; :mod:`zeo.server` and :mod:`zeo.client` move
the bytes.  See ``anchors/zeo/PROTOCOL.md`` sections 1 to 3.
"""

from .framing import MAX_FRAME_SIZE, FrameDecoder, frame
from .marshal import (
    PROTOCOL_VERSION,
    client_decoder,
    decoder,
    encoder,
    reduce_exception,
    server_decoder,
)

__all__ = [
    "MAX_FRAME_SIZE",
    "PROTOCOL_VERSION",
    "FrameDecoder",
    "client_decoder",
    "decoder",
    "encoder",
    "frame",
    "reduce_exception",
    "server_decoder",
]
