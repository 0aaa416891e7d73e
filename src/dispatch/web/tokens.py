"""The login token's file: made by ``dispatch web --new-token``, read by
the console at start.  Apart from :mod:`dispatch.web.auth` (which needs
aiohttp) so that the command can make a token without importing it."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class TokenFileError(ValueError):
    """The token file is unsafe or unreadable; the message says why."""


def new_token(path: str | os.PathLike[str]) -> str:
    """Make a new token, write it to *path* (mode 0600, replacing any old
    one, which stops working) and return it."""
    token = secrets.token_urlsafe(32)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".new")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as stream:
        stream.write(token + "\n")
    os.replace(temporary, target)
    return token


def read_token(path: str | os.PathLike[str]) -> str | None:
    """The token in *path*, None when there is no such file (then nothing
    can act until one is made); :class:`TokenFileError` when others may
    read it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenFileError(
            f"{path} may be read by others (mode {stat.S_IMODE(mode):04o}): "
            f"chmod 600 it, or make a new one with `dispatch web --new-token`"
        )
    token = Path(path).read_text(encoding="ascii").strip()
    if not token:
        raise TokenFileError(f"{path} is empty: run `dispatch web --new-token`")
    return token
