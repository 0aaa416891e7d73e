"""The papa line protocol as pure classes: bytes in, events and bytes out.

Nothing here touches a socket (h11 style): the kernel's asyncio code feeds
received bytes to :class:`CommandStream` and writes the bytes its methods
return.  The framing is papa 1.0.6's, byte for byte:

* the kernel greets with :data:`BANNER`, which ends with the prompt ``"> "``;
* a request is one line; CR/LF and blanks around it are ignored;
* a reply is ``PAYLOAD`` + ``"\\n"`` (unless PAYLOAD already ends with one) +
  ``"> "``, an error is ``"Error: TEXT\\n> "``, a blank line gets ``"> "``;
* watch batches are ``out:NAME:TS:LEN\\n`` + LEN bytes, ``err:…`` likewise and
  ``closed:NAME:TS:CODE``, joined by ``"\\n"`` and closed by ``"\\n] "``.

One extension, off unless a connection asks for it with ``protocol
escapes``: backslash escapes in requests (``\\n``, ``\\\\``) and in value and
argument listings, so newlines and a leading ``Error:`` survive the trip.
"""

from __future__ import annotations

import dataclasses
import re

BANNER = b'Papa is home. Type "help" for commands.\n> '
PROMPT = b"> "
BATCH_END = b"] "

# The longest request line accepted.  Real papa has no limit at all, so one
# endless line eats the kernel's memory; a make process line with a large
# environment (env=os.environ) is a few tens of KB, so 1 MiB leaves room for
# any honest request while bounding what one connection can pin.
MAX_LINE_BYTES = 1024 * 1024


class ProtocolError(Exception):
    """A request the line protocol cannot accept (reported, never fatal)."""


# A complete request line, decoded and stripped like papa does.  A plain
# str: it is made for every request, and a class around it costs time.
Line = str


@dataclasses.dataclass(frozen=True)
class LineTooLong:
    """A request line longer than MAX_LINE_BYTES was received and discarded."""

    limit: int


class CommandStream:
    """The kernel side of one connection, without I/O.

    ``receive_data(bytes)`` returns the events found so far (``Line``, a
    str, or ``LineTooLong``); the ``reply``/``error``/``batch`` methods return the
    bytes to send.  An oversized line is reported once and skipped up to its
    newline, so the connection stays usable.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES):
        self.max_line_bytes = max_line_bytes
        self.escapes = False
        # False until "auth TOKEN" on a kernel with a token (papa.security).
        self.authenticated = True
        self.auth_failures = 0
        self._buffer = bytearray()
        self._discarding = False

    @property
    def buffered(self) -> bool:
        """True while part of a line (or a line being discarded) is held."""
        return bool(self._buffer) or self._discarding

    def receive_data(self, data: bytes) -> list[Line | LineTooLong]:
        """Feed received bytes; return the complete requests they finish."""
        if (
            not self._buffer
            and not self._discarding
            and data.endswith(b"\n")
            and data.count(b"\n") == 1
            and len(data) <= self.max_line_bytes + 1
        ):
            # The common case, one whole request per read: no buffering.
            return [data[:-1].decode("utf-8", errors="replace").strip()]
        events: list[Line | LineTooLong] = []
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self.max_line_bytes:
                    if not self._discarding:
                        events.append(LineTooLong(self.max_line_bytes))
                        self._discarding = True
                    self._buffer.clear()
                return events
            raw = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if self._discarding:
                self._discarding = False
                continue
            if len(raw) > self.max_line_bytes:
                events.append(LineTooLong(self.max_line_bytes))
                continue
            events.append(raw.decode("utf-8", errors="replace").strip())

    @staticmethod
    def reply(payload: str | None) -> bytes:
        """A successful reply: payload, a newline if missing, the prompt."""
        text = payload or "\n"
        if not text.endswith("\n"):
            text += "\n"
        return text.encode("utf-8") + PROMPT

    @staticmethod
    def error(message: str) -> bytes:
        """An error reply as papa writes it."""
        return CommandStream.reply(f"Error: {message}")

    def tokenize(self, line: str) -> list[str]:
        """Split a request line into words (see :func:`tokenize`)."""
        return tokenize(line, self.escapes)

    def quote(self, text: str) -> str:
        """Text for a listing line: escaped when this connection asked."""
        return escape(text) if self.escapes else text


def tokenize(line: str, escapes: bool = False) -> list[str]:
    """Split a request line into words the way papa 1.0.6 does.

    Words are separated by single spaces and empty words vanish.  A word
    ending in a backslash continues into the next one, the backslash standing
    for a space.  With ``escapes`` on, ``\\n`` inside a word is a newline,
    ``\\\\`` a backslash and ``\\E`` an ``E`` (see :func:`escape`), and an
    escaped space never ends a word, so words that begin or end with a space
    come back whole.
    """
    if "\\" not in line:  # no escape at all: papa's split, fast
        if line.isprintable():  # no whitespace but spaces: nothing to strip
            words = line.split(" ")
            return [word for word in words if word] if "" in words else words
        return [piece.strip() for piece in line.split(" ") if piece]
    if escapes:
        return [_escaped_word(raw) for raw in _ESCAPED_WORD.findall(line)]
    words: list[str] = []
    pending = ""
    for piece in line.split(" "):
        if not piece:
            continue
        if piece[-1] == "\\":
            pending += piece[:-1] + " "
            continue
        words.append((pending + piece).strip())
        pending = ""
    if pending:
        words.append(pending)
    return words


# A word in escapes mode: escape pairs and characters other than space and
# backslash, or a backslash ending the line.  An escaped space ends no word,
# so a word may begin or end with one ("a " or " a": papa's own rules would
# glue "a\\ " to the next word and strip " a").
_ESCAPED_WORD = re.compile(r"(?:\\.|[^ \\]|\\$)+", re.DOTALL)


def _escaped_word(raw: str) -> str:
    """One word of an escapes-mode line, stripped of unescaped whitespace."""
    word = raw.lstrip()  # leading whitespace is never part of an escape
    if word.endswith("\\") and (len(word) - len(word.rstrip("\\"))) % 2:
        word += " "  # a backslash ending the line escapes a space, as in papa
    kept = word.rstrip()
    if len(kept) < len(word) and kept.endswith("\\"):
        backslashes = len(kept) - len(kept.rstrip("\\"))
        if backslashes % 2:  # the first of the stripped characters was escaped
            kept = word[: len(kept) + 1]
    return unescape(kept)


_ESCAPES = {"n": "\n", "\\": "\\", " ": " ", "E": "E", "r": "\r"}


# One escape sequence that unescape() decodes (scanned left to right, so an
# escaped backslash is consumed before the character after it).
_KNOWN_ESCAPE = re.compile(r"\\([n\\ Er])")


def escape(text: str) -> str:
    """Escape text for the ``escapes`` mode of the protocol.

    Backslash, newline, carriage return and space are escaped, and so is a
    leading ``E`` so that no payload line can begin with ``Error:``.
    """
    if "\\" not in text and "\n" not in text and "\r" not in text and text[:1] != "E":
        return text.replace(" ", "\\ ") if " " in text else text
    out = (
        text.replace("\\", "\\\\")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace(" ", "\\ ")
    )
    if out.startswith("E"):
        out = "\\" + out
    return out


def unescape(text: str) -> str:
    """Undo :func:`escape`; an unknown escape keeps its backslash."""
    if "\\" not in text:
        return text
    if text.count("\\") == text.count("\\ "):
        return text.replace("\\ ", " ")  # only escaped spaces: the usual case
    return _KNOWN_ESCAPE.sub(_unescaped, text)


def _unescaped(match: re.Match) -> str:
    return _ESCAPES[match.group(1)]


def format_timestamp(timestamp: float) -> str:
    """A timestamp as papa writes it (``str(time.time())``)."""
    return repr(float(timestamp))


def output_record(kind: str, name: str, timestamp: float, data: bytes) -> bytes:
    """One ``out``/``err`` record of a watch batch (header and payload)."""
    header = f"{kind}:{name}:{format_timestamp(timestamp)}:{len(data)}\n"
    return header.encode("utf-8") + data


def closed_record(name: str, timestamp: float, exit_code: int) -> bytes:
    """The ``closed`` record of a watch batch."""
    return f"closed:{name}:{format_timestamp(timestamp)}:{exit_code}".encode()


def batch(records: list[bytes]) -> bytes:
    """A whole watch batch: records joined by newlines, then ``\\n] ``."""
    return b"".join(batch_parts(records))


def batch_parts(records: list) -> list[bytes]:
    """The pieces of a batch, for a vectored write without copying payloads.

    A record is bytes, or a list of byte strings (header and payload).
    """
    parts: list[bytes] = []
    for record in records:
        if isinstance(record, list):
            parts.extend(record)
        else:
            parts.append(record)
        parts.append(b"\n")
    parts.append(BATCH_END)
    return parts


def output_record_parts(kind: str, name: str, timestamp: float, data: bytes) -> list:
    """Like :func:`output_record`, as header and payload, for batch_parts."""
    header = f"{kind}:{name}:{format_timestamp(timestamp)}:{len(data)}\n"
    return [header.encode("utf-8"), data]
