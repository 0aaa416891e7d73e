"""``papa``: run the process kernel.

Usage (papa 1.0.6's command line, plus ``-C`` and ``--state-dir``)::

    papa [-d|--debug] [-u|--unix-socket PATH] [-p|--port PORT] [--daemonize]
         [-C|--configure papa.conf] [--state-dir DIR]

The kernel listens on 127.0.0.1:20202 unless told otherwise; ``-u`` wins
over ``-p``.  SIGTERM and SIGINT stop it (exit 0) without touching its
children; SIGUSR2 reopens log files.  A configuration error prints one line
and exits with status 2; a failure to listen exits with status 1.
``--daemonize`` returns once the kernel listens (or failed to), unlike papa
which returned before knowing.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from .errors import Error
from .kernel import DEFAULT_PORT, run

log = logging.getLogger(__name__)

USAGE_ERROR = 2
LISTEN_ERROR = 1


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="papa", description="Run the papa process kernel."
    )
    parser.add_argument("-d", "--debug", action="store_true", help="log at INFO level")
    parser.add_argument(
        "-u", "--unix-socket", metavar="PATH", help="listen on this Unix socket (0600)"
    )
    parser.add_argument(
        "-p", "--port", type=int, help=f"TCP port on 127.0.0.1 (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--daemonize", action="store_true", help="run in the background"
    )
    parser.add_argument(
        "-C", "--configure", metavar="FILE", help="ZConfig file (papa.conf)"
    )
    parser.add_argument(
        "--state-dir", metavar="DIR", help="keep values, sockets and processes here"
    )
    return parser.parse_args(argv)


def load_settings(arguments) -> dict:
    """Merge the configuration file and the command line (which wins)."""
    settings = {"port": DEFAULT_PORT, "unix_socket": None, "state_dir": None}
    settings["debug"] = False
    settings["eventlog"] = None
    settings["slurm"] = None
    settings["access"] = None
    if arguments.configure:
        import ZConfig

        schema_path = os.path.join(os.path.dirname(__file__), "schema.xml")
        try:
            schema = ZConfig.loadSchema(schema_path)
            config, _ = ZConfig.loadConfig(schema, arguments.configure)
        except (ZConfig.ConfigurationError, OSError) as exc:
            raise Error(f"{arguments.configure}: {exc}")
        except (KeyError, TypeError) as exc:
            # ZConfig checks a log format by formatting a record and lets
            # these out (found by fuzzing).
            raise Error(f"{arguments.configure}: bad log format? {exc!r}")
        kernel = config.kernel
        settings["port"] = kernel.port
        settings["unix_socket"] = kernel.unix_socket
        settings["state_dir"] = kernel.state_dir
        settings["debug"] = kernel.debug
        settings["eventlog"] = config.eventlog
        from .security import access_from_config

        try:
            settings["access"] = access_from_config(kernel)
        except Error as exc:
            raise Error(f"{arguments.configure}: {exc}")
        if config.slurm is not None:
            from .slurm import SlurmSettings

            try:
                settings["slurm"] = SlurmSettings.from_config(config.slurm)
            except Error as exc:
                raise Error(f"{arguments.configure}: <slurm>: {exc}")
    if arguments.port is not None:
        settings["port"] = arguments.port
        settings["unix_socket"] = None
    if arguments.unix_socket:
        settings["unix_socket"] = arguments.unix_socket
    if arguments.state_dir:
        settings["state_dir"] = arguments.state_dir
    if arguments.debug:
        settings["debug"] = True
    if settings["unix_socket"] and not os.path.isabs(settings["unix_socket"]):
        raise Error(f"the Unix socket path must be absolute: {settings['unix_socket']}")
    if settings["state_dir"]:
        settings["state_dir"] = os.path.abspath(settings["state_dir"])
    return settings


def configure_logging(settings) -> None:
    if settings["eventlog"] is not None:
        settings["eventlog"]()
        return
    logging.basicConfig(
        level=logging.INFO if settings["debug"] else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def reopen_logs(*_ignored) -> None:
    """SIGUSR2: reopen log files (after logrotate moved them)."""
    try:
        from ZConfig.components.logger.loghandler import reopenFiles
    except ImportError:
        return
    reopenFiles()


def daemonize() -> int:
    """Fork into the background; return the write end of the readiness pipe.

    The parent waits on the pipe and exits 0 once the kernel listens, or 1
    with the child's error message.
    """
    read_end, write_end = os.pipe()
    if os.fork():
        os.close(write_end)
        message = b""
        while chunk := os.read(read_end, 4096):
            message += chunk
        if message == b"ok":
            os._exit(0)
        sys.stderr.write(
            message.decode(errors="replace") or "papa: kernel died at start\n"
        )
        os._exit(LISTEN_ERROR)
    os.close(read_end)
    os.setsid()
    if os.fork():  # the session leader leaves, so no terminal can come back
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for descriptor in (0, 1, 2):
        os.dup2(null, descriptor)
    os.close(null)
    os.umask(0o027)
    os.chdir("/")
    return write_end


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    try:
        settings = load_settings(arguments)
    except Error as exc:
        print(f"papa: configuration error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    configure_logging(settings)
    readiness = daemonize() if arguments.daemonize else None

    def on_ready(kernel):
        if readiness is not None:
            os.write(readiness, b"ok")
            os.close(readiness)

    signal.signal(signal.SIGUSR2, reopen_logs)
    port_or_path = settings["unix_socket"] or settings["port"]
    try:
        run(
            port_or_path,
            settings["state_dir"],
            on_ready=on_ready,
            handle_signals=True,
            slurm_settings=settings["slurm"],
            access=settings["access"],
        )
    except Error as exc:
        log.error("%s", exc)
        if readiness is not None:
            os.write(readiness, f"papa: {exc}\n".encode())
        else:
            print(f"papa: {exc}", file=sys.stderr)
        return LISTEN_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
