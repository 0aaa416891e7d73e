"""The runzeo command line: options, pid file, signals, bad configuration."""

import os
import signal
import subprocess

import pytest

from tests.conftest import PYTHON, free_port

from .conftest import ruok, server_config, wait_until


def runzeo(*args, **kw):
    return subprocess.Popen(
        [PYTHON, "-m", "zeo.runzeo", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.fixture
def processes():
    """Processes started by a test; killed if still running at the end."""
    started = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_command_line_options_pid_file_and_sigterm(tmp_path, processes):
    port = free_port()
    pid_file = tmp_path / "zeo.pid"
    data_path = tmp_path / "Data.fs"
    process = runzeo(
        "-a", f"127.0.0.1:{port}", "-f", data_path, "-t", 7, "--pid-file", pid_file
    )
    processes.append(process)
    wait_until(
        lambda: pid_file.exists() and pid_file.read_text().strip(),
        message="the pid file",
    )
    assert int(pid_file.read_text()) == process.pid
    announced, status = ruok(("127.0.0.1", port))
    assert announced == b"M5"
    assert status["1"]["timeout-thread-is-alive"] is True
    assert data_path.exists()
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert not pid_file.exists()
    assert "Traceback" not in process.communicate()[1]


@pytest.mark.parametrize(
    "sent, status", [(signal.SIGINT, 0), (signal.SIGHUP, 1)], ids=["INT", "HUP"]
)
def test_signals_with_a_config_file(tmp_path, processes, sent, status):
    port = free_port()
    config = tmp_path / "zeo.conf"
    config.write_text(server_config(f"127.0.0.1:{port}", tmp_path / "Data.fs"))
    address_file = tmp_path / "address"
    process = runzeo("-C", config, "--address-file", address_file)
    processes.append(process)
    wait_until(address_file.exists, message="runzeo to listen")
    assert address_file.read_text().strip() == f"127.0.0.1:{port}"
    process.send_signal(sent)
    # SIGHUP exits 1 so that zdaemon restarts the server.
    assert process.wait(60) == status


def test_address_option_overrides_the_file_and_unix_sockets_work(tmp_path, processes):
    config = tmp_path / "zeo.conf"
    config.write_text(server_config(f"127.0.0.1:{free_port()}", tmp_path / "Data.fs"))
    socket_path = tmp_path / "zeo.sock"
    process = runzeo("-C", config, "-a", socket_path)
    processes.append(process)
    wait_until(socket_path.exists, message="the Unix socket")
    import socket

    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(30)
        connection.connect(str(socket_path))
        assert connection.recv(6) == b"\x00\x00\x00\x02M5"
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert not socket_path.exists()


@pytest.mark.parametrize(
    "bad_line, named",
    [
        ("invalidation-queue-size lots", "invalidation-queue-size"),
        ("transaction-timeout 1.5x", "transaction-timeout"),
        ("msgpack perhaps", "msgpack"),
        ("no-such-key 1", "no-such-key"),
    ],
)
def test_bad_configuration_exits_2_naming_the_line(
    tmp_path, processes, bad_line, named
):
    config = tmp_path / "zeo.conf"
    text = server_config(f"127.0.0.1:{free_port()}", tmp_path / "Data.fs")
    text = text.replace("<zeo>\n", f"<zeo>\n  {bad_line}\n")
    config.write_text(text)
    process = runzeo("-C", config)
    processes.append(process)
    assert process.wait(60) == 2
    error = process.communicate()[1]
    assert named in error
    assert "line 2" in error
    assert "Traceback" not in error


def test_missing_options_exit_2(processes):
    process = runzeo("-a", "127.0.0.1:1")
    processes.append(process)
    assert process.wait(60) == 2
    error = process.communicate()[1]
    assert "-C" in error and "Traceback" not in error


def test_sigusr2_reopens_the_log_file(tmp_path, processes):
    port = free_port()
    log_path = tmp_path / "zeo.log"
    config = tmp_path / "zeo.conf"
    config.write_text(
        server_config(f"127.0.0.1:{port}", tmp_path / "Data.fs", log_path=log_path)
    )
    address_file = tmp_path / "address"
    process = runzeo("-C", config, "--address-file", address_file)
    processes.append(process)
    wait_until(address_file.exists, message="runzeo to listen")
    wait_until(lambda: "listening on" in log_path.read_text(), message="a log line")
    os.rename(log_path, tmp_path / "zeo.log.1")
    process.send_signal(signal.SIGUSR2)
    wait_until(log_path.exists, message="a new log file")
    wait_until(lambda: "log files reopened" in log_path.read_text(), message="reopen")
    assert "listening on" in (tmp_path / "zeo.log.1").read_text()
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    assert "closing storage" in log_path.read_text()
