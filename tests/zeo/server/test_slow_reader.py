"""A client that never reads is cut off instead of filling the server's memory."""

import socket

from ZODB.utils import z64

import zeo
from zeo.protocol import FrameDecoder
from zeo.storageserver import net

from .conftest import RawClient, wait_until


class SilentClient(RawClient):
    """Registers, then never reads again; a tiny receive buffer."""

    def __init__(self, address):
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.socket.settimeout(30)
        self.socket.connect(address)
        self.frames = FrameDecoder()
        self.pending = []
        self.announced = self.read_frame()
        self.next_msgid = 1
        self.received = []


def test_client_that_does_not_read_is_disconnected(monkeypatch):
    # The server runs in this process (zeo.server, threaded) so that the test
    # can lower the limit (64 MiB in production) and the kernel's send
    # buffers of the accepted sockets: a few commits then fill them for real.
    monkeypatch.setattr(net, "MAX_UNSENT_OUTPUT", 50_000)
    connection_made = net.ServerConnection.connection_made

    def with_small_send_buffer(self, transport):
        server_socket = transport.get_extra_info("socket")
        server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        connection_made(self, transport)

    monkeypatch.setattr(net.ServerConnection, "connection_made", with_small_send_buffer)
    address, stop = zeo.server()
    silent = SilentClient(address)
    writer = RawClient(address)
    try:
        silent.handshake()
        silent.call("register", "1", False)
        writer.handshake()
        writer.call("register", "1", False)
        # Each commit of 1,000 new objects sends the silent client an
        # invalidation of about 11 KB.
        commits = []

        def cut_off():
            if writer.call("server_status")["connections"] != 2:
                return True
            txn = len(commits) + 1
            writer.call_one_way("tpc_begin", txn, b"", b"", {}, None, " ")
            for _ in range(10):
                for oid in writer.call("new_oids", 100):
                    writer.call_one_way("storea", oid, z64, b"x", txn)
            writer.call("vote", txn)
            commits.append(writer.call("tpc_finish", txn))
            return False

        # Each poll commits once more: no pause between them.
        wait_until(
            cut_off,
            timeout=120,
            interval=0,
            maximum_interval=0,
            message="the silent client to be cut off",
        )
        assert len(commits) > 1  # it took several unread invalidations
        assert writer.call("ping") is None
        assert silent.is_closed_by_server()
    finally:
        silent.close()
        writer.close()
        stop()
