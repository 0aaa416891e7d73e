"""TLS: certificates required on both sides, real ZEO client over TLS."""

import shutil
import ssl

import pytest

from tests.support.pki import make_certificates

from .conftest import run_peer_script

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command"
)


SCRIPT = """
import json, ssl, transaction, ZEO
context = ssl.create_default_context(cafile={ca!r})
context.load_cert_chain({certificate!r}, {key!r})
db = ZEO.DB(("127.0.0.1", {port}), ssl=context, ssl_server_hostname="localhost")
with db.transaction() as connection:
    connection.root()["secret"] = "over tls"
with db.transaction() as connection:
    value = connection.root()["secret"]
db.close()
print("RESULT " + json.dumps(value))
"""


@pytest.mark.interop
def test_real_zeo_client_over_tls(start_server, zeo_peer, tmp_path):
    make_certificates(tmp_path)
    server = start_server(
        ssl_section=(
            f"<ssl>\n  certificate {tmp_path / 'server.pem'}\n"
            f"  key {tmp_path / 'server.key'}\n"
            f"  authenticate {tmp_path / 'ca.pem'}\n</ssl>"
        )
    )
    script = SCRIPT.format(
        ca=str(tmp_path / "ca.pem"),
        certificate=str(tmp_path / "client.pem"),
        key=str(tmp_path / "client.key"),
        port=server.port,
    )
    assert run_peer_script(zeo_peer, script) == "over tls"

    # Without a client certificate the handshake fails.
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    import socket

    with socket.create_connection(server.address, timeout=30) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, EOFError)):
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                # TLS 1.3 reports the missing certificate on the first read.
                data = tls.recv(6)
                if not data:
                    raise EOFError("closed")
