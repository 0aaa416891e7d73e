"""The client's side of one kernel connection: a blocking socket with a buffer.

It frames requests and replies as papa 1.0.6 does and negotiates the
``escapes`` extension when the kernel offers it (a real papa kernel answers
``Unknown command`` and the connection stays in papa's plain mode).

Lines that may be followed at once by watch batches (``Watching N``, the
process line of ``make process … watch=1``) are read with MSG_PEEK up to
their newline and no further, so no batch hides in our buffer where
``select()`` on the socket would never see it (papa 1.0.6 bug 5).
"""

from __future__ import annotations

import socket
import ssl

from .errors import AuthenticationError, Error, error_from_reply
from .protocol import escape, tokenize

# Below glibc's mmap threshold (128 KiB): recv() allocates its whole size
# for every call, and a larger buffer costs an mmap/munmap pair per reply.
RECEIVE_SIZE = 64 * 1024
# Large payloads (watch output) are read in steps of up to this much.
LARGE_RECEIVE_SIZE = 4 * 1024 * 1024
PROMPT_END = b"\n> "


def encode_request(words: list, escapes: bool) -> bytes:
    """One request line from words, for a connection in ``escapes`` mode or
    in papa 1.0.6's plain mode (empty words are skipped, as in papa)."""
    try:
        line = " ".join(words)
    except TypeError:
        words = [word if isinstance(word, str) else str(word) for word in words]
        line = " ".join(words)
    if "\\" not in line and "\n" not in line and "\r" not in line:
        # No backslash or line break: in either mode only the spaces in
        # words need escaping, and the kernel drops empty words itself.
        if line.count(" ") != len(words) - 1:
            line = " ".join([word.replace(" ", "\\ ") for word in words])
        return line.encode("utf-8") + b"\n"
    if escapes:
        encoded = [escape(word) for word in words if word]
    else:
        encoded = []
        for word in words:
            if not word:
                continue
            if "\n" in word or "\r" in word:
                raise Error(
                    "This kernel (papa 1.0.6?) cannot receive newlines in "
                    "arguments or values; use a zeopapa kernel"
                )
            encoded.append(word.replace(" ", "\\ "))
    return " ".join(encoded).encode("utf-8") + b"\n"


def option_value(value: object) -> str:
    """An option value the kernel reads back exactly.

    Quotes are added around empty values, values ending in a backslash and
    values that are already quoted, since the kernel strips one pair; this
    also works with a real papa kernel, which fails on ``key=``.
    """
    text = str(value)
    if (
        text == ""
        or text.endswith("\\")
        or (len(text) >= 2 and text[0] == text[-1] == '"')
    ):
        return f'"{text}"'
    return text


def append_options(words: list, **options: object) -> None:
    for key, value in options.items():
        if value is not None:
            words.append(f"{key}={option_value(value)}")


class ClientConnection:
    """A connected, greeted socket to a kernel."""

    def __init__(
        self,
        family: int,
        location,
        timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
    ):
        self.family = family
        self.location = location
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.buffer = b""
        self.escapes = False
        self.token = token
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(location)
            if ssl_context is not None:
                # A Unix socket has no host name: its kernel's certificate is
                # checked against "localhost".
                host = location[0] if isinstance(location, tuple) else "localhost"
                self.sock = ssl_context.wrap_socket(self.sock, server_hostname=host)
            self.read_reply()  # the banner
            self.sock.settimeout(None)
        except BaseException:
            self.sock.close()
            raise
        if family != socket.AF_UNIX:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def negotiate(self) -> None:
        """Log in when there is a token; switch on ``escapes`` if the kernel
        knows it."""
        if self.token is not None:
            self.send_words(["auth", self.token])
            try:
                self.read_reply()
            except Error as exc:
                raise AuthenticationError(
                    f"The kernel refused the token: {exc}"
                ) from None
        self.send_words(["protocol", "escapes"])
        try:
            self.escapes = self.read_reply() == "escapes on"
        except Error:
            self.escapes = False

    # -- sending ---------------------------------------------------------------
    def encode(self, words: list) -> bytes:
        """One request line from words (see :func:`encode_request`)."""
        return encode_request(words, self.escapes)

    def send_words(self, words: list) -> None:
        self.sock.sendall(self.encode(words))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def command(self, words: list) -> str:
        """Send one request and return its reply.

        The per-call path of every client method, so it is flat: a reply
        that arrives whole in one ``recv`` (nearly all of them) is decoded
        here without another call.
        """
        sock = self.sock
        sock.sendall(encode_request(words, self.escapes))
        if self.buffer:
            return self.read_reply()
        data = sock.recv(RECEIVE_SIZE)
        if data[-3:] != PROMPT_END:
            self.buffer = data
            if not data:
                raise Error("Lost connection")
            return self.read_reply()
        text = data[:-3].decode("utf-8", errors="replace")
        if text[:6] == "Error:":
            raise error_from_reply(text[7:])
        return text

    # -- receiving ---------------------------------------------------------------
    def _receive(self, size: int = RECEIVE_SIZE) -> bytes:
        data = self.sock.recv(size)
        if not data:
            raise Error("Lost connection")
        return data

    def read_reply(self) -> str:
        """A whole reply up to the prompt; ``Error:`` replies raise Error."""
        data = self.buffer
        if not data.endswith(PROMPT_END):
            receive = self.sock.recv
            while True:
                chunk = receive(RECEIVE_SIZE)
                if not chunk:
                    self.buffer = data
                    raise Error("Lost connection")
                data += chunk
                if data.endswith(PROMPT_END):
                    break
        self.buffer = b""
        text = data[:-3].decode("utf-8", errors="replace")
        if text.startswith("Error:"):
            raise error_from_reply(text[7:])
        return text

    def read_line_exactly(self) -> str:
        """One line, consuming nothing after its newline (see module doc)."""
        while b"\n" not in self.buffer:
            if self.buffer.startswith(b"Error:") and self.buffer.endswith(PROMPT_END):
                break
            peeked = self.sock.recv(RECEIVE_SIZE, socket.MSG_PEEK)
            if not peeked:
                raise Error("Lost connection")
            newline = peeked.find(b"\n")
            self.buffer += self._receive(len(peeked) if newline < 0 else newline + 1)
        if self.buffer.startswith(b"Error:"):
            return self.read_reply()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace")

    def read_line(self, alternate_end: bytes | None = None) -> str:
        """One line, or the unterminated ``alternate_end`` (``"] "``)."""
        while b"\n" not in self.buffer:
            if alternate_end and self.buffer.endswith(alternate_end):
                line, self.buffer = self.buffer, b""
                return line.decode("utf-8", errors="replace")
            self.buffer += self._receive()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", errors="replace")

    def read_exactly(self, size: int) -> bytes:
        """Exactly ``size`` bytes (large payloads without quadratic copies)."""
        if len(self.buffer) >= size:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
            return data
        parts = [self.buffer]
        missing = size - len(self.buffer)
        while missing > 0:
            chunk = self._receive(max(min(missing, LARGE_RECEIVE_SIZE), RECEIVE_SIZE))
            parts.append(chunk)
            missing -= len(chunk)
        data = b"".join(parts)
        data, self.buffer = data[:size], data[size:]
        return data

    def split(self, line: str) -> list[str]:
        """Words of a listing line (escaped words decoded in escapes mode)."""
        if self.escapes:
            return tokenize(line, escapes=True)
        return line.split(" ")

    def close(self) -> None:
        self.sock.close()
