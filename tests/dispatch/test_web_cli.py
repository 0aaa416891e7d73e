"""``dispatch web`` as a real process on a real runzeo: ``--new-token``
writes a 0600 file and prints the token once; the console serves what
the configuration's ``<web>`` section says (``--bind`` overriding it),
and stops on SIGTERM; a bad address is a usage error."""

import http.client
import json
import os
import re
import signal
import subprocess
from pathlib import Path

from tests.conftest import PYTHON

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


def configuration(tmp_path, runzeo, bind="127.0.0.1:1"):
    path = tmp_path / "dispatch.conf"
    path.write_text(
        f"zeo {runzeo.address_text}\n"
        "<service greeter>\n  instances 1\n</service>\n"
        f"<web>\n  bind {bind}\n  token-file {tmp_path / 'secret' / 'web.token'}\n</web>\n"
    )
    return path


def dispatch_web(*arguments, **options):
    return subprocess.run(
        [PYTHON, "-m", "dispatch.cli", "web", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
        **options,
    )


def test_new_token_is_written_0600_and_printed_once(runzeo, tmp_path):
    conf = configuration(tmp_path, runzeo)
    made = dispatch_web("-C", conf, "--new-token")
    assert made.returncode == 0, made.stderr
    path = tmp_path / "secret" / "web.token"
    token = path.read_text().strip()
    assert path.stat().st_mode & 0o777 == 0o600
    assert made.stdout.splitlines()[-1] == token and len(token) >= 40
    again = dispatch_web("-C", conf, "--new-token")
    assert path.read_text().strip() != token
    assert again.stdout.count(path.read_text().strip()) == 1


def test_the_console_serves_until_sigterm(runzeo, tmp_path):
    conf = configuration(tmp_path, runzeo)
    dispatch_web("-C", conf, "--new-token")
    process = subprocess.Popen(
        [PYTHON, "-m", "dispatch.cli", "web", "-C", str(conf), "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
    )
    try:
        line = process.stdout.readline()
        found = re.search(r"serving the console at http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + process.stderr.read()
        connection = http.client.HTTPConnection(
            "127.0.0.1", int(found.group(1)), timeout=TIMEOUT
        )
        connection.request("GET", "/api/runs")
        reply = connection.getresponse()
        assert reply.status == 200
        assert json.loads(reply.read())["runs"] == []
        connection.close()
    finally:
        process.send_signal(signal.SIGTERM)
        output, errors = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, errors
    assert "web: stopped" in output


def test_a_bad_bind_address_is_a_usage_error(runzeo, tmp_path):
    conf = configuration(tmp_path, runzeo)
    refused = dispatch_web("-C", conf, "--bind", "localhost:http")
    assert refused.returncode == 2
    assert "bind:" in refused.stderr and "port number" in refused.stderr


def test_zdaemon_runs_the_console(runzeo, tmp_path):
    from tests.conftest import free_port
    from tests.dispatch.conftest import wait_until

    zdaemon = Path(PYTHON).parent / "zdaemon"
    assert zdaemon.exists(), "zdaemon is a dependency"
    port = free_port()
    (tmp_path / "var").mkdir()
    (tmp_path / "conf").mkdir()
    conf = configuration(tmp_path / "conf", runzeo, bind=f"127.0.0.1:{port}")
    assert conf == tmp_path / "conf" / "dispatch.conf"
    text = (ROOT / "conf" / "zdaemon-web.conf").read_text()
    (tmp_path / "conf" / "zdaemon-web.conf").write_text(
        text.replace(".venv/bin/python", PYTHON)
    )

    def control(command):
        return subprocess.run(
            [str(zdaemon), "-C", "conf/zdaemon-web.conf", command],
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def answers():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/api/services")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    try:
        assert control("start").returncode == 0
        wait_until(answers, message="the console under zdaemon")
    finally:
        stopped = control("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not answers()


def test_dispatch_help_lists_the_console():
    from dispatch.cli import load_command

    command = load_command("web")
    assert command is not None and "web console" in command.summary
    listed = subprocess.run(
        [PYTHON, "-m", "dispatch.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
    )
    assert any(line.split()[:1] == ["web"] for line in listed.stdout.splitlines())
