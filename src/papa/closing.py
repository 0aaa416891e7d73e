"""What ``with`` does to papa's client objects: close them on the way out.

Shared by :class:`~papa.client.Papa` and :class:`~papa.watcher.Watcher`,
which papa 1.0.6 both made context managers.
"""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosedOnExit:
    """A ``with`` block closes the object when it ends, however it ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
