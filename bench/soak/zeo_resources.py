"""Soak: many clients come and go; the server's resources must come back.

``python bench/soak/zeo_resources.py --connections 1000`` (``make soak``).
Against one real runzeo, connection after connection:

* registers, reads the root and pings, and hangs up cleanly;
* every third hangs up in the middle of a frame;
* every fifth hangs up in the middle of a transaction, after ``tpc_begin``
  and a store (its transaction must be aborted and nothing locked);
* every tenth holds the commit lock (it voted) when it hangs up;
* every fiftieth is a full ``zeo.client`` that commits and closes.

Afterwards, once the server counts only the probing connection, its open
file descriptors must be back at what they were after the warm-up, its
resident memory must have grown by less than ``--memory-slack`` MiB, and a
commit must still go through.  One JSON line of figures; exit status 1 when
a bound is broken.  ``tests/zeo/server/test_soak.py`` runs a short version.
"""

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _servers import wait_until  # noqa: E402
from zeo_crash import DEADLINE, Server  # noqa: E402

from zeo.protocol import FrameDecoder, decoder, encoder, frame  # noqa: E402

ROOT_OID = b"\0" * 8
MAX_TID = b"\x7f" + b"\xff" * 7


class Raw:
    """A hand-made ZEO 5 client: just enough to leave in odd states."""

    def __init__(self, address):
        self.socket = socket.create_connection(address, timeout=DEADLINE)
        self.frames = FrameDecoder()
        self.pending = []
        protocol = self.read()
        self.encode, self.decode = encoder(protocol), decoder(protocol, client=True)
        self.socket.sendall(frame(protocol))
        self.msgid = 0

    def read(self):
        while not self.pending:
            data = self.socket.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.pending.extend(self.frames.feed(data))
        return self.pending.pop(0)

    def send(self, name, *args, one_way=False):
        self.msgid += 1
        self.socket.sendall(frame(self.encode(self.msgid, one_way, name, args)))
        return self.msgid

    def call(self, name, *args):
        msgid = self.send(name, *args)
        while True:
            reply_id, flag, reply_name, value = self.decode(self.read())
            if reply_name == ".reply" and reply_id == msgid:
                return value

    def close(self):
        self.socket.close()


def file_descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def one_connection(address, number):
    if number % 50 == 49:
        import transaction

        import zeo

        db = zeo.DB(address, wait_timeout=DEADLINE)
        with db.transaction() as connection:
            connection.root()[f"client {number}"] = number
        db.close()
        del transaction
        return
    client = Raw(address)
    client.call("register", "1", False)
    client.call("loadBefore", ROOT_OID, MAX_TID)
    client.call("ping")
    if number % 10 == 9:
        txn = number
        client.send("tpc_begin", txn, "", "", {}, None, " ", one_way=True)
        oid = client.call("new_oids", 1)[0]
        client.send("storea", oid, ROOT_OID, b"held", txn, one_way=True)
        client.call("vote", txn)  # holds the commit lock now
    elif number % 5 == 4:
        txn = number
        client.send("tpc_begin", txn, "", "", {}, None, " ", one_way=True)
        client.send("storea", ROOT_OID, ROOT_OID, b"abandoned", txn, one_way=True)
    elif number % 3 == 2:
        client.socket.sendall(b"\x00\x00\x10\x00" + b"partial")
    client.close()


def server_connections(storage_client):
    return storage_client.call("server_status")["connections"]


def soak(connections, directory, memory_slack_mib):
    server = Server(directory)
    server.start()
    pid = server.process.pid
    address = server.address
    probe = Raw(address)
    probe.call("register", "1", False)
    try:
        for number in range(min(50, connections)):  # warm-up: allocator, caches
            one_connection(address, number)
        wait_until(lambda: server_connections(probe) == 1, DEADLINE, "quiet")
        fds_before = file_descriptors(pid)
        memory_before = resident_kib(pid)
        started = time.monotonic()
        for number in range(connections):
            one_connection(address, number)
        elapsed = time.monotonic() - started
        wait_until(lambda: server_connections(probe) == 1, DEADLINE, "all gone")
        fds_after = file_descriptors(pid)
        memory_after = resident_kib(pid)
        # The lock held by the last voter was freed: a commit goes through.
        import zeo

        db = zeo.DB(address, wait_timeout=DEADLINE)
        with db.transaction() as connection:
            connection.root()["after"] = True
        db.close()
        committed = True
    finally:
        probe.close()
        server.stop()
    growth = (memory_after - memory_before) / 1024
    return {
        "soak": "zeo_resources",
        "connections": connections,
        "seconds": round(elapsed, 1),
        "fds_before": fds_before,
        "fds_after": fds_after,
        "rss_before_mib": round(memory_before / 1024, 1),
        "rss_growth_mib": round(growth, 1),
        "commit_after": committed,
        "ok": fds_after == fds_before and growth < memory_slack_mib and committed,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--memory-slack", type=float, default=32.0)
    parser.add_argument("--directory", type=Path, default=None)
    arguments = parser.parse_args(argv)
    directory = arguments.directory or Path(tempfile.mkdtemp(prefix="zeo_resources-"))
    figures = soak(arguments.connections, directory, arguments.memory_slack)
    print(json.dumps(figures))
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
