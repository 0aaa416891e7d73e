"""``runzeo``: serve ZODB storages to ZEO clients.

Usage::

    runzeo [-C zeo.conf] [-a address] [-f Data.fs] [-t timeout] [--pid-file F]

Options on the command line override the configuration file.  Without
``-C``, ``-a`` and ``-f`` are required.  SIGTERM and SIGINT stop the server
(exit 0) after closing the storages; SIGHUP stops it with exit status 1
(zdaemon then restarts it); SIGUSR2 reopens the log files.  A configuration
error prints one line naming the problem and exits with status 2.
"""

import argparse
import logging
import os
import signal
import sys

import ZConfig

logger = logging.getLogger(__name__)

USAGE_ERROR = 2


class UsageError(Exception):
    """The command line or configuration cannot be used as given."""


def _parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="runzeo", description="Serve ZODB storages to ZEO clients."
    )
    parser.add_argument(
        "-C", "--configure", metavar="FILE", help="ZConfig file (see zeo.conf)"
    )
    parser.add_argument(
        "-a",
        "--address",
        help="host:port or a Unix socket path to listen on (overrides <zeo>)",
    )
    parser.add_argument(
        "-f", "--filename", help="serve this FileStorage as storage '1'"
    )
    parser.add_argument(
        "-t",
        "--timeout",
        type=int,
        help="transaction timeout in seconds (overrides <zeo>)",
    )
    parser.add_argument("--pid-file", help="write the process id to this file")
    parser.add_argument(
        "--address-file",
        help="write the address actually listened on to this file once ready "
        "(useful with port 0)",
    )
    return parser.parse_args(argv)


class _FileStorageSection:
    def __init__(self, path):
        self.name = "1"
        self.path = path

    def open(self):
        from ZODB.FileStorage import FileStorage

        return FileStorage(self.path)


def load_options(arguments):
    """Return ``(zeo_section, storage_sections, eventlog)``; raise on errors."""
    from .address import parse_address
    from .storageserver.config import default_zeo_section, load_config

    if arguments.configure:
        config = load_config(arguments.configure)
        zeo_section, storages, eventlog = config.zeo, config.storages, config.eventlog
    else:
        if not arguments.address or not arguments.filename:
            raise UsageError(
                "give a configuration file with -C, or both -a ADDRESS and -f FILE"
            )
        zeo_section, storages, eventlog = default_zeo_section(), [], None
    try:
        if arguments.address:
            zeo_section.address = parse_address(arguments.address, bind=True)
    except ValueError as exc:
        raise UsageError(f"-a {arguments.address}: {exc}")
    if arguments.filename:
        storages = [_FileStorageSection(arguments.filename)]
    if arguments.timeout is not None:
        if arguments.timeout <= 0:
            raise UsageError("-t: the transaction timeout must be positive")
        zeo_section.transaction_timeout = arguments.timeout
    if arguments.pid_file:
        zeo_section.pid_filename = arguments.pid_file
    return zeo_section, storages, eventlog


def describe_configuration_error(exc):
    """One line saying where the configuration is wrong and how.

    ZConfig's message for a bad value ("invalid literal for int()") does not
    name the key, so the offending line is quoted from the file.
    """
    message = getattr(exc, "message", None) or str(exc)
    line_number = getattr(exc, "lineno", None)
    url = getattr(exc, "url", None)
    if not line_number or not url:
        return f"configuration error: {exc}"
    path = url[len("file://") :] if url.startswith("file://") else url
    quoted = ""
    try:
        with open(path) as file:
            lines = file.read().splitlines()
        quoted = f" {lines[line_number - 1].strip()!r}:"
    except (OSError, IndexError):
        pass
    return f"configuration error in {path}, line {line_number}:{quoted} {message}"


def _configure_logging(eventlog):
    if eventlog is not None:
        eventlog()
        return
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def _reopen_logs():
    from ZConfig.components.logger import loghandler

    loghandler.reopenFiles()
    logger.info("log files reopened")


def _write_file(path, text):
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def main(argv=None):
    """Entry point of ``runzeo``; exits with the server's status."""
    arguments = _parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        zeo_section, storage_sections, eventlog = load_options(arguments)
    except ZConfig.ConfigurationError as exc:
        sys.stderr.write(f"runzeo: {describe_configuration_error(exc)}\n")
        sys.exit(USAGE_ERROR)
    except UsageError as exc:
        sys.stderr.write(f"runzeo: {exc}\n")
        sys.exit(USAGE_ERROR)
    except OSError as exc:
        sys.stderr.write(f"runzeo: cannot read the configuration: {exc}\n")
        sys.exit(USAGE_ERROR)
    sys.exit(run(zeo_section, storage_sections, eventlog, arguments.address_file))


def run(zeo_section, storage_sections, eventlog=None, address_file=None):
    """Open the storages, serve until a signal, return the exit status."""
    from .storageserver.config import build_server, open_storages
    from .storageserver.net import ServerRunner

    _configure_logging(eventlog)
    try:
        storages = open_storages(storage_sections)
    except Exception as exc:
        logger.critical("cannot open the storages: %s: %s", type(exc).__name__, exc)
        sys.stderr.write(f"runzeo: cannot open the storages: {exc}\n")
        return 1
    server = build_server(zeo_section, storages)
    runner = ServerRunner(server, zeo_section.address, zeo_section.ssl)
    pid_file = zeo_section.pid_filename

    def started(runner):
        loop = runner.loop
        loop.add_signal_handler(signal.SIGTERM, runner.stop, 0)
        loop.add_signal_handler(signal.SIGINT, runner.stop, 0)
        loop.add_signal_handler(signal.SIGHUP, runner.stop, 1)
        loop.add_signal_handler(signal.SIGUSR2, _reopen_logs)
        if pid_file:
            _write_file(pid_file, f"{os.getpid()}\n")
        if address_file:
            address = runner.bound_address
            text = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
            _write_file(address_file, text + "\n")

    try:
        status = runner.run(started)
    except OSError as exc:
        logger.critical("cannot serve: %s", exc)
        sys.stderr.write(f"runzeo: cannot listen on {zeo_section.address}: {exc}\n")
        status = 1
    finally:
        if pid_file:
            _remove(pid_file)
    logger.info("stopped with status %s", status)
    return status


if __name__ == "__main__":
    main()
