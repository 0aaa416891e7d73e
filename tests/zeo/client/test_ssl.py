"""TLS between our client and a real server, with certificates made by openssl."""

import ssl

import pytest
import ZODB.config

from tests.support.pki import client_context, make_certificates
from tests.zeo.client.test_basic import commit_record
from zeo.exceptions import ClientDisconnected


@pytest.fixture
def certificates(tmp_path):
    """A CA, a server certificate for 127.0.0.1/localhost and a client one."""
    return make_certificates(tmp_path / "pki")


def test_tls_round_trip(start_server, client_factory, certificates):
    d = certificates
    server = start_server(
        msgpack=True, ssl=(d / "server.pem", d / "server.key", d / "ca.pem")
    )
    storage = client_factory(server.addr, ssl=client_context(d))
    oid = storage.new_oid()
    tid = commit_record(storage, oid, b"\0" * 8, b"over tls")
    assert client_factory(server.addr, ssl=client_context(d)).load(oid) == (
        b"over tls",
        tid,
    )


def test_tls_client_without_certificate_is_refused(
    start_server, client_factory, certificates
):
    d = certificates
    server = start_server(
        msgpack=True, ssl=(d / "server.pem", d / "server.key", d / "ca.pem")
    )
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(d / "ca.pem")
    )
    with pytest.raises(ClientDisconnected):
        client_factory(server.addr, ssl=context, wait_timeout=2)


def test_tls_from_zconfig(start_server, certificates):
    d = certificates
    server = start_server(
        msgpack=False, ssl=(d / "server.pem", d / "server.key", d / "ca.pem")
    )
    storage = ZODB.config.storageFromString(
        "%import zeo\n"
        "<clientstorage>\n"
        f"  server 127.0.0.1:{server.port}\n"
        "  <ssl>\n"
        f"    authenticate {d / 'ca.pem'}\n"
        f"    certificate {d / 'client.pem'}\n"
        f"    key {d / 'client.key'}\n"
        "    server-hostname localhost\n"
        "  </ssl>\n"
        "</clientstorage>\n"
    )
    try:
        storage.ping()
        assert storage.is_connected()
    finally:
        storage.close()
