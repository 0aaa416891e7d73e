"""``dispatch web -C FILE [--bind HOST:PORT] [--new-token]``: serve the
web console (:mod:`dispatch.web`) as the ``<web>`` section of the
configuration says, until SIGTERM or SIGINT.  ``--new-token`` writes a new
login token to the section's ``token-file`` (mode 0600), prints it once
and exits: the old token stops working when the console restarts."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import replace
from typing import Any

from dispatch.cli import base, supervise
from dispatch.runtime.configuration import database_target, load_configuration
from dispatch.web import tokens
from dispatch.web.settings import WebSettings
from zeo.address import Address

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # The same -C FILE and --zeo as `dispatch supervise`: one configuration.
    supervise.add_arguments(parser)
    parser.add_argument(
        "--bind",
        metavar="HOST:PORT",
        help="listen here instead of the section's bind (default 127.0.0.1:8080)",
    )
    parser.add_argument(
        "--new-token",
        action="store_true",
        help="write a new login token to the token file, print it once, exit",
    )


def run(options: argparse.Namespace) -> int:
    config = load_configuration(options.configure, options.environments)
    settings = replace(WebSettings.from_section(config.web), papa=config.papa)
    if options.bind:
        settings = replace(settings, bind=options.bind)
    if options.new_token:
        token = tokens.new_token(settings.token_file)
        print(f"new token (written to {settings.token_file}, mode 0600):")
        print(token)
        return base.EXIT_OK
    try:
        address = settings.bind_address()
    except ValueError as error:
        raise base.CommandError(f"bind: {error}", base.EXIT_USAGE) from None
    if config.eventlog is not None:
        config.eventlog()
    else:
        logging.getLogger().setLevel(logging.INFO)
    try:
        # Here, not at the top: `dispatch --help` imports every command.
        import aiohttp  # noqa: F401
    except ImportError:
        raise base.CommandError(
            "the console needs the web extra: pip install 'zeopapa[web]'",
            base.EXIT_USAGE,
        ) from None
    zeo = database_target(config, options.configure, options.zeo)
    database = base.open_database(zeo)
    database.setCacheSize(settings.cache_size)
    try:
        asyncio.run(_serve(database, settings, base.zeo_address(zeo), address))
    except tokens.TokenFileError as error:
        raise base.CommandError(str(error), base.EXIT_USAGE) from None
    finally:
        database.close()
    print("web: stopped", flush=True)
    return base.EXIT_OK


async def _serve(
    database: Any, settings: WebSettings, zeo: Address, address: Address
) -> None:
    """Serve until SIGTERM or SIGINT."""
    from aiohttp import web

    from dispatch.web.app import create_app

    runner = web.AppRunner(create_app(database, settings, zeo))
    await runner.setup()
    site: web.BaseSite
    if isinstance(address, str):
        site = web.UnixSite(runner, address)
    else:
        site = web.TCPSite(runner, *address)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop.set)
    for bound in runner.addresses:
        shown = bound if isinstance(bound, str) else f"http://{bound[0]}:{bound[1]}/"
        print(f"web: serving the console at {shown}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


COMMAND = base.Command(
    __name__,
    summary="serve the web console (runs, dead letters, services, metrics)",
    description="Serve the web console.",
    add_arguments=add_arguments,
    run=run,
)
