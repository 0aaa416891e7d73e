"""Remake the seed corpora of ``tests/fuzz/atheris_targets.py`` from valid
inputs: ``python -m tests.fuzz.atheris_seeds`` (PYTHONPATH=src).

The zeo seeds are the bytes of real sessions: a real runzeo (ours) is
started for each encoding, and a ``zeo.DB`` client commits, loads and
closes through a recording proxy, with its persistent cache kept (that file
is the cache seed).  The others are ``examples/recipes`` and ``conf/``.
Each seed is written the way its target reads it (an options byte first
where the target has one).
"""

import pathlib
import shutil
import socket
import tempfile
import threading

import transaction

import zeo
from tests.support import ROOT, free_port
from tests.support.runzeo import RunzeoProcess
from zeo.protocol import FrameDecoder

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
SERVER_CONF = """\
<zeo>
  address 127.0.0.1:{port}
  msgpack {msgpack}
</zeo>
<filestorage 1>
  path {directory}/Data.fs
</filestorage>
"""


class Recorder:
    """A one-connection TCP proxy keeping what each side sent."""

    def __init__(self, upstream):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.upstream = upstream
        self.sent = {"client": bytearray(), "server": bytearray()}
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(self.upstream)
        for source, target, side in (
            (client, server, "client"),
            (server, client, "server"),
        ):
            thread = threading.Thread(target=self._copy, args=(source, target, side))
            thread.start()
            self.threads.append(thread)

    def _copy(self, source, target, side):
        while data := source.recv(65536):
            self.sent[side] += data
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)

    def close(self):
        for thread in self.threads:
            thread.join(30)
        self.listener.close()


def record_session(directory, msgpack):
    """Run one real client session; return (client bytes, server bytes)."""
    port = free_port()
    config = SERVER_CONF.format(port=port, msgpack=msgpack, directory=directory)
    server = RunzeoProcess(directory, config, ("127.0.0.1", port)).start()
    try:
        recorder = Recorder(("127.0.0.1", port))
        db = zeo.DB(recorder.address, client="seed", var=str(directory))
        with db.transaction() as connection:
            connection.root()["seed"] = {
                "text": "ünïcode",
                "number": 7,
                "bytes": b"\0\1",
            }
        connection = db.open()
        assert connection.root()["seed"]["number"] == 7
        connection.close()
        transaction.abort()
        db.close()
        recorder.close()
    finally:
        server.stop()
    return bytes(recorder.sent["client"]), bytes(recorder.sent["server"])


def frames(stream):
    return FrameDecoder(max_size=len(stream) + 1).feed(stream)


def first_frame_length(stream):
    return 4 + int.from_bytes(stream[:4], "big")


def write(target, name, content):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(content)


def zeo_seeds(work):
    for msgpack, options in (("true", 0), ("false", 1)):
        directory = work / f"msgpack-{msgpack}"
        directory.mkdir()
        client, server = record_session(directory, msgpack)
        encoding = "Z5" if options else "M5"
        write("zeo-frames", f"{encoding}-client", b"\xff" + client)
        write("zeo-frames", f"{encoding}-server", b"\x06" + server)
        # The server session is given the handshake frame itself.
        write(
            "zeo-server",
            encoding,
            bytes([options | 0xFE]) + client[first_frame_length(client) :],
        )
        write(
            "zeo-client",
            encoding,
            bytes([options | 2]) + server[first_frame_length(server) :],
        )
        for side, stream, client_bit in (("client", client, 0), ("server", server, 2)):
            for index, payload in enumerate(frames(stream)[1:]):
                name = f"{encoding}-{side}-{index:02d}"
                write("zeo-messages", name, bytes([options | client_bit]) + payload)
        for cache in directory.glob("*.zec"):
            content = cache.read_bytes()
            write("cache-file", f"{encoding}-raw", b"\0" + content)
            write("cache-file", f"{encoding}-resealed", b"\1" + content[:-8])


def file_seeds():
    for recipe in sorted((ROOT / "examples" / "recipes").glob("*.json")):
        write("recipe", recipe.stem, recipe.read_bytes())
    for target, names in (
        ("zeo-conf", ["zeo.conf", "zeo-relstorage.conf"]),
        ("papa-conf", ["papa.conf"]),
        ("dispatch-conf", ["dispatch.conf"]),
    ):
        for name in names:
            write(target, name, (ROOT / "conf" / name).read_bytes())
    lines = [
        b"l processes\n",
        b"make process sleeper executable=sleep args=10 working_dir=/tmp\n",
        b"watch processes sleeper\n",
        b'set dispatch.run.1 {"a": 1}\nget dispatch.run.1\nq\n',
        b"remove process sleeper\nl values dispatch.*\nquit\n",
    ]
    for index, line in enumerate(lines):
        write("papa-lines", f"request-{index}", bytes([index * 2]) + line)
    write(
        "papa-lines", "escaped", b"\x01make process a\\sb executable=x args=a\\s\\\\b\n"
    )
    for name in ("dispatch-step.run-1.3.message-9", "dispatch-step.r.0.m", "zeo"):
        write("program-names", name, name.encode())


def main():
    for target in CORPUS.glob("*"):
        shutil.rmtree(target)
    with tempfile.TemporaryDirectory() as work:
        zeo_seeds(pathlib.Path(work))
    file_seeds()
    for target in sorted(CORPUS.iterdir()):
        print(target.name, len(list(target.iterdir())))


if __name__ == "__main__":
    main()
