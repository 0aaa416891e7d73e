"""One benchmark client process, run by ``zeo_bench.py`` for either implementation.

It is a separate process so that real ZEO runs with its own ``PYTHONPATH`` (its
ZEO, ZODB and persistent) and ours with the venv, and so that N clients really
are N processes.  The protocol with the parent is line-oriented JSON:

1. argv[1] is a JSON object: ``code`` ("ours" or "zeo"), ``address``,
   ``task`` and the task's parameters;
2. the worker connects, prepares (warm-up, cache filling) and prints
   ``{"ready": true}``;
3. it waits for one line on stdin (the start barrier shared by all clients);
4. it runs the timed part and prints ``{"start": t0, "end": t1, ...}`` where
   the times are ``time.monotonic()`` (one system-wide clock on Linux, so the
   parent can take the span from the first start to the last end) and
   ``cpu`` is the CPU time the whole process (all threads) used meanwhile.

Storage API calls are used directly (``tpc_begin``/``store``/``tpc_vote``/
``tpc_finish``, ``loadBefore``, ``ping``), the same calls ZODB's Connection
makes, so the figures measure the client storage and the server, not ZODB's
object cache.
"""

import importlib
import json
import os
import pickle
import sys
import time

from ZODB.Connection import TransactionMetaData
from ZODB.utils import p64, u64, z64

OBJECTS_PER_TRANSACTION = 10
WARM_UP_TRANSACTIONS = 3
WARM_UP_PINGS = 20

# The class part of a ZODB record may be a (module, name) pair: no import of
# the class is needed to write it, and every ZODB tool can still read it.
CLASS_PICKLE = pickle.dumps(("persistent.mapping", "PersistentMapping", None), 3)


def record(value: int) -> bytes:
    """A small (about 100 bytes) but well-formed ZODB object record."""
    state = {"data": {"value": value, "label": "benchmark object %08d" % value}}
    return CLASS_PICKLE + pickle.dumps(state, 3)


def commit(storage, records) -> bytes:
    """Commit ``records`` (oid, serial, data) in one transaction; return its tid."""
    transaction = TransactionMetaData(description="zeo_bench")
    storage.tpc_begin(transaction)
    for oid, serial, data in records:
        storage.store(oid, serial, data, "", transaction)
    storage.tpc_vote(transaction)
    return storage.tpc_finish(transaction)


def next_tid(storage) -> bytes:
    """The ``before`` argument ZODB would pass to ``loadBefore`` right now."""
    return p64(u64(storage.lastTransaction()) + 1)


class CommitAdd:
    """Transactions of 10 new objects each."""

    def __init__(self, storage, spec):
        self.storage = storage
        self.transactions = spec["transactions"]
        self.counter = 0

    def one(self):
        records = []
        for _ in range(OBJECTS_PER_TRANSACTION):
            self.counter += 1
            records.append((self.storage.new_oid(), z64, record(self.counter)))
        commit(self.storage, records)

    def prepare(self):
        for _ in range(WARM_UP_TRANSACTIONS):
            self.one()

    def run(self):
        for _ in range(self.transactions):
            self.one()
        return {"operations": self.transactions}


class CommitUpdate:
    """Transactions updating the same 10 objects (this client's own: no conflicts)."""

    def __init__(self, storage, spec):
        self.storage = storage
        self.transactions = spec["transactions"]
        self.oids = []
        self.serial = z64
        self.counter = 0

    def one(self):
        self.counter += 1
        data = record(self.counter)
        records = [(oid, self.serial, data) for oid in self.oids]
        self.serial = commit(self.storage, records)

    def prepare(self):
        self.oids = [self.storage.new_oid() for _ in range(OBJECTS_PER_TRANSACTION)]
        self.serial = commit(self.storage, [(oid, z64, record(0)) for oid in self.oids])
        for _ in range(WARM_UP_TRANSACTIONS):
            self.one()

    def run(self):
        for _ in range(self.transactions):
            self.one()
        return {"operations": self.transactions}


class Populate:
    """Untimed set-up: commit ``count`` objects and write their oids to a file."""

    def __init__(self, storage, spec):
        self.storage = storage
        self.count = spec["count"]
        self.batch = spec.get("batch", 100)
        self.oids_path = spec["oids_path"]

    def prepare(self):
        pass

    def run(self):
        oids = []
        while len(oids) < self.count:
            size = min(self.batch, self.count - len(oids))
            new = [self.storage.new_oid() for _ in range(size)]
            commit(self.storage, [(oid, z64, record(u64(oid))) for oid in new])
            oids.extend(new)
        with open(self.oids_path, "w") as file:
            json.dump([oid.hex() for oid in oids], file)
        return {"operations": len(oids)}


class ReadCold:
    """Load every populated object once, starting from an empty client cache.

    What was loaded is checked against what ``Populate`` wrote, after the
    timed part, so that a fast wrong answer cannot pass for a fast one.
    """

    def __init__(self, storage, spec):
        self.storage = storage
        with open(spec["oids_path"]) as file:
            self.oids = [bytes.fromhex(oid) for oid in json.load(file)]
        self.before = None
        self.loaded = []

    def prepare(self):
        self.storage.ping()
        self.before = next_tid(self.storage)

    def run(self):
        load = self.storage.loadBefore
        before = self.before
        self.loaded = [load(oid, before) for oid in self.oids]
        return {"operations": len(self.oids)}

    def check(self):
        for oid, loaded in zip(self.oids, self.loaded, strict=True):
            if loaded is None or loaded[0] != record(u64(oid)):
                raise RuntimeError(f"object {oid.hex()} loaded as {loaded!r}")


class ReadWarm(ReadCold):
    """Load every populated object ``passes`` times, all from the client cache."""

    def __init__(self, storage, spec):
        super().__init__(storage, spec)
        self.passes = spec["passes"]

    def prepare(self):
        super().prepare()
        super().run()
        super().check()

    def run(self):
        load = self.storage.loadBefore
        before = self.before
        for _ in range(self.passes):
            self.loaded = [load(oid, before) for oid in self.oids]
        return {"operations": self.passes * len(self.oids)}


class Ping:
    """Round trips of ``ping``; every latency is reported, in nanoseconds."""

    def __init__(self, storage, spec):
        self.storage = storage
        self.count = spec["count"]

    def prepare(self):
        for _ in range(WARM_UP_PINGS):
            self.storage.ping()

    def run(self):
        ping = self.storage.ping
        clock = time.perf_counter_ns
        latencies = []
        for _ in range(self.count):
            started = clock()
            ping()
            latencies.append(clock() - started)
        return {"operations": self.count, "latencies_ns": latencies}


TASKS = {
    "populate": Populate,
    "commit_add": CommitAdd,
    "commit_update": CommitUpdate,
    "read_cold": ReadCold,
    "read_warm": ReadWarm,
    "ping": Ping,
}


def open_client(code: str, address):
    """A ClientStorage of implementation ``code`` connected to ``address``."""
    module = importlib.import_module("ZEO" if code == "zeo" else "zeo")
    return module.client(tuple(address), wait_timeout=60)


def main() -> None:
    spec = json.loads(sys.argv[1])
    # Reports go to the real stdout; anything a library prints goes to stderr.
    reports = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout = sys.stderr

    def report(message: dict) -> None:
        reports.write(json.dumps(message) + "\n")
        reports.flush()

    storage = open_client(spec["code"], spec["address"])
    try:
        task = TASKS[spec["task"]](storage, spec)
        task.prepare()
        report({"ready": True})
        if not sys.stdin.readline():
            return  # the parent gave up before the start
        cpu_before = time.process_time()  # all threads: the I/O thread too
        start = time.monotonic()
        result = task.run()
        end = time.monotonic()
        cpu = time.process_time() - cpu_before
        check = getattr(task, "check", None)
        if check is not None:
            check()
        report({"start": start, "end": end, "cpu": cpu, **result})
    finally:
        storage.close()


if __name__ == "__main__":
    main()
