"""The shipped configuration files load, and zdaemon runs runzeo."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port

from .conftest import ruok, wait_until

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_zeo_conf_loads(tmp_path, monkeypatch):
    from zeo.storageserver.config import load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    config = load_config(str(ROOT / "conf" / "zeo.conf"))
    assert config.zeo.address.address == ("127.0.0.1", 8100)
    assert config.zeo.msgpack is True
    assert config.zeo.invalidation_queue_size == 100
    assert [section.name for section in config.storages] == ["1"]
    assert config.eventlog is not None


@pytest.mark.slow
def test_zdaemon_starts_and_stops_runzeo(tmp_path):
    zdaemon = ROOT / ".venv" / "bin" / "zdaemon"
    if not zdaemon.exists():
        zdaemon = shutil.which("zdaemon")
    assert zdaemon, "zdaemon is a dependency"
    port = free_port()
    (tmp_path / "var").mkdir()
    (tmp_path / "conf").mkdir()
    text = (ROOT / "conf" / "zeo.conf").read_text()
    (tmp_path / "conf" / "zeo.conf").write_text(
        text.replace("127.0.0.1:8100", f"127.0.0.1:{port}")
    )
    text = (ROOT / "conf" / "zdaemon-zeo.conf").read_text()
    python = str(ROOT / ".venv" / "bin" / "python")
    (tmp_path / "conf" / "zdaemon-zeo.conf").write_text(
        text.replace(".venv/bin/python", python)
    )

    def control(command):
        return subprocess.run(
            [str(zdaemon), "-C", "conf/zdaemon-zeo.conf", command],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    try:
        assert control("start").returncode == 0
        wait_until(
            lambda: "program running" in control("status").stdout,
            message="zdaemon to run runzeo",
        )
        wait_until(
            lambda: (tmp_path / "var" / "zeo.pid").exists(), message="the pid file"
        )
        announced, status = ruok(("127.0.0.1", port))
        assert announced == b"M5" and "1" in status
    finally:
        control("stop")
    wait_until(
        lambda: not (tmp_path / "var" / "zeo.pid").exists(),
        message="runzeo to stop",
    )
    assert "stopped with status 0" in (tmp_path / "var" / "zeo.log").read_text()
