"""Who may talk to a kernel: the address it binds, TLS, a token.

Whoever can send a kernel ``make process`` runs programs as the kernel's
user, so by default a kernel is reachable only from this host: 127.0.0.1 or
a Unix socket made 0600.  To serve other hosts (``host`` in ``<kernel>``)
it needs TLS (``<ssl>``: its certificate and key, and ``authenticate``, the
CA file client certificates must be signed by) or a token (``token-file``,
a file of mode 0600), or both; without either it refuses to start unless
``insecure on`` says so on purpose.  TLS without ``authenticate`` encrypts
but lets anyone in, so it does not count.

With a token every connection must send ``auth TOKEN`` before any command
but ``help``, ``protocol`` and ``quit``; three wrong tokens end the
connection.  Tokens are compared in constant time.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import os
import ssl
import stat
from typing import Any

from .errors import Error

LOOPBACK = "127.0.0.1"
# Wrong tokens one connection may send before it is closed.
AUTH_ATTEMPTS = 3


@dataclasses.dataclass(frozen=True)
class Access:
    """How a kernel is reached; the default is papa's: 127.0.0.1, no TLS."""

    host: str = LOOPBACK
    ssl_context: ssl.SSLContext | None = None
    token: str | None = None
    insecure: bool = False

    def check(self) -> None:
        """Refuse to serve other hosts without TLS or a token (see above)."""
        if is_loopback(self.host) or self.insecure:
            return
        if self.token is None and not self.certificates_required:
            raise Error(
                f"Refusing to listen on {self.host} without TLS client "
                f"certificates (<ssl> with authenticate) or a token "
                f"(token-file): anyone who can connect runs programs as this "
                f"user. Set 'insecure on' to do it anyway."
            )

    @property
    def certificates_required(self) -> bool:
        """TLS that lets in only clients with a certificate (encryption alone
        identifies nobody)."""
        context = self.ssl_context
        return context is not None and context.verify_mode == ssl.CERT_REQUIRED

    def token_matches(self, candidate: str) -> bool:
        if self.token is None:
            return True
        return hmac.compare_digest(candidate.encode(), self.token.encode())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it reaches further


def read_token(path: str) -> str:
    """The token in *path*; the file must be the user's alone (0600)."""
    try:
        status = os.stat(path)
        with open(path, encoding="utf-8") as file:
            token = file.read().strip()
    except OSError as exc:
        raise Error(f"Cannot read the token file: {exc}")
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise Error(
            f"The token file {path} can be read by others "
            f"(mode {stat.S_IMODE(status.st_mode):o}): make it 0600"
        )
    if len(token) < 16:
        raise Error(f"The token in {path} is too short: use 16 characters or more")
    if any(character.isspace() or character == "\\" for character in token):
        # Sent as one word before escapes are on: it could never match.
        raise Error(f"The token in {path} may hold no spaces or backslashes")
    return token


def server_context(
    certificate: str, key: str, authenticate: str | None
) -> ssl.SSLContext:
    """The kernel's TLS context; with *authenticate*, client certificates
    signed by that CA file are required."""
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate, key)
        if authenticate:
            context.load_verify_locations(authenticate)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise Error(f"Cannot set up TLS: {exc}")
    return context


def access_from_config(section: Any) -> Access:
    """The ``<kernel>`` section's access keys as an :class:`Access`."""
    ssl_section = getattr(section, "ssl", None)
    context = None
    if ssl_section is not None:
        context = server_context(
            ssl_section.certificate, ssl_section.key, ssl_section.authenticate
        )
    token = read_token(section.token_file) if section.token_file else None
    access = Access(section.host, context, token, section.insecure)
    access.check()
    return access
