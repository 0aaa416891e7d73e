"""The per-connection commit log: what a client sent between tpc_begin and vote.

A client's ``storea``/``undoa``/... calls are one-way and arrive before the
commit lock is taken, so the server only records them; ``vote`` replays the
log into the storage under the lock (PROTOCOL.md section 6).  Small
transactions stay in memory; past :data:`SPILL_SIZE` bytes the log moves to
an anonymous temporary file so that a client uploading a huge transaction
cannot make the server hold it all in RAM.
"""

import pickle
import tempfile

# Most transactions are a few KB.  4 MiB keeps every ordinary commit in memory
# (no file system call on the hot path) while bounding what one client can
# make the server hold in memory before the lock is even requested.
SPILL_SIZE = 4 << 20


class CommitLog:
    """An append-only list of ``(operation, args)`` that can be replayed.

    Replaying does not consume the log: with client-side conflict resolution
    the client sends corrected records and votes again, and the whole log is
    replayed a second time.
    """

    __slots__ = ("_entries", "_file", "_in_file", "size", "stores")

    def __init__(self):
        self._entries = []
        self._file = None
        self._in_file = 0
        self.size = 0  # approximate bytes of record data
        self.stores = 0  # number of operations

    def append(self, operation: str, args: tuple, nbytes: int = 0):
        self.stores += 1
        self.size += nbytes
        if self._file is None:
            self._entries.append((operation, args))
            if self.size > SPILL_SIZE:
                self._spill()
        else:
            self._file.seek(0, 2)
            pickle.dump((operation, args), self._file, 4)
            self._in_file += 1

    def _spill(self):
        self._file = tempfile.TemporaryFile(suffix=".commit-log")
        for entry in self._entries:
            pickle.dump(entry, self._file, 4)
        self._in_file = len(self._entries)
        self._entries = []

    def __iter__(self):
        if self._file is not None:
            self._file.seek(0)
            # Our own file, written by pickle.dump above: a plain Unpickler
            # is safe here, the data never came from the wire as a pickle.
            unpickler = pickle.Unpickler(self._file)
            for _ in range(self._in_file):
                yield unpickler.load()
        yield from self._entries

    def close(self):
        self._entries = []
        if self._file is not None:
            self._file.close()
            self._file = None
