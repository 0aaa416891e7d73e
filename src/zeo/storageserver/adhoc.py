"""``zeo.server()``: an ad-hoc server for tests, demos and scripts.

Same signature and result as ``ZEO.server``: it returns ``(address, stop)``
where *address* is ``(host, port)`` (or the Unix socket path) and
``stop()`` shuts the server down and closes its storages.
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from .config import build_server, load_config, open_storages
from .net import ServerRunner

# How long to wait for a server process to listen.  Generous: a cold Python
# start that imports ZODB takes a second or more on a loaded 2-core machine.
START_TIMEOUT = 60

# Where a started server listens: ``(host, port)`` or a Unix socket path.
Address = tuple[str, int] | str


def _zeo_value(value: object) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def configuration_text(
    path: str | None = None,
    blob_dir: str | None = None,
    storage_conf: str | None = None,
    zeo_conf: dict[str, Any] | None = None,
    port: int = 0,
) -> str:
    """The runzeo configuration :func:`server` runs with."""
    zeo_options: dict[str, Any] = {"address": f"127.0.0.1:{port}"}
    for key, value in (zeo_conf or {}).items():
        if value is not None:
            zeo_options[key.replace("_", "-")] = value
    if isinstance(zeo_options["address"], tuple):
        host, port = zeo_options["address"]
        zeo_options["address"] = f"{host}:{port}"
    lines = ["<zeo>"]
    lines.extend(f"  {key} {_zeo_value(value)}" for key, value in zeo_options.items())
    lines.append("</zeo>")
    if storage_conf is None:
        if path is None:
            storage_conf = "<mappingstorage 1>\n</mappingstorage>"
        else:
            storage_conf = f"<filestorage 1>\n  path {path}\n</filestorage>"
    if blob_dir is not None:
        storage_conf = (
            f"<blobstorage 1>\n  blob-dir {blob_dir}\n{storage_conf}\n</blobstorage>"
        )
    lines.append(storage_conf)
    return "\n".join(lines) + "\n"


def server(
    path: str | None = None,
    blob_dir: str | None = None,
    storage_conf: str | None = None,
    zeo_conf: dict[str, Any] | None = None,
    port: int = 0,
    threaded: bool = True,
) -> tuple[Address, Callable[[], None]]:
    """Start a server; return ``(address, stop)``.

    Without *path* the storage is an in-memory MappingStorage, with it a
    FileStorage; *blob_dir* wraps it in a BlobStorage; *storage_conf* is the
    text of a storage section used instead.  *zeo_conf* is a dict of
    ``<zeo>`` options (``transaction_timeout=5`` for
    ``transaction-timeout 5``).  *threaded* runs the server in a thread of
    this process; false runs ``runzeo`` in a child process.
    """
    text = configuration_text(path, blob_dir, storage_conf, zeo_conf, port)
    if threaded:
        return _threaded_server(text)
    return _process_server(text)


def _threaded_server(text: str) -> tuple[Address, Callable[[], None]]:
    config = load_config(text=text)
    storages = open_storages(config.storages)
    storage_server = build_server(config.zeo, storages)
    runner = ServerRunner(storage_server, config.zeo.address, config.zeo.ssl)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            runner.run()
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            runner.started.set()

    thread = threading.Thread(target=serve, name="zeo.server", daemon=True)
    thread.start()
    if (
        not runner.started.wait(START_TIMEOUT)
        or failure
        or runner.bound_address is None
    ):
        runner.stop()
        thread.join(START_TIMEOUT)
        if failure:
            raise failure[0]
        raise RuntimeError("the zeo server thread did not start listening")

    def stop() -> None:
        runner.stop()
        thread.join(START_TIMEOUT)

    return _public_address(runner.bound_address), stop


def _process_server(text: str) -> tuple[Address, Callable[[], None]]:
    directory = tempfile.mkdtemp(prefix="zeo-server-")
    config_path = os.path.join(directory, "zeo.conf")
    address_path = os.path.join(directory, "address")
    with open(config_path, "w") as file:
        file.write(text)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zeo.runzeo",
            "-C",
            config_path,
            "--address-file",
            address_path,
        ]
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not os.path.exists(address_path):
        if process.poll() is not None:
            raise RuntimeError(
                f"runzeo exited with status {process.returncode} before listening"
            )
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError("runzeo did not start listening in time")
        time.sleep(0.02)
    with open(address_path) as file:
        address_text = file.read().strip()
    address: Address
    if "/" in address_text:
        address = address_text
    else:
        host, _, port = address_text.rpartition(":")
        address = (host, int(port))

    def stop() -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for name in (config_path, address_path):
            try:
                os.remove(name)
            except OSError:
                pass
        try:
            os.rmdir(directory)
        except OSError:
            pass

    return address, stop


def _public_address(address: str | tuple) -> Address:
    if isinstance(address, str):
        return address
    return (address[0], address[1])
