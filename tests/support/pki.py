"""Throwaway certificates for the TLS tests: a CA, a server and a client.

Made with the ``openssl`` command (Debian's, always on the machine); the
server certificate is for 127.0.0.1 and localhost.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> Path:
    """``ca.pem``, ``server.pem``/``.key`` and ``client.pem``/``.key`` in
    *directory* (made if missing); skips the test without openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    directory.mkdir(parents=True, exist_ok=True)
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=zeopapa test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    for name in ("server", "client"):
        (directory / f"{name}.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={'serverAuth' if name == 'server' else 'clientAuth'}\n"
            "authorityKeyIdentifier=keyid\n"
            "subjectKeyIdentifier=hash\n"
        )
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={name}",
            cwd=directory,
        )  # fmt: skip
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
            "-extfile", f"{name}.ext",
            cwd=directory,
        )  # fmt: skip
    return directory


def client_context(directory: Path, certificate: bool = True) -> ssl.SSLContext:
    """A client context trusting the test CA, with the client certificate."""
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(directory / "ca.pem")
    )
    if certificate:
        context.load_cert_chain(
            str(directory / "client.pem"), str(directory / "client.key")
        )
    return context
