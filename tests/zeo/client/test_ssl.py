"""TLS between our client and a real server, with certificates made by openssl."""

import shutil
import ssl
import subprocess

import pytest
import ZODB.config

from tests.zeo.client.test_basic import commit_record
from zeo.exceptions import ClientDisconnected


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def certificates(tmp_path):
    """A CA, a server certificate for 127.0.0.1/localhost and a client one."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path / "pki"
    d.mkdir()
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )  # fmt: skip
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d,
        )  # fmt: skip
        (d / f"{name}.ext").write_text(
            extension + "\nbasicConstraints=CA:FALSE\n"
            "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"
        )
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-days", "2", "-out", f"{name}.pem",
            "-extfile", f"{name}.ext", cwd=d,
        )  # fmt: skip
    return d


def client_context(d):
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(d / "ca.pem")
    )
    context.load_cert_chain(str(d / "client.pem"), str(d / "client.key"))
    return context


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
