"""Browser tests: Playwright driving Debian's chromium headless against a
real console, zeo server, papa kernel and Slurm cluster.

``make browser-up`` (called by ``.ci/run``) installs chromium with apt.
Without chromium or playwright every test here skips with the reason; with
``ZEOPAPA_REQUIRE_BROWSER=1`` (CI) they fail instead.  ``--screenshots``
(or ``ZEOPAPA_SCREENSHOTS=DIR``) saves each page the tests visit as
``docs/web/NAME.png``.
"""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# The flags the brief and Debian's packaging want for a headless run in a
# container: no sandbox (we run as root), nothing that calls home.
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "web"


def pytest_addoption(parser):
    parser.addoption(
        "--screenshots",
        action="store_true",
        help="save the browser tests' pages as docs/web/*.png",
    )


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"no {CHROMIUM}: run make browser-up (installs Debian's chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install -e '.[browser]'"
    return None


# Per module, not per session: Playwright's sync API keeps an event loop
# running on the main thread while it lives, and every later test that calls
# asyncio.run() would fail ("cannot be called from a running event loop").
@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    reason = _missing()
    if reason is not None:
        if os.environ.get("ZEOPAPA_REQUIRE_BROWSER"):
            pytest.fail(f"ZEOPAPA_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=LAUNCH_FLAGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(request):
    """``screenshot(page, NAME)``: docs/web/NAME.png when asked for."""
    wanted = request.config.getoption("--screenshots") or os.environ.get(
        "ZEOPAPA_SCREENSHOTS"
    )

    def take(page, name):
        if wanted:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return take
