"""What the browser tests and the README screenshot script share: a sandbox façade served
from a background thread, and headless Debian Chromium driven by Selenium.

Selenium is blocking, so the façade cannot share the caller's event loop: it runs in its
own loop in a thread, as `make run` runs it, with every NHS API left to the embedded
emulator (sandbox mode: the console is on, mints development tokens and sets faults).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

from server.app import create_app
from server.serving import serving
from server.settings import Settings
from tests.support.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DESKTOP = (1280, 800)
NARROW = (420, 800)


def sandbox_settings(directory: Path) -> Settings:
    """`make run`'s configuration on a free loopback port, with its own development issuer
    key and audit spool under `directory`."""
    port = free_port()
    return Settings(
        host="127.0.0.1",
        port=port,
        base_url=f"http://127.0.0.1:{port}",
        dev_issuer_key_path=directory / "dev-issuer.pem",
        audit_spool_dir=directory / "audit-spool",
    )


class ThreadedFacade:
    """A façade served by Hypercorn in its own event loop, in a daemon thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="console-facade", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to the thread waiting in start()
            self._error = error
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with serving(create_app(self.settings), port=self.settings.port, ready_path="/metadata") as url:
            self.url = url
            self._ready.set()
            await self._stop.wait()

    def start(self, timeout: float = 60.0) -> str:
        """Start serving; the base URL once /metadata answers."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the façade did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError("the façade did not start") from self._error
        return self.url

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


def start_chromium() -> WebDriver:
    """Headless Debian Chromium through Debian's chromedriver, viewport 1280x800. Raises
    (never skips) when either is missing or the browser cannot start."""
    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not binary.exists():
            raise RuntimeError(f"{binary} is missing: `make test` installs Debian's {package}")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI containers run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-sync",
        "--disable-default-apps",
        "--force-device-scale-factor=1",
        f"--window-size={DESKTOP[0]},{DESKTOP[1] + 200}",  # the viewport itself is set by set_viewport
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    set_viewport(driver, *DESKTOP)
    return driver


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    """Make the page's viewport exactly width x height CSS pixels (a headless window's size
    includes browser chrome the page never gets). Media queries follow it."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
