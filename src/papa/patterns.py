"""papa's name patterns: which sockets, values or processes a request means.

One function shared by the command handlers (listing) and the kernel's tables
(removing, cancelling), so that ``list processes worker.*`` and ``remove
processes worker.*`` can never disagree about the names they mean.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import Error


def match(
    table: Mapping[str, object], patterns: list[str], required: bool = False
) -> list[str]:
    """Names in ``table`` matching papa patterns, sorted.

    No pattern, or ``*``, matches everything; ``prefix*`` matches by prefix;
    anything else is an exact name, and with ``required`` a missing exact
    name is an error (``NAME not found``), raised before anything is done.
    """
    if not patterns:
        return sorted(table)
    matched: set[str] = set()
    for pattern in patterns:
        if pattern.endswith("*"):
            prefix = pattern[:-1]
            matched.update(name for name in table if name.startswith(prefix))
        elif pattern in table:
            matched.add(pattern)
        elif required:
            raise Error(f"{pattern} not found")
    return sorted(matched)
