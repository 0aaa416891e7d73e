"""Who may talk to a kernel: tokens, TLS with client certificates, and the
refusal to serve other hosts without either (papa.security)."""

import socket
import ssl
import subprocess

import pytest

from papa import Papa
from papa.errors import AuthenticationError, Error
from papa.security import Access, is_loopback
from tests.support import PYTHON, our_env
from tests.support.pki import client_context, make_certificates

TOKEN = "s3cret-token-of-enough-length"


def token_file(folder, mode=0o600, token=TOKEN):
    path = folder / "papa.token"
    path.write_text(token + "\n")
    path.chmod(mode)
    return path


def config(folder, kernel_lines):
    path = folder / "papa.conf"
    path.write_text(
        "<kernel>\n" + "".join(f"  {line}\n" for line in kernel_lines) + "</kernel>\n"
    )
    return path


def run_papa(*arguments, cwd):
    return subprocess.run(
        [PYTHON, "-m", "papa", *arguments],
        capture_output=True,
        text=True,
        env=our_env(),
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture
def token_kernel(kernel_factory, tmp_path):
    conf = config(tmp_path, [f"token-file {token_file(tmp_path)}"])
    return kernel_factory(extra=["-C", str(conf)])


def test_with_a_token_only_help_protocol_quit_and_auth_come_before_it(token_kernel):
    session = token_kernel.raw()
    assert session.command("set a 1").startswith(b"Error: Authentication required")
    assert b"auth" in session.command("help")
    assert session.command("protocol") == b"escapes\n> "
    assert session.command("auth wrong-token-wrong-token") == b"Error: Wrong token\n> "
    assert session.command(f"auth {TOKEN}") == b"ok\n> "
    assert session.command("set a 1") == b"\n> "
    assert session.command("get a") == b"1\n> "
    session.close()


def test_three_wrong_tokens_end_the_connection(token_kernel):
    session = token_kernel.raw()
    for _ in range(2):
        assert session.command("auth nope") == b"Error: Wrong token\n> "
    session.send(b"auth nope\n")
    assert session.read_to_eof() == b"Error: Wrong token; closing the connection\n"
    session.close()
    # The kernel itself is untouched: the next connection may log in.
    other = token_kernel.raw()
    assert other.command(f"auth {TOKEN}") == b"ok\n> "
    other.close()


def test_the_client_library_logs_in_with_its_token(token_kernel):
    with Papa(token_kernel.port_or_path, token=TOKEN) as papa:
        papa.set("x", "over a token")
        assert papa.get("x") == "over a token"
    with pytest.raises(AuthenticationError, match="refused the token"):
        Papa(token_kernel.port_or_path, token="a-wrong-token-wrong-token")
    with Papa(token_kernel.port_or_path) as anonymous:
        with pytest.raises(Error, match="Authentication required"):
            anonymous.get("x")


def test_a_token_file_others_can_read_is_refused(tmp_path):
    conf = config(tmp_path, [f"token-file {token_file(tmp_path, mode=0o644)}"])
    result = run_papa("-C", str(conf), "-p", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "can be read by others" in result.stderr and "0600" in result.stderr
    short = config(tmp_path, [f"token-file {token_file(tmp_path, token='short')}"])
    result = run_papa("-C", str(short), "-p", "0", cwd=tmp_path)
    assert result.returncode == 2 and "too short" in result.stderr
    spaced = token_file(tmp_path, token="a token with spaces in it")
    result = run_papa(
        "-C", str(config(tmp_path, [f"token-file {spaced}"])), cwd=tmp_path
    )
    assert result.returncode == 2 and "no spaces or backslashes" in result.stderr


def test_other_hosts_are_refused_without_tls_or_token(tmp_path):
    conf = config(tmp_path, ["host 0.0.0.0"])
    result = run_papa("-C", str(conf), "-p", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "Refusing to listen on 0.0.0.0 without TLS" in result.stderr
    assert "insecure on" in result.stderr
    # What makes it acceptable, checked without binding anything.
    Access("0.0.0.0", token=TOKEN).check()
    encrypting_only = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(Error, match="client certificates"):
        Access("0.0.0.0", ssl_context=encrypting_only).check()
    identifying = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    identifying.verify_mode = ssl.CERT_REQUIRED
    Access("0.0.0.0", ssl_context=identifying).check()
    Access("0.0.0.0", insecure=True).check()
    Access("::1").check()
    assert is_loopback("127.0.0.2") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("kernel.example.org")
    with pytest.raises(Error):
        Access("kernel.example.org").check()


@pytest.fixture(params=["tcp", "unix"])
def tls_kernel(request, kernel_factory, tmp_path):
    pki = make_certificates(tmp_path / "pki")
    (tmp_path / "tls.conf").write_text(
        "<kernel>\n  <ssl>\n"
        f"    certificate {pki / 'server.pem'}\n    key {pki / 'server.key'}\n"
        f"    authenticate {pki / 'ca.pem'}\n  </ssl>\n</kernel>\n"
    )
    kernel = kernel_factory(
        unix=request.param == "unix", extra=["-C", str(tmp_path / "tls.conf")]
    )
    kernel.pki = pki
    # The fixture's stop lists children over a plain connection, which this
    # kernel refuses; it starts none.
    kernel.listed_pids = lambda: []
    return kernel


def test_tls_with_client_certificates(tls_kernel):
    with Papa(tls_kernel.port_or_path, ssl=client_context(tls_kernel.pki)) as papa:
        papa.set("x", "over tls")
        assert papa.get("x") == "over tls"
    # Without a client certificate the handshake fails.
    with pytest.raises(Error):
        Papa(
            tls_kernel.port_or_path,
            connection_timeout=2,
            ssl=client_context(tls_kernel.pki, certificate=False),
        )
    # A failed handshake started no kernel of its own (Papa starts one only
    # for a plain local client), and the TLS kernel still serves.
    assert tls_kernel.port_or_path not in Papa._kernels
    with Papa(tls_kernel.port_or_path, ssl=client_context(tls_kernel.pki)) as papa:
        assert papa.get("x") == "over tls"
    # A plain client gets no banner in clear text.
    if isinstance(tls_kernel.address, str):
        plain = socket.socket(socket.AF_UNIX)
        plain.settimeout(30)
        plain.connect(tls_kernel.address)
    else:
        plain = socket.create_connection(tls_kernel.address, timeout=30)
    plain.sendall(b"list processes\n")
    received = b""
    try:
        while chunk := plain.recv(4096):
            received += chunk
    except (ConnectionResetError, ssl.SSLError, TimeoutError):
        pass
    plain.close()
    assert b"Papa is home" not in received
