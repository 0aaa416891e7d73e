"""Packing with a choice of garbage collection, whatever wraps the storage.

FileStorage takes ``pack(t, referencesf, gc=...)``, but ZODB's
``BlobStorage`` wrapper (``<blobstorage>``) only passes ``(t, referencesf)``
to the storage it wraps, which then packs with its configured ``pack-gc``.
For a ``gc`` choice to reach it we set that setting for the duration of the
pack.  All packs of this process go through one lock so that no other pack
runs while the setting is changed.
"""

import threading

from ZODB.blob import BlobStorage
from ZODB.serialize import referencesf

_pack_lock = threading.Lock()


def pack(storage, packtime, gc=None):
    """Pack *storage* as of *packtime*; ``gc=None`` uses its own setting."""
    with _pack_lock:
        if gc is None:
            return storage.pack(packtime, referencesf)
        # A proxy: isinstance() sees the wrapped class, type() the wrapper.
        if issubclass(type(storage), BlobStorage):
            # BlobStorage keeps the storage it wraps in a private attribute.
            inner = storage._BlobStorage__storage
            if not hasattr(inner, "_pack_gc"):
                raise TypeError(
                    f"the storage inside this <blobstorage> "
                    f"({type(inner).__name__}) cannot choose garbage collection"
                )
            saved = inner._pack_gc
            inner._pack_gc = bool(gc)
            try:
                return storage.pack(packtime, referencesf)
            finally:
                inner._pack_gc = saved
        try:
            return storage.pack(packtime, referencesf, gc=bool(gc))
        except TypeError as exc:
            raise TypeError(
                f"this storage cannot choose garbage collection at pack: {exc}"
            )
