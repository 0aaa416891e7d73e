"""Soak: ZODB's race checks riding through server restarts.

``python bench/soak/zeo_ridethrough.py --restarts 100`` (``make soak``).
Worker processes run the checks of ``ZODB.tests.racetest`` in their style,
with the models ZODB ships (``T2ObjectsInc``: two objects incremented
together; ``T2ObjectsInc2Phase``: incremented in lock-step, so that a lost
invalidation shows on the *next* transaction) plus one of ours over six
objects.  Each thread loops as racetest's ``T`` workers do: begin, open, drop
half of the objects from the connection cache so that they are loaded from
the storage while the other half comes from the caches, assert the model's
invariant, and now and then run the model's ``next`` step and commit.  The
first two threads of a process share one ``DB`` (racetest's "load/open vs
local invalidation"), the others have a client each ("load vs external
invalidation").  ZODB's drivers themselves cannot be reused: they run a
fixed number of iterations inside a unittest and treat any
``ClientDisconnected`` as a failure, so there is no place for a restart.

While they run, the controller restarts runzeo on the same port and
FileStorage again and again, alternately with a clean stop (SIGTERM) and
with SIGKILL, and before each restart waits until every thread has
committed since the last one (so every client reconnected by itself).

Recorded by the workers and checked after the run against the stopped
FileStorage (the committed history):

* ``invariant_failures``: a model's invariant broken in a transaction;
* ``stale_reads``: an object read in a transaction whose revision is not
  the one the FileStorage had at that transaction's snapshot (every read of
  every transaction is checked: a lost invalidation or a stale cache record
  shows here even when the invariant happens to hold);
* ``cache_mismatches``: after each reconnect, each client's cache is copied
  (under its locks) and every record compared with the FileStorage: a
  current record must be the revision current at the cache's last tid, a
  non-current one must start and end where the history says.

How each reconnect brought the cache back is counted from the clients'
logs: ``verified_from_queue`` (quick verification by
``getInvalidations``), ``up_to_date``, or ``dropped`` (the server's
invalidation queue no longer reached back to the cache's tid).

It prints one JSON line of figures; the exit status is 1 if any of the
three checks found anything.  ``tests/zeo/server/test_ridethrough.py`` runs
a short version.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _harness import stop_workers, wait_until  # noqa: E402
from _servers import OURS, implementation_environment  # noqa: E402
from zeo_crash import DEADLINE, Server  # noqa: E402

#: The models, each under its own key of the root (a mapping per model).
MODELS = ("inc", "phase", "many")
#: How often a thread runs the model's next step (racetest: 1 in 5).
MODIFY_ONE_IN = 5


# -- the models (run in the workers) -------------------------------------------


class SixObjectsInc:
    """Six objects incremented together (invariant: all equal), so that a
    transaction reads several objects half from caches, half loaded."""

    keys = [f"obj{n}" for n in range(1, 7)]

    def init(self, root):
        from ZODB.tests.MinPO import MinPO

        for key in self.keys:
            root[key] = MinPO(0)

    def next(self, root):
        for key in self.keys:
            root[key].value += 1

    def assertStateOK(self, root):  # noqa: N802 (racetest's IModelSpec)
        values = [root[key].value for key in self.keys]
        if len(set(values)) != 1:
            raise AssertionError(f"objects differ: {values}")


def models():
    from ZODB.tests.racetest import T2ObjectsInc, T2ObjectsInc2Phase

    return {
        "inc": T2ObjectsInc(),
        "phase": T2ObjectsInc2Phase(),
        "many": SixObjectsInc(),
    }


# -- the worker (a separate process with several threads) ----------------------


def cache_snapshot(storage):
    """``(last_tid, [(oid, start, end)])`` of *storage*'s cache, copied under
    the locks its I/O thread takes to change it."""
    cache = storage.cache
    with storage._tid_lock, cache._lock:
        records = [(r.oid, r.start, None) for r in cache._current.values()]
        for revisions in cache._noncurrent.values():
            records.extend((r.oid, r.start, r.end) for r in revisions)
        return cache._last_tid, records


def worker_thread(database, number, log_path, stop_path, failures):
    import transaction
    from ZODB.POSException import ConflictError, POSError
    from ZODB.tests.racetest import _state_invalidate_half1

    from zeo.exceptions import ClientDisconnected

    specs = models()
    generator = random.Random()
    manager = transaction.TransactionManager()
    storage = database.storage
    disconnected = False
    with open(log_path, "a", buffering=1) as log:
        while not os.path.exists(stop_path):
            key = generator.choice(MODELS)
            spec = specs[key]
            connection = None
            try:
                manager.begin()
                connection = database.open(manager)
                root = connection.root()[key]
                # racetest: half loaded from the storage, half from caches.
                _state_invalidate_half1(root)
                try:
                    spec.assertStateOK(root)
                except AssertionError as error:
                    failures.append(f"thread {number} {key}: {error}")
                    log.write(f"F {key} {error}\n")
                snapshot = connection._storage._start
                reads = " ".join(
                    f"{root[name]._p_oid.hex()}:{root[name]._p_serial.hex()}"
                    for name in sorted(root.keys())
                )
                log.write(f"R {snapshot.hex()} {reads}\n")
                modified = generator.randrange(MODIFY_ONE_IN) == 0
                if modified:
                    spec.next(root)
                manager.commit()
                if modified:
                    log.write(f"C {storage.lastTransaction().hex()}\n")
                    if disconnected:
                        last_tid, records = cache_snapshot(storage)
                        text = " ".join(
                            f"{oid.hex()}:{start.hex()}:{end.hex() if end else '-'}"
                            for oid, start, end in records
                        )
                        log.write(f"K {last_tid.hex() if last_tid else '-'} {text}\n")
                        disconnected = False
            except (ConflictError, ClientDisconnected, POSError, OSError) as error:
                manager.abort()
                if isinstance(error, ClientDisconnected):
                    disconnected = True
            finally:
                if connection is not None:
                    connection.close()


def worker(address, number, threads, directory, stop_path):
    import logging

    import zeo

    # The verification lines ("quick verification", "clearing it", "up to
    # date") are what the controller counts.
    logging.basicConfig(
        filename=str(directory / f"worker-{number}.client.log"),
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    databases = []

    def database_for(thread):
        # The first two threads share one DB (and so one client and cache).
        index = max(thread - 1, 0)
        while len(databases) <= index:
            databases.append(
                zeo.DB(address, wait_timeout=DEADLINE, max_disconnect_poll=1.0)
            )
        return databases[index]

    failures = []
    workers = [
        threading.Thread(
            target=worker_thread,
            args=(
                database_for(thread),
                f"{number}.{thread}",
                directory / f"worker-{number}.{thread}.log",
                stop_path,
                failures,
            ),
        )
        for thread in range(threads)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    for database in databases:
        database.close()


# -- the controller -------------------------------------------------------------


def prepare(address):
    from persistent.mapping import PersistentMapping

    import zeo

    database = zeo.DB(address, wait_timeout=DEADLINE)
    with database.transaction() as connection:
        root = connection.root()
        for key, spec in models().items():
            root[key] = PersistentMapping()
            spec.init(root[key])
    database.close()


def commits(log_path):
    try:
        with open(log_path) as log:
            return sum(1 for line in log if line.startswith("C ") and line[-1] == "\n")
    except FileNotFoundError:
        return 0


def check_history(data_path, logs):
    """``(reads, stale_reads, caches, cache_mismatches, examples)`` from the
    workers' logs, compared with the FileStorage at *data_path*."""
    import bisect

    from ZODB.FileStorage import FileStorage
    from ZODB.utils import p64, u64

    # Every object's tids, oldest first, read once: FileStorage's own
    # loadBefore walks back revision by revision, which is quadratic over
    # tens of thousands of commits.
    history = {}
    storage = FileStorage(str(data_path), read_only=True)
    try:
        for transaction in storage.iterator():
            for record in transaction:
                history.setdefault(record.oid, []).append(transaction.tid)
    finally:
        storage.close()
    reads = stale = caches = mismatches = 0
    examples = []

    def revision_before(oid, before):
        """``(start, end)`` as ``loadBefore(oid, before)`` would answer."""
        tids = history.get(oid, [])
        index = bisect.bisect_left(tids, before)
        if index == 0:
            return None
        return tids[index - 1], tids[index] if index < len(tids) else None

    for log_path in logs:
        with open(log_path) as log:
            for line in log:
                if not line.endswith("\n"):
                    continue  # the last line of a killed writer
                kind, _, rest = line.rstrip("\n").partition(" ")
                if kind == "R":
                    snapshot, *pairs = rest.split(" ")
                    for pair in pairs:
                        oid, serial = (bytes.fromhex(x) for x in pair.split(":"))
                        reads += 1
                        found = revision_before(oid, bytes.fromhex(snapshot))
                        if found is None or found[0] != serial:
                            stale += 1
                            if len(examples) < 5:
                                examples.append(f"{log_path.name}: {line.strip()}")
                elif kind == "K":
                    caches += 1
                    last_tid, *records = rest.split(" ")
                    if last_tid == "-":
                        continue
                    after_last = p64(u64(bytes.fromhex(last_tid)) + 1)
                    for record in records:
                        oid_text, start_text, end_text = record.split(":")
                        oid, start = (
                            bytes.fromhex(oid_text),
                            bytes.fromhex(start_text),
                        )
                        if end_text == "-":
                            found = revision_before(oid, after_last)
                            good = found is not None and found[0] == start
                        else:
                            end = bytes.fromhex(end_text)
                            found = revision_before(oid, end)
                            good = found == (start, end)
                        if not good:
                            mismatches += 1
                            if len(examples) < 5:
                                examples.append(
                                    f"{log_path.name}: cache {record} at "
                                    f"{last_tid}, storage says {found}"
                                )
    return reads, stale, caches, mismatches, examples


def verification_counts(directory):
    counts = {"verified_from_queue": 0, "up_to_date": 0, "dropped": 0}
    patterns = {
        "quick verification:": "verified_from_queue",
        "client cache up to date": "up_to_date",
        "too old for the server's invalidation queue": "dropped",
    }
    for path in directory.glob("worker-*.client.log"):
        for line in path.read_text(errors="replace").splitlines():
            for pattern, name in patterns.items():
                if pattern in line:
                    counts[name] += 1
    return counts


def soak(restarts, workers, threads, directory, seed, queue_size):
    generator = random.Random(seed)
    server = Server(directory)
    if queue_size is not None:
        text = server.configuration.read_text()
        server.configuration.write_text(
            text.replace("<zeo>\n", f"<zeo>\n  invalidation-queue-size {queue_size}\n")
        )
    server.start()
    prepare(server.address)
    stop_path = directory / "stop"
    logs = [
        directory / f"worker-{n}.{t}.log"
        for n in range(workers)
        for t in range(threads)
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(n), "--port", str(server.port)]
            + ["--threads", str(threads), "--directory", str(directory)]
            + ["--stop", str(stop_path)],
            env=implementation_environment(OURS, ROOT / "src"),
            stderr=open(directory / f"worker-{n}.err", "ab"),
        )
        for n in range(workers)
    ]
    back_seconds = []
    kills = stops = 0
    try:
        for restart in range(restarts + 1):
            counts = [commits(log) for log in logs]
            started = time.monotonic()

            def progressed(counts=counts):
                for process in processes:
                    if process.poll() is not None:
                        raise RuntimeError(f"a worker exited with {process.returncode}")
                return all(
                    commits(log) > count
                    for log, count in zip(logs, counts, strict=True)
                )

            wait_until(progressed, DEADLINE, "every thread committing")
            if restart:
                back_seconds.append(time.monotonic() - started)
            if restart == restarts:
                break
            time.sleep(generator.uniform(0.0, 0.5))  # the restart's moment, at random
            if restart % 2:
                server.kill()
                kills += 1
            else:
                server.stop()
                stops += 1
            server.start()
    finally:
        stop_workers(stop_path, processes, DEADLINE)
    server.stop()
    invariant_failures = sum(
        1
        for log in logs
        for line in log.read_text().splitlines()
        if line.startswith("F ") and line
    )
    reads, stale, caches, mismatches, examples = check_history(server.data, logs)
    return {
        "soak": "zeo_ridethrough",
        "seed": seed,
        "restarts": restarts,
        "clean_stops": stops,
        "kills": kills,
        "workers": workers,
        "threads": threads,
        "invalidation_queue_size": queue_size or 100,
        "commits": sum(commits(log) for log in logs),
        "reads_checked": reads,
        "invariant_failures": invariant_failures,
        "stale_reads": stale,
        "caches_checked": caches,
        "cache_mismatches": mismatches,
        "reconnects": verification_counts(directory),
        "back_median_s": round(statistics.median(back_seconds), 3)
        if back_seconds
        else None,
        "back_max_s": round(max(back_seconds), 3) if back_seconds else None,
        "examples": examples,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--threads", type=int, default=4, help="per process")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--directory", type=Path, default=None)
    parser.add_argument(
        "--invalidation-queue-size", type=int, default=None, help="server's (100)"
    )
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.worker is not None:
        worker(
            ("127.0.0.1", arguments.port),
            arguments.worker,
            arguments.threads,
            arguments.directory,
            arguments.stop,
        )
        return 0
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**32)
    directory = arguments.directory or Path(tempfile.mkdtemp(prefix="zeo_ridethrough-"))
    figures = soak(
        arguments.restarts,
        arguments.workers,
        arguments.threads,
        directory,
        seed,
        arguments.invalidation_queue_size,
    )
    print(json.dumps(figures))
    bad = (
        figures["invariant_failures"]
        or figures["stale_reads"]
        or figures["cache_mismatches"]
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
