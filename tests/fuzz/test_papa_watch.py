"""Fuzzing what a papa client reads: watch batches from a kernel.

A real kernel only sends well-formed batches, so the sender here is a
HOSTILE KERNEL (a fake, for a fault the real one cannot make): a loopback
server that greets as papa does, then answers a real ``Papa()`` client's
``watch`` with arbitrary bytes and hangs up.  For any bytes the client's
``Watcher`` gives batches of well-typed records or raises ``papa.Error``:
never another exception, never a hang (pytest-timeout), and never a payload
longer than its header said.
"""

import queue
import socket
import threading

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import papa
from papa.protocol import BANNER, BATCH_END


class HostileKernel:
    """Serves one connection per ``bytes`` put on ``replies``."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.replies: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            reply = self.replies.get()
            if reply is None:
                return
            connection, _ = self.listener.accept()
            with connection:
                connection.sendall(BANNER)
                reader = connection.makefile("rb")
                reader.readline()  # protocol escapes: refused, as papa 1.0.6
                connection.sendall(b"Error: Unknown command\n> ")
                reader.readline()  # the watch request
                connection.sendall(b"Watching 1\n" + reply)
                connection.shutdown(socket.SHUT_WR)
                while connection.recv(65536):  # acknowledgements, until closed
                    pass

    def close(self) -> None:
        self.replies.put(None)
        self.thread.join()
        self.listener.close()


@pytest.fixture(scope="module")
def kernel():
    hostile = HostileKernel()
    yield hostile
    hostile.close()


def record(kind, name, timestamp, size, data):
    return f"{kind}:{name}:{timestamp}:{size}\n".encode() + data


records = st.one_of(
    st.builds(
        record,
        st.sampled_from(["out", "err", "closed", "in", ""]),
        st.sampled_from(["p", "a:b", "", "x" * 40]),
        st.sampled_from(["1.5", "1e9", "nan", "x", "-1", ""]),
        st.one_of(st.integers(-3, 40), st.just(10**12)),
        st.binary(max_size=40),
    ),
    st.binary(max_size=60),
    st.sampled_from([BATCH_END, b"Nothing left to watch\n> ", b"Error: x\n> "]),
)
batches = st.lists(records, max_size=8).map(lambda parts: b"\n".join(parts))


def watch_all(port):
    """Every batch the client reads, until the end or papa.Error."""
    read = []
    with papa.Papa(port) as client:
        watcher = client.watch_processes("*")
        try:
            while watcher:
                batch = watcher.read()
                read.append(batch)
                if not batch:
                    break
        except papa.Error:
            pass
        finally:
            watcher.close()
    return read


@given(batches)
@example(b"out:p:1.5:3\nabc\n" + BATCH_END)
@example(b"out:p:1.5:x\n")  # found: a ValueError, not papa.Error
@example(b"closed:p:1.5\n")  # found: too few fields
@example(b"out:p:1.5:-4\nabc")  # found: a negative size cut the buffer
@example(b"out:p:1.5:10\nabc")  # hangs up before the payload's end
def test_any_batch_bytes_give_records_or_papa_error(kernel, data):
    kernel.replies.put(data)
    for batch in watch_all(kernel.port):
        out, err, closed = batch
        for item in out + err:
            assert isinstance(item.data, bytes) and isinstance(item.timestamp, float)
            assert len(item.data) <= len(data)
        for item in closed:
            assert isinstance(item.data, int)


def test_a_well_formed_batch_is_read_whole(kernel):
    kernel.replies.put(
        b"out:p:1.5:3\nabc\nerr:p:1.5:1\nz\nclosed:p:2.0:7\n" + BATCH_END
    )
    (batch,) = watch_all(kernel.port)[:1]
    out, err, closed = batch
    assert [(o.name, o.data) for o in out] == [("p", b"abc")]
    assert [(e.name, e.data) for e in err] == [("p", b"z")]
    assert [(c.name, c.timestamp, c.data) for c in closed] == [("p", 2.0, 7)]
