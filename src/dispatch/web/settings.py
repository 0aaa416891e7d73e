"""How the console is set up: the ``<web>`` section of ``dispatch.conf``
(``src/dispatch/runtime/supervise.xml``), read into one frozen value."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from zeo.address import Address, parse_address

# Loopback only: anyone who reaches the console can read every run.
DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_TOKEN_FILE = "var/dispatch-web.token"
DLQ_LOCATION_VARIABLE = "DISPATCH_DLQ_LOCATION"
DEFAULT_PAGE_SIZE = 50
RECIPES_VARIABLE = "DISPATCH_RECIPES"
PAPA_VARIABLE = "DISPATCH_PAPA"
# Objects kept in memory per connection: listing runs by state reads about
# three per run, and reading them again from zeo is what makes a page slow
# (ZODB's own default, 400, is far too small for 100,000 runs).
DEFAULT_CACHE_SIZE = 250_000
# The largest page a request may ask for (?size=), so one request stays cheap.
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class WebSettings:
    """The console's settings (see the ``<web>`` section's keys)."""

    bind: str = DEFAULT_BIND
    token_file: str = DEFAULT_TOKEN_FILE
    # A header an authenticating reverse proxy sets (None: no proxy trusted).
    user_header: str | None = None
    dlq_location: str = "DLQ"
    page_size: int = DEFAULT_PAGE_SIZE
    cache_size: int = DEFAULT_CACHE_SIZE
    # The papa kernel (the configuration's top-level papa key; None: $DISPATCH_PAPA
    # or papa's default port) and the recipes /spawn offers (NAME.json files).
    papa: str | None = None
    recipe_dir: str | None = None

    @classmethod
    def from_section(cls, section: Any | None) -> WebSettings:
        """Settings from a ZConfig ``<web>`` section (None: the defaults)."""
        location = os.environ.get(DLQ_LOCATION_VARIABLE, "DLQ")
        if section is None:
            return cls(
                dlq_location=location, recipe_dir=os.environ.get(RECIPES_VARIABLE)
            )
        return cls(
            bind=section.bind,
            token_file=section.token_file,
            user_header=section.user_header or None,
            dlq_location=section.dlq_location or location,
            page_size=section.page_size,
            cache_size=section.cache_size,
            recipe_dir=section.recipe_dir or os.environ.get(RECIPES_VARIABLE),
        )

    def bind_address(self) -> Address:
        """Where to listen: ``(host, port)`` or a socket path.  A bare port
        means loopback, never every interface."""
        return parse_address(self.bind)

    def papa_address(self) -> int | str | None:
        """The papa kernel: a port on 127.0.0.1 or a socket path (None:
        papa's default port)."""
        value = self.papa if self.papa else os.environ.get(PAPA_VARIABLE)
        if not value:
            return None
        return int(value) if value.isdigit() else value
