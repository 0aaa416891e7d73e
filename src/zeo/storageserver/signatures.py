"""Old home of the argument checks; they now live in :mod:`zeo.protocol.signatures`."""

from ..protocol.signatures import CHECKERS, KINDS, SIGNATURES

__all__ = ["CHECKERS", "KINDS", "SIGNATURES"]
