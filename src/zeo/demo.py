"""``make demo``: a server, two clients, one invalidation, the status probe.

Runs ``runzeo -C conf/zeo.conf`` (FileStorage under ``var/``), commits a few
objects from one client, shows a second client learning of the change through
an invalidation (not by polling), prints the ``ruok`` status and stops the
server.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import transaction
from persistent.mapping import PersistentMapping

import zeo
from zeo.address import parse_address
from zeo.probe import ruok


def say(text):
    print(f"demo: {text}", flush=True)


def read_address(conf):
    for line in Path(conf).read_text().splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "address":
            return parse_address(words[1])
    raise SystemExit(f"demo: no 'address' line in {conf}")


def wait_for_server(address, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"demo: runzeo exited with status {process.returncode}")
        try:
            return ruok(address, timeout=2)
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"demo: runzeo did not answer on {address!r} in {timeout}s")


def main(conf="conf/zeo.conf"):
    Path("var").mkdir(exist_ok=True)
    address = read_address(conf)
    say(f"starting runzeo -C {conf} on {address!r}")
    server = subprocess.Popen([sys.executable, "-m", "zeo.runzeo", "-C", conf])
    try:
        wait_for_server(address, server)
        run_clients(address)
        say("server status (ruok):")
        print(json.dumps(ruok(address), indent=2, sort_keys=True), flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        status = server.wait(30)
        say(f"runzeo stopped (exit status {status})")
    return 0


def run_clients(address):
    writer_db = zeo.DB(address)
    reader_db = zeo.DB(address)
    try:
        writer = writer_db.open()
        root = writer.root()
        runs = root.setdefault("demo", PersistentMapping())
        runs["count"] = runs.get("count", 0)
        transaction.commit()
        say(f"client A: {len(root)} root entries, count={runs['count']}")

        seen = threading.Event()
        changed = {}

        def on_commit(tid, oids):
            changed["tid"], changed["oids"] = tid, oids
            seen.set()

        reader_storage = reader_db.storage
        watch = reader_storage.watch(on_commit)
        reader_tm = transaction.TransactionManager()
        reader = reader_db.open(transaction_manager=reader_tm)
        before = reader.root()["demo"]["count"]
        say(f"client B reads count={before}")

        runs["count"] += 1
        runs["last-run"] = time.strftime("%Y-%m-%d %H:%M:%S")
        for i in range(3):
            runs[f"item-{i}"] = PersistentMapping(index=i)
        transaction.commit()
        say(f"client A committed count={runs['count']} and 3 new objects")

        if not seen.wait(30):
            raise SystemExit("demo: client B saw no invalidation in 30s")
        reader_tm.begin()  # a new transaction sees the invalidated state
        after = reader.root()["demo"]["count"]
        say(
            f"client B was told of transaction {changed['tid'].hex()} "
            f"({len(changed['oids'])} objects changed) and now reads count={after}"
        )
        if after != before + 1:
            raise SystemExit(f"demo: client B read {after}, expected {before + 1}")
        watch.close()
        reader_tm.abort()
        reader.close()
        writer.close()
    finally:
        transaction.abort()
        writer_db.close()
        reader_db.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main(*sys.argv[1:]))
