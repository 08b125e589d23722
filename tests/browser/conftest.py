"""Browser fixtures: a sandbox façade on loopback with the console on, and headless
Chromium (tests/browser/harness.py). Chromium must start: a missing browser or driver is
an error, never a skip (`make test` installs Debian's chromium and chromium-driver first)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver

from tests.browser.harness import DESKTOP, ThreadedFacade, sandbox_settings, set_viewport, start_chromium

LIVE_PDS_URL = "https://sandbox.api.service.nhs.uk/personal-demographics/FHIR/R4"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="session")
def console_url() -> Iterator[str]:
    """Base URL of a sandbox façade (embedded emulator, console on), for the whole session."""
    with _facade("facade-console-test-") as url:
        yield url


@pytest.fixture(scope="module")
def live_console_url() -> Iterator[str]:
    """A façade in the console's live mode: FACADE_CONSOLE=on with PDS at NHS England's
    sandbox (never called here: the tests only load the page)."""
    with _facade("facade-console-live-", console="on", dev_issuer="on", pds_base_url=LIVE_PDS_URL) as url:
        yield url


@contextlib.contextmanager
def _facade(prefix: str, **changes: object) -> Iterator[str]:
    """A sandbox façade in its own thread, its state in a fresh directory, with `changes`."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    facade = ThreadedFacade(sandbox_settings(directory).model_copy(update=changes))
    try:
        yield facade.start()
    finally:
        facade.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium() -> Iterator[WebDriver]:
    driver = start_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: WebDriver) -> WebDriver:
    """The session's browser at 1280x800 with an empty page and an empty console log."""
    chromium.get("about:blank")
    set_viewport(chromium, *DESKTOP)
    chromium.get_log("browser")  # drop what earlier tests left
    return chromium


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (tests/artifacts/, ignored by git; CI can keep them)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
