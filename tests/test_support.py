"""The shared test helpers do what they say: polling returns the value or
fails naming what it waited for; ports, probes and peers; a real runzeo
started, restarted on its port, stopped and killed."""

import signal
import socket
import threading

import pytest

from tests.support import (
    RunzeoProcess,
    can_connect,
    free_port,
    our_env,
    peer_env,
    peers,
    polling,
    read_greeting,
    require_peer,
    wait_until,
)


def test_wait_until_returns_the_first_true_value():
    values = iter([None, 0, "", "ready", "later"])
    assert wait_until(lambda: next(values), 30, interval=0) == "ready"


def test_wait_until_fails_naming_what_and_how_long():
    calls = []

    def never():
        calls.append(1)
        return []

    with pytest.raises(pytest.fail.Exception) as failure:
        wait_until(never, 0.05, message="the moon")
    assert "timed out after 0.05s waiting for the moon" in str(failure.value)
    assert "(last value: [])" in str(failure.value)
    assert len(calls) >= 2  # it polled, then gave up


def test_wait_until_ends_at_once_when_the_condition_raises():
    def broken():
        raise ConnectionRefusedError("the server exited")

    with pytest.raises(ConnectionRefusedError, match="the server exited"):
        wait_until(broken, 30)


def test_wait_until_backs_off_to_the_maximum_interval(monkeypatch):
    pauses = []
    monkeypatch.setattr(polling.time, "sleep", pauses.append)
    answers = iter([False] * 6 + [True])
    wait_until(lambda: next(answers), 30, interval=0.01, maximum_interval=0.05)
    assert pauses == pytest.approx([0.01, 0.02, 0.04, 0.05, 0.05, 0.05])


def test_a_free_port_can_be_listened_on_and_probed():
    port = free_port()
    assert not can_connect(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert can_connect(("127.0.0.1", port))


def test_read_greeting_returns_the_first_frame():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def greet():
            connection, _ = listener.accept()
            with connection:
                connection.sendall(b"\x00\x00\x00\x02M5rest")

        thread = threading.Thread(target=greet)
        thread.start()
        assert read_greeting(listener.getsockname()) == b"M5"
        thread.join(30)


def test_peer_and_our_environments_name_one_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("ZEO_MSGPACK", "1")
    environment = peer_env(tmp_path)
    assert environment["PYTHONPATH"] == str(tmp_path)
    assert "ZEO_MSGPACK" not in environment
    environment = our_env()
    assert environment["PYTHONPATH"] == str(peers.SRC)
    assert "ZEO_MSGPACK" not in environment


def test_a_missing_peer_skips_or_fails_as_asked(monkeypatch):
    monkeypatch.delenv("ZEOPAPA_REQUIRE_PEERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        require_peer("no-such-peer")
    monkeypatch.setenv("ZEOPAPA_REQUIRE_PEERS", "1")
    with pytest.raises(pytest.fail.Exception, match="make peers"):
        require_peer("no-such-peer")


def mapping_storage_config(port):
    return f"<zeo>\n  address 127.0.0.1:{port}\n</zeo>\n<mappingstorage 1>\n</mappingstorage>\n"


def test_runzeo_restarts_on_its_port_then_stops_and_is_killed(tmp_path):
    port = free_port()
    server = RunzeoProcess(tmp_path, mapping_storage_config(port), ("127.0.0.1", port))
    try:
        assert server.start() is server
        assert read_greeting(server.address) == b"M5"
        assert server.stop() == 0
        assert not server.is_alive() and not can_connect(port)
        server.start()
        assert server.is_alive() and read_greeting(("127.0.0.1", port)) == b"M5"
        assert server.kill() == -signal.SIGKILL
        # Both runs logged to stderr, and the restart appended to the output.
        assert server.log_text().count("listening on") == 2
    finally:
        server.stop()


def test_runzeo_that_cannot_start_fails_with_its_output(tmp_path):
    port = free_port()
    server = RunzeoProcess(
        tmp_path, mapping_storage_config(port) + "<nonsense>\n", ("127.0.0.1", port)
    )
    with pytest.raises(pytest.fail.Exception) as failure:
        server.start()
    assert "runzeo exited with" in str(failure.value)
    assert "nonsense" in str(failure.value)
    assert "<nothing>" not in str(failure.value)  # runzeo's own words
    assert not server.is_alive()


def test_real_zeo_runzeo_starts_from_the_same_config(zeo_peer, tmp_path):
    port = free_port()
    config = mapping_storage_config(port).replace("</zeo>", "  msgpack false\n</zeo>")
    server = RunzeoProcess(tmp_path, config, ("127.0.0.1", port), peer=zeo_peer)
    try:
        server.start()
        assert read_greeting(server.address) == b"Z5"
    finally:
        assert server.stop() is not None
    assert not server.is_alive()
