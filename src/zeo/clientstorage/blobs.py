"""Client side of blobs: the local blob cache, downloads, uploads, pruning.

Two modes (PROTOCOL.md section 10):

* **non-shared** (default): ``blob_dir`` is a private cache in ZEO's
  ``zeocache`` layout: ``<u64(oid) % 997>/<u64(oid) // 997>.<tid hex>.blob``
  with a ``.layout`` file saying ``zeocache``, so a directory written by real
  ZEO can be reused and vice versa.  A miss downloads the blob with
  ``sendBlob``; the server streams ``receiveBlobStart/Chunk/Stop`` callbacks
  that the I/O thread writes to ``<name>.dl``, renamed into place and made
  read-only when complete.  A ``.lock`` file in the oid directory keeps two
  processes sharing the cache from downloading the same blob at once.
  With ``blob_cache_size`` a pruning thread deletes the least recently
  accessed files (``loadBlob`` updates the access time) once
  ``blob_cache_size_check`` percent of the size has been downloaded.
* **shared** (``shared_blob_dir=True``): ``blob_dir`` is the server's own
  blob directory (a network file system); reads go straight to it and
  commits put the file there under a ``.tmp`` name and send
  ``storeBlobShared``.
"""

import logging
import os
import stat
import tempfile
import threading
import time

import zc.lockfile
import ZODB.blob
from ZODB.POSException import POSKeyError
from ZODB.utils import u64

logger = logging.getLogger(__name__)

# Blob chunk size on the wire, as ZEO: large enough to amortise per-message
# cost, small enough that a chunk never delays other traffic for long.
BLOB_CHUNK_SIZE = 59000

CACHE_LAYOUT = "zeocache"
LAYOUT_BUCKETS = 997


class ZeoCacheLayout:
    """ZEO's ``zeocache`` blob layout (file names only; see module doc)."""

    size = LAYOUT_BUCKETS

    def oid_to_path(self, oid):
        return str(u64(oid) % self.size)

    def getBlobFilePath(self, oid, tid):
        base, bucket = divmod(u64(oid), self.size)
        return os.path.join(str(bucket), f"{base}.{tid.hex()}{ZODB.blob.BLOB_SUFFIX}")


# Register the layout so ZODB's FilesystemHelper tools recognise the
# ``.layout`` marker.  Real ZEO registers the same name; either will do.
ZODB.blob.LAYOUTS.setdefault(CACHE_LAYOUT, ZeoCacheLayout())


def _make_read_only(path):
    os.chmod(path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


class BlobCache:
    """Where blob files live on this client (see module docstring)."""

    def __init__(self, blob_dir, shared=False, cache_size=None, size_check=10):
        self.blob_dir = os.path.abspath(blob_dir)
        self.shared = shared
        self.cache_size = cache_size
        self.size_check = size_check
        self._download_lock = threading.Lock()
        self._downloads = {}  # (oid, serial) -> open file (I/O thread)
        self._bytes_loaded = 0
        self._pruning = threading.Lock()
        if shared:
            self.helper = ZODB.blob.FilesystemHelper(self.blob_dir)
            self.helper.create()
            self._temporary = self.helper.temp_dir
        else:
            self._create_cache_dir()
            self._temporary = os.path.join(self.blob_dir, "tmp")
            os.makedirs(self._temporary, exist_ok=True)
        self.layout = ZeoCacheLayout()

    def _create_cache_dir(self):
        os.makedirs(self.blob_dir, exist_ok=True)
        marker = os.path.join(self.blob_dir, ".layout")
        if os.path.exists(marker):
            with open(marker) as f:
                found = f.read().strip()
            if found != CACHE_LAYOUT:
                raise ValueError(
                    f"blob cache directory {self.blob_dir} uses the {found!r} "
                    f"layout; a non-shared blob cache needs {CACHE_LAYOUT!r}. "
                    f"Use an empty directory, or shared_blob_dir=True if this "
                    f"is the server's blob directory."
                )
        else:
            with open(marker, "w") as f:
                f.write(CACHE_LAYOUT)

    def temporary_directory(self):
        return self._temporary

    # -- paths ------------------------------------------------------------------

    def path(self, oid, serial):
        if self.shared:
            return self.helper.getBlobFilename(oid, serial)
        return os.path.join(self.blob_dir, self.layout.getBlobFilePath(oid, serial))

    # -- reading ------------------------------------------------------------------

    def load(self, oid, serial, io):
        """Return the path of blob (oid, serial), downloading it if needed."""
        path = self.path(oid, serial)
        if os.path.exists(path):
            self._accessed(path)
            return path
        if self.shared:
            raise POSKeyError(f"no blob file {path} in the shared blob directory")
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        with self._download_lock:
            lock = _wait_for_file_lock(os.path.join(directory, ".lock"))
            try:
                if not os.path.exists(path):
                    io.call("sendBlob", oid, serial, retry=True)
            finally:
                lock.close()
        if not os.path.exists(path):
            raise POSKeyError(f"no blob for oid {oid.hex()} tid {serial.hex()}")
        self._accessed(path)
        return path

    def _accessed(self, path):
        try:
            now = time.time()
            os.utime(path, (now, os.stat(path).st_mtime))
        except OSError:
            pass  # pruned meanwhile; the caller opens it and retries

    # -- download callbacks (I/O thread) ------------------------------------------

    def receive_start(self, oid, serial):
        path = self.path(oid, serial)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._downloads[(oid, serial)] = open(f"{path}.dl", "wb")

    def receive_chunk(self, oid, serial, chunk):
        f = self._downloads.get((oid, serial))
        if f is not None:
            f.write(chunk)
            self._bytes_loaded += len(chunk)

    def receive_stop(self, oid, serial):
        f = self._downloads.pop((oid, serial), None)
        if f is None:
            return
        f.close()
        path = self.path(oid, serial)
        os.replace(f.name, path)
        _make_read_only(path)
        self._maybe_prune()

    # -- writing ----------------------------------------------------------------

    def send(self, io, protocol, oid, serial, data, blobfilename, transaction_id):
        """Upload a blob for a commit (see module docstring for the two modes)."""
        if self.shared:
            directory = self.helper.getPathForOID(oid, create=True)
            fd, target = tempfile.mkstemp(suffix=".tmp", dir=directory)
            os.close(fd)
            ZODB.blob.rename_or_copy_blob(blobfilename, target, chmod=False)
            io.send(
                "storeBlobShared",
                oid,
                serial,
                data,
                os.path.basename(target),
                transaction_id,
                protocol=protocol,
            )
            return None
        io.send("storea", oid, serial, data, transaction_id, protocol=protocol)
        io.send("storeBlobStart", protocol=protocol)
        with open(blobfilename, "rb") as f:
            while chunk := f.read(BLOB_CHUNK_SIZE):
                io.send("storeBlobChunk", chunk, protocol=protocol)
        io.send("storeBlobEnd", oid, serial, data, transaction_id, protocol=protocol)
        return blobfilename

    def committed(self, oid, tid, filename):
        """Move an uploaded blob file into the cache under its new tid."""
        if self.shared or filename is None:
            return
        target = self.path(oid, tid)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            ZODB.blob.rename_or_copy_blob(filename, target, chmod=True)
        except OSError:
            logger.warning("could not keep blob %s in the cache", filename)
        self._bytes_loaded += _size(target)
        self._maybe_prune()

    def clear(self):
        """Delete every cached blob file (after a pack: some may be gone on
        the server, and a stale cache must not keep serving them)."""
        if not self.shared:
            self.prune(target=0)

    # -- size control ------------------------------------------------------------

    def _maybe_prune(self):
        if not self.cache_size or self.shared:
            return
        if self._bytes_loaded < self.cache_size * self.size_check / 100:
            return
        if not self._pruning.acquire(blocking=False):
            return
        self._bytes_loaded = 0
        thread = threading.Thread(target=self._prune, name="zeo blob cache pruning")
        thread.daemon = True
        thread.start()

    def _prune(self):
        try:
            self.prune()
        except Exception:
            logger.exception("pruning the blob cache %s failed", self.blob_dir)
        finally:
            self._pruning.release()

    def prune(self, target=None):
        """Delete least recently accessed blobs until below *target* bytes
        (default: ``size - size * check / 100``); return the bytes left."""
        if target is None:
            target = self.cache_size - self.cache_size * self.size_check / 100
        files = []
        total = 0
        for directory, _, names in os.walk(self.blob_dir):
            if directory == self._temporary:
                continue
            for name in names:
                if not name.endswith(ZODB.blob.BLOB_SUFFIX):
                    continue
                path = os.path.join(directory, name)
                try:
                    status = os.stat(path)
                except OSError:
                    continue
                files.append((status.st_atime, status.st_size, path))
                total += status.st_size
        files.sort()
        for _, size, path in files:
            if total <= target:
                break
            directory = os.path.dirname(path)
            try:
                lock = zc.lockfile.LockFile(os.path.join(directory, ".lock"))
            except zc.lockfile.LockError:
                continue  # a download is in progress there
            try:
                os.chmod(path, stat.S_IWUSR | stat.S_IRUSR)
                os.remove(path)
                total -= size
            except OSError:
                pass
            finally:
                lock.close()
        return total


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _wait_for_file_lock(path, timeout=300.0):
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            return zc.lockfile.LockFile(path)
        except zc.lockfile.LockError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)  # another process downloads this blob
            delay = min(delay * 2, 0.1)
