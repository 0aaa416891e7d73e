"""zodbshootout 0.8.0 against our client and server, then against real ZEO 6.2.

zodbshootout (with pyperf 1.7.1) is the benchmark the ZODB community quotes
for ZEO (the 2022-23 asyncio rewrite was justified with its tables).  It reads
databases from a ZConfig file; this runner starts both servers
(``_servers.start_server``), writes one such file per implementation::

    %import zeo                      %import ZEO
    <zodb zeo>                       <zodb zeo>
      <clientstorage>                  <clientstorage>
        server 127.0.0.1:PORT            server 127.0.0.1:PORT
      </clientstorage>                 </clientstorage>
    </zodb>                          </zodb>

and runs zodbshootout on each with the same options, our column with the venv
(our ``zeo``, the venv's ZODB) and the real one with ``.peers/zeo`` first on
``PYTHONPATH`` (its ZEO and ZODB).  zodbshootout itself is installed with
``--no-deps`` into ``.peers/zodbshootout`` (``make shootout-peer``) so that it
brings no second ZODB.  It prints both result tables and then pyperf's
comparison table (``compare_to --table``, real ZEO as the reference: a
"faster" there means ours is faster).

Extra arguments after ``--`` are passed to zodbshootout (for example
``-- add cold`` to run only those benchmarks).
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from _servers import (
    IMPLEMENTATIONS,
    OURS,
    REAL,
    SHOOTOUT_PEER,
    implementation_environment,
    require_real_zeo,
    start_server,
)

# Module imported by `%import` for each implementation's <clientstorage>.
CONFIG_PACKAGE = {OURS: "zeo", REAL: "ZEO"}


# pyperf compares benchmarks by name, and zodbshootout names them after the
# database: both columns must use the same one.
DATABASE_NAME = "zeo"

# The benchmarks run unless others are named after `--`: the ones that
# measure the client and server (conflicts and readCurrent are skipped by
# zodbshootout itself for ZEO above one process; the empty commits never
# reach the storage).
DEFAULT_BENCHMARKS = (
    "add",
    "update",
    "cold",
    "prefetch_cold",
    "warm",
    "hot",
    "tpc",
    "new_oid",
)


def shootout_configuration(code: str, address: tuple, section: str) -> str:
    """The ZConfig text zodbshootout reads; *section* names the storage section.

    ``clientstorage`` is the section of ``%import zeo`` (or ``ZEO``);
    ``zeoclient`` is ZODB's own, which ``%import zeo`` makes open our client
    (and which zodbshootout recognises as ZEO).
    """
    host, port = address
    return (
        f"%import {CONFIG_PACKAGE[code]}\n"
        f"<zodb {DATABASE_NAME}>\n"
        f"  <{section}>\n"
        f"    server {host}:{port}\n"
        f"  </{section}>\n"
        "</zodb>\n"
    )


# zodbshootout's cold-read benchmarks empty the client cache between loops
# with ``db.storage._cache.clear()`` (ZEO's private attribute) and skip it
# silently when the storage has no ``_cache``: the "cold" reads are then
# cache hits.  This probe says whether the client under test has one.
CACHE_PROBE = """
import sys, zeo
storage = zeo.client((sys.argv[1], int(sys.argv[2])), wait_timeout=30)
try:
    print("yes" if callable(getattr(getattr(storage, "_cache", None), "clear", None)) else "no")
finally:
    storage.close()
"""


def cold_reads_are_cold(code: str, address: tuple) -> bool:
    """Whether zodbshootout can empty this implementation's client cache."""
    if code == REAL:
        return True
    completed = subprocess.run(
        [sys.executable, "-c", CACHE_PROBE, address[0], str(address[1])],
        env=implementation_environment(code),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return completed.stdout.strip() == "yes"


def run_in_own_group(command, **options) -> int:
    """Run ``command`` in a new process group; on any interruption end the group.

    zodbshootout's pyperf starts worker processes of its own, which would
    outlive an interrupted run (and keep a server busy) if only the
    zodbshootout process were killed.
    """
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, start_new_session=True, **options
    )
    try:
        return process.wait()
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # At 100 objects or fewer zodbshootout repeats each benchmark 100 times
    # per value instead of 10, and a run of both columns takes 15 minutes.
    parser.add_argument(
        "--objects",
        type=int,
        default=200,
        help="objects per transaction (zodbshootout --object-counts, default 200)",
    )
    parser.add_argument(
        "--section",
        choices=("clientstorage", "zeoclient"),
        default="clientstorage",
        help="storage section in the zodbshootout config (default clientstorage)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="zodbshootout -c (default 1)"
    )
    parser.add_argument(
        "--encoding",
        choices=("msgpack", "pickle"),
        default="msgpack",
        help="wire encoding of both servers",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=3,
        help="pyperf worker processes per benchmark (default 3)",
    )
    parser.add_argument(
        "--values", type=int, default=3, help="pyperf values per process (default 3)"
    )
    parser.add_argument(
        "--ours-is-real",
        action="store_true",
        help="debug: run real ZEO in the 'ours' column too",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory"
    )
    parser.add_argument("extra", nargs="*", help="passed to zodbshootout (after --)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    require_real_zeo()
    if not (SHOOTOUT_PEER / "zodbshootout").is_dir():
        sys.exit(
            f"zodbshootout is not installed in {SHOOTOUT_PEER}: run `make shootout-peer`"
        )
    codes = {OURS: REAL if arguments.ours_is_real else OURS, REAL: REAL}
    workdir = Path(tempfile.mkdtemp(prefix="zodbshootout-"))
    servers = {}
    results = {}
    status = 0
    warnings = []
    try:
        for column in IMPLEMENTATIONS:
            code = codes[column]
            servers[column] = start_server(
                column, code, workdir / column, arguments.encoding
            )
            configuration = workdir / f"{column}.conf"
            configuration.write_text(
                shootout_configuration(code, servers[column].address, arguments.section)
            )
            results[column] = workdir / f"{column}.json"
            command = [
                sys.executable, "-m", "zodbshootout",
                "--include-mapping", "no",
                "--object-counts", str(arguments.objects),
                "-c", str(arguments.concurrency),
                "--processes", str(arguments.processes),
                "--values", str(arguments.values),
                # pyperf starts its workers with a cleaned environment.
                "--inherit-environ", "PYTHONPATH",
                "--quiet",
                "--output", str(results[column]),
                str(configuration),
                *(arguments.extra or DEFAULT_BENCHMARKS),
            ]  # fmt: skip
            print(
                f"==== {column} ({code}): zodbshootout on {servers[column].address}",
                flush=True,
            )
            if not cold_reads_are_cold(code, servers[column].address):
                warnings.append(
                    f"WARNING: {column}'s ClientStorage has no _cache.clear(): "
                    "zodbshootout cannot empty its cache, so its 'cold' and "
                    "'cold prefetched' reads are cache hits and not comparable"
                )
                print(warnings[-1], flush=True)
            returncode = run_in_own_group(
                command,
                env=implementation_environment(code, SHOOTOUT_PEER),
                cwd=workdir,
            )
            if returncode != 0:
                print(
                    f"zodbshootout failed for {column} with {returncode}",
                    file=sys.stderr,
                )
                status = 1
            servers.pop(column).stop()
        if all(path.exists() for path in results.values()):
            print(
                "==== comparison (reference: real ZEO; 'faster' means ours is faster)",
                flush=True,
            )
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pyperf",
                    "compare_to",
                    "--table",
                    str(results[REAL]),
                    str(results[OURS]),
                ],
                env=implementation_environment(OURS, SHOOTOUT_PEER),
                stdin=subprocess.DEVNULL,
            )
            for warning in warnings:
                print(warning, flush=True)
    finally:
        for server in servers.values():
            server.stop()
        if arguments.keep or status:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
