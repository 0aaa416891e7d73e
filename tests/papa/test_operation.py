"""Running the kernel: command line, configuration, daemon mode, zdaemon, restarts."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import papa
from tests.conftest import ROOT, free_port

from .conftest import SRC, can_connect, pid_alive, wait_for

ENV = {**os.environ, "PYTHONPATH": str(SRC)}


def run_papa(*arguments, cwd=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "papa", *arguments],
        env=ENV,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stop_by_exit_if_idle(address):
    client = papa.Papa(address, connection_timeout=20)
    try:
        assert client.exit_if_idle()
    finally:
        client.close()
    wait_for(lambda: not can_connect(address), message="kernel exit")


def test_configuration_error_is_one_line_and_status_2(tmp_path):
    config = tmp_path / "bad.conf"
    config.write_text("<kernel>\n  port notaport\n</kernel>\n")
    result = run_papa("-C", str(config))
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "notaport" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_shipped_papa_conf_loads(tmp_path, monkeypatch):
    from papa.__main__ import load_settings, parse_arguments

    monkeypatch.chdir(tmp_path)
    settings = load_settings(parse_arguments(["-C", str(ROOT / "conf" / "papa.conf")]))
    assert settings["port"] == 20202
    assert settings["state_dir"] == str(tmp_path / "var" / "papa")
    assert settings["eventlog"] is not None
    override = load_settings(
        parse_arguments(["-C", str(ROOT / "conf" / "papa.conf"), "-p", "1234"])
    )
    assert override["port"] == 1234


def test_daemonize_returns_once_listening_and_config_unix_socket(tmp_path):
    path = str(tmp_path / "k.sock")
    config = tmp_path / "papa.conf"
    config.write_text(f"<kernel>\n  unix-socket {path}\n</kernel>\n")
    result = run_papa("-C", str(config), "--daemonize")
    assert result.returncode == 0, result.stderr
    assert can_connect(path)  # no waiting: --daemonize returned after the bind
    stop_by_exit_if_idle(path)


def test_daemonize_reports_a_failure_to_listen(tmp_path):
    with __import__("socket").socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_papa("-p", str(busy.getsockname()[1]), "--daemonize")
    assert result.returncode == 1
    assert "Cannot listen" in result.stderr


def test_sigterm_stops_the_kernel_and_removes_its_socket(unix_kernel):
    unix_kernel.process.send_signal(signal.SIGTERM)
    assert unix_kernel.process.wait(30) == 0
    assert not os.path.exists(unix_kernel.address)


def kernels_on(port):
    """Pids of `python -m papa -p PORT` processes."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except OSError:
            continue
        if b"papa" in words and b"-p" in words and str(port).encode() in words:
            if pid_alive(int(entry)):
                found.append(int(entry))
    return found


@pytest.fixture
def autostart_port():
    port = free_port()
    yield port
    for pid in kernels_on(port):
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not kernels_on(port), message="autostarted kernels gone")


def test_autostart_from_several_threads_starts_one_kernel(autostart_port):
    clients, errors = [], []

    def connect():
        try:
            clients.append(papa.Papa(autostart_port, connection_timeout=30))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=connect) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(clients) == 6
    first = kernels_on(autostart_port)
    assert len(first) == 1
    clients[0].set("shared", "yes")
    assert clients[5].get("shared") == "yes"
    clients[0].set("shared")
    for client in clients:
        client.close()
    # The autostarted kernel runs in "/" and is not a fork of this process.
    assert os.readlink(f"/proc/{first[0]}/cwd") == "/"
    stop_by_exit_if_idle(autostart_port)
    wait_for(lambda: not kernels_on(autostart_port), message="first kernel gone")
    # papa 1.0.6 could never autostart a second time in one process.
    again = papa.Papa(autostart_port, connection_timeout=30)
    second = kernels_on(autostart_port)
    assert len(second) == 1 and second != first
    again.close()
    stop_by_exit_if_idle(autostart_port)


def test_debug_mode_runs_the_kernel_in_a_thread(monkeypatch):
    monkeypatch.setattr(papa.Papa, "_debug_mode", False)
    monkeypatch.setattr(papa.Papa, "_single_connection_mode", False)
    monkeypatch.setattr(papa.Papa, "_kernels", {})
    papa.set_debug_mode(quit_when_connection_closed=True)
    port = free_port()
    with papa.Papa(port) as client:
        assert client.t is not None and client.t.is_alive()
        client.set("a", "1")
        assert client.get("a") == "1"
        client.set("a")
        watcher = client.make_process(
            "t", "/bin/echo", args="hi", watch_immediately=True
        )
        out = b""
        while watcher:
            out += b"".join(item.data for item in watcher.read()[0])
        assert out == b"hi\n"
    assert not client.t.is_alive()
    assert not can_connect(("127.0.0.1", port))


def test_restarted_kernel_readopts_values_sockets_and_live_processes(
    kernel_factory, tmp_path
):
    state = tmp_path / "state"
    first = kernel_factory(state_dir=state)
    client = papa.Papa(first.port_or_path)
    client.set("recipe", "x")
    socket_info = client.make_socket("web")
    sleeper = client.make_process("sleeper", "/bin/sleep", args="120")
    brief = client.make_process("brief", "/bin/sleep", args="0.2")
    client.close()

    def saved():
        try:
            data = json.loads((state / "state.json").read_text())
        except (OSError, ValueError):
            return False
        return len(data["processes"]) == 2 and data["values"] and data["sockets"]

    wait_for(saved, message="state written")
    first.kill()  # SIGKILL: nothing but the state file survives

    def brief_ended():
        # Orphaned when the kernel died: gone, or a zombie nobody reaped yet.
        try:
            stat = (Path("/proc") / str(brief["pid"]) / "stat").read_bytes()
        except OSError:
            return True
        return stat[stat.rindex(b")") + 2 :].split()[0] in (b"Z", b"X")

    # The saved state says "brief" runs; it ends while no kernel runs, so the
    # next kernel lists it as ended, with the exit code its waiting parent kept.
    wait_for(brief_ended, message="brief to end")
    second = kernel_factory(state_dir=state)
    client = papa.Papa(second.port_or_path)
    try:
        assert client.get("recipe") == "x"
        assert client.list_sockets()["web"]["port"] == socket_info["port"]
        listed = client.list_processes()
        assert listed["brief"]["running"] is False
        assert listed["sleeper"]["pid"] == sleeper["pid"]
        assert listed["sleeper"]["running"] is True
        watcher = client.watch_processes("sleeper", "brief")
        os.kill(sleeper["pid"], signal.SIGKILL)
        closed = {}
        while watcher:
            closed.update((item.name, item.data) for item in watcher.read()[2])
        # Their waiting parents outlived the first kernel: the real exit codes.
        assert closed == {"sleeper": -signal.SIGKILL, "brief": 0}
        assert "brief" not in client.list_processes()
    finally:
        client.close()


@pytest.mark.slow
def test_zdaemon_runs_the_kernel(tmp_path):
    zdaemon = ROOT / ".venv" / "bin" / "zdaemon"
    if not zdaemon.exists():
        zdaemon = shutil.which("zdaemon")
    assert zdaemon, "zdaemon is a dependency"
    port = free_port()
    (tmp_path / "var").mkdir()
    (tmp_path / "conf").mkdir()
    text = (ROOT / "conf" / "papa.conf").read_text()
    (tmp_path / "conf" / "papa.conf").write_text(
        text.replace("port 20202", f"port {port}")
    )
    text = (ROOT / "conf" / "zdaemon-papa.conf").read_text()
    (tmp_path / "conf" / "zdaemon-papa.conf").write_text(
        text.replace(".venv/bin/python", sys.executable)
    )

    def control(command):
        return subprocess.run(
            [str(zdaemon), "-C", "conf/zdaemon-papa.conf", command],
            cwd=tmp_path,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        assert control("start").returncode == 0
        wait_for(
            lambda: can_connect(("127.0.0.1", port)), message="kernel under zdaemon"
        )
        client = papa.Papa(port)
        client.set("k", "v")
        assert client.get("k") == "v"
        client.close()
    finally:
        control("stop")
    wait_for(lambda: not can_connect(("127.0.0.1", port)), message="kernel stopped")
    assert (tmp_path / "var" / "papa" / "state.json").exists()
