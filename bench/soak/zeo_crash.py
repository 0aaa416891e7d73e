"""Soak: runzeo killed with SIGKILL again and again under committing clients.

``python bench/soak/zeo_crash.py --kills 100`` (``make soak``).  Client
processes commit increments: each transaction adds one to the worker's own
counter and inserts ``(worker, value)`` into one shared OOBTree, and every
commit the server acknowledged is written to the worker's log.  With
``--blobs`` each entry is a blob, and every blob's content is checked at the
end.  The
controller kills the server at random moments, some of them during a pack,
restarts it on the same port and FileStorage, waits until every worker has
committed again by itself (so the clients reconnected on their own), checks
the database, and kills it again.

After every restart and at the end:

* every acknowledged commit is there (``lost`` must be 0);
* no partial transaction is visible: a worker's counter and its entries in
  the tree agree (``partial`` must be 0);
* at the end, ZODB's ``fstest`` and ``fsrefs`` find nothing wrong.

It prints one JSON line of figures; the exit status is 1 if anything was
lost or damaged.  ``tests/zeo/server/test_soak.py`` runs a short version.
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

from _harness import ServerProcess, stop_workers, wait_until  # noqa: E402
from _servers import OURS, implementation_environment  # noqa: E402

# A restarted server verifies nothing on a small file, but a loaded 2-core
# machine may take long to start Python; clients back off up to 2 s.
DEADLINE = 120.0


# -- the worker (a separate process) ------------------------------------------


def blob_content(number, value):
    return f"worker {number} value {value}\n".encode() * 50


def worker(address, number, log_path, stop_path, blob_dir=None):
    import transaction
    from ZODB.blob import Blob
    from ZODB.POSException import ConflictError, POSError

    import zeo
    from zeo.exceptions import ClientDisconnected

    db = zeo.DB(
        address, wait_timeout=DEADLINE, max_disconnect_poll=2.0, blob_dir=blob_dir
    )
    manager = transaction.TransactionManager()
    connection = db.open(manager)
    key = f"counter-{number}"
    with open(log_path, "a", buffering=1) as log:
        while not os.path.exists(stop_path):
            try:
                manager.begin()
                root = connection.root()
                value = root[key]["value"] + 1
                root[key]["value"] = value
                if blob_dir is None:
                    root["entries"][(number, value)] = value
                else:
                    blob = Blob()
                    with blob.open("w") as file:
                        file.write(blob_content(number, value))
                    root["entries"][(number, value)] = blob
                manager.commit()
            except (ConflictError, ClientDisconnected, POSError, OSError):
                manager.abort()
                continue
            log.write(f"{value}\n")  # acknowledged: tpc_finish returned
    connection.close()
    db.close()


# -- the controller -------------------------------------------------------------


class Server(ServerProcess):
    """Our runzeo on one FileStorage, restarted on the same port."""

    def __init__(self, directory, blobs=False):
        self.directory = directory
        self.data = directory / "Data.fs"
        self.port = 0
        self.address_file = directory / "address"
        self.configuration = directory / "zeo.conf"
        storage = f"<filestorage>\n  path {self.data}\n</filestorage>\n"
        if blobs:
            blob_dir = directory / "blobs"
            storage = (
                f"<blobstorage 1>\n  blob-dir {blob_dir}\n{storage}</blobstorage>\n"
            )
        else:
            storage = storage.replace("<filestorage>", "<filestorage 1>")
        self.configuration.write_text(
            "<zeo>\n  address 127.0.0.1:0\n</zeo>\n" + storage
        )
        super().__init__(
            [],
            implementation_environment(OURS, ROOT / "src"),
            directory / "runzeo.log",
            DEADLINE,
        )

    def command(self):
        return [sys.executable, "-m", "zeo.runzeo", "-C", str(self.configuration)] + [
            "-a",
            f"127.0.0.1:{self.port}",
            "--address-file",
            str(self.address_file),
        ]

    def ready(self):
        return self.address_file.exists() and self.address_file.read_text().strip()

    def start(self):
        if self.address_file.exists():
            self.address_file.unlink()
        text = super().start()
        self.port = int(text.rsplit(":", 1)[1])
        return time.monotonic()

    @property
    def address(self):
        return ("127.0.0.1", self.port)


def acknowledged(log_path):
    with open(log_path) as log:
        return [int(line) for line in log if line.endswith("\n")]


def check(address, workers, logs, blob_dir=None):
    """(lost, partial) over every worker: both must be 0.

    With *blob_dir* every blob's content is read and compared too (a blob
    that does not hold what its commit wrote counts as lost).
    """
    import transaction

    import zeo

    # The workers go on committing: what they acknowledged is read first,
    # and the snapshot begun after it syncs with the server, so it holds
    # every one of those commits (reading the logs after the snapshot counted
    # newer commits as lost).
    acknowledged_values = [acknowledged(log) for log in logs]
    db = zeo.DB(address, wait_timeout=DEADLINE, blob_dir=blob_dir, server_sync=True)
    manager = transaction.TransactionManager()
    connection = db.open(manager)
    lost = partial = 0
    try:
        manager.begin()
        root = connection.root()
        entries = root["entries"]
        for number in range(workers):
            value = root[f"counter-{number}"]["value"]
            present = {n for (w, n) in entries.keys((number, 0), (number, 2**62))}
            lost += sum(1 for n in acknowledged_values[number] if n not in present)
            if blob_dir is not None:
                for n in present:
                    with entries[(number, n)].open("r") as file:
                        if file.read() != blob_content(number, n):
                            lost += 1
            partial += len(present ^ set(range(1, value + 1)))
        manager.abort()
    finally:
        connection.close()
        db.close()
    return lost, partial


def prepare(address, workers):
    import transaction
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping

    import zeo

    db = zeo.DB(address, wait_timeout=DEADLINE)
    with db.transaction() as connection:
        root = connection.root()
        root["entries"] = OOBTree()
        for number in range(workers):
            root[f"counter-{number}"] = PersistentMapping(value=0)
    db.close()
    del transaction


def pack_in_background(address):
    """Start a pack that the next kill interrupts (its failure is expected)."""

    def pack():
        import zeo
        from zeo.exceptions import ClientDisconnected

        try:
            storage = zeo.client(address, wait_timeout=5)
            try:
                storage.pack(time.time(), None)
            finally:
                storage.close()
        except (ClientDisconnected, OSError, Exception):
            pass

    thread = threading.Thread(target=pack, daemon=True)
    thread.start()
    return thread


def zodb_checks(data_path):
    """Problems fstest and fsrefs report on the stopped FileStorage."""
    problems = []
    for module in ("ZODB.scripts.fstest", "ZODB.scripts.fsrefs"):
        result = subprocess.run(
            [sys.executable, "-m", module, str(data_path)],
            capture_output=True,
            text=True,
            env=implementation_environment(OURS, ROOT / "src"),
        )
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or output:
            problems.append(f"{module}: status {result.returncode}: {output[:500]}")
    return problems


def soak(kills, workers, directory, seed, blobs=False):
    generator = random.Random(seed)
    server = Server(directory, blobs)
    server.start()
    prepare(server.address, workers)
    stop_path = directory / "stop"
    logs = [directory / f"worker-{n}.log" for n in range(workers)]
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(n), "--port", str(server.port)]
            + ["--log", str(logs[n]), "--stop", str(stop_path)]
            + (["--blob-dir", str(directory / f"blobs-{n}")] if blobs else []),
            env=implementation_environment(OURS, ROOT / "src"),
            # Each disconnect is logged; keep that out of the figures.
            stderr=open(directory / f"worker-{n}.err", "ab"),
        )
        for n in range(workers)
    ]
    reconnect_seconds = []
    lost = partial = packs_killed = 0
    try:
        for n in range(workers):
            logs[n].touch()
        for kill in range(kills):
            # Every worker commits (again) before the next fault.
            counts = [len(acknowledged(log)) for log in logs]
            started = time.monotonic()

            def progressed(counts=counts):
                for process in processes:
                    if process.poll() is not None:
                        raise RuntimeError(f"a worker exited with {process.returncode}")
                return all(
                    len(acknowledged(log)) > count
                    for log, count in zip(logs, counts, strict=True)
                )

            wait_until(progressed, DEADLINE, "every worker committing")
            if kill:
                reconnect_seconds.append(time.monotonic() - started)
            if kill % 10 == 9:
                pack_in_background(server.address)
                packs_killed += 1
            time.sleep(generator.uniform(0.0, 0.3))  # the fault's moment, at random
            server.kill()
            server.start()
            found = check(server.address, workers, logs)
            lost += found[0]
            partial += found[1]
        wait_until(
            lambda: all(len(acknowledged(log)) for log in logs), DEADLINE, "commits"
        )
    finally:
        stop_workers(stop_path, processes, DEADLINE)
    check_blobs = directory / "blobs-check" if blobs else None
    found = check(server.address, workers, logs, check_blobs)
    lost += found[0]
    partial += found[1]
    server.stop()
    problems = zodb_checks(server.data)
    commits = sum(len(acknowledged(log)) for log in logs)
    return {
        "soak": "zeo_crash",
        "blobs": blobs,
        "seed": seed,
        "kills": kills,
        "packs_killed": packs_killed,
        "workers": workers,
        "acknowledged_commits": commits,
        "lost": lost,
        "partial": partial,
        "fstest_fsrefs_problems": problems,
        "reconnect_median_s": round(statistics.median(reconnect_seconds), 3)
        if reconnect_seconds
        else None,
        "reconnect_max_s": round(max(reconnect_seconds), 3)
        if reconnect_seconds
        else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--directory", type=Path, default=None)
    parser.add_argument("--blobs", action="store_true", help="commit blobs too")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--blob-dir", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.worker is not None:
        worker(
            ("127.0.0.1", arguments.port),
            arguments.worker,
            arguments.log,
            arguments.stop,
            arguments.blob_dir,
        )
        return 0
    seed = arguments.seed if arguments.seed is not None else random.randrange(2**32)
    directory = arguments.directory or Path(tempfile.mkdtemp(prefix="zeo_crash-"))
    figures = soak(arguments.kills, arguments.workers, directory, seed, arguments.blobs)
    print(json.dumps(figures))
    bad = figures["lost"] or figures["partial"] or figures["fstest_fsrefs_problems"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
