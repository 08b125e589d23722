"""The README's screenshot of the console (docs/console.png): a sandbox façade, two 503s
from PDS set from the page's fault controls, then one scenario run (so the trace shows the
retries), the whole page at 1280 CSS pixels wide.

    .venv/bin/python -m tests.browser.screenshot [docs/console.png]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.harness import DESKTOP, ThreadedFacade, sandbox_settings, set_viewport, start_chromium

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
SCENARIO_REQUEST = "GET /Patient/9000000009"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--viewport-only", action="store_true", help="1280x800 only, not the whole page")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="facade-console-shot-"))
    facade = ThreadedFacade(sandbox_settings(directory))
    driver = None
    try:
        url = facade.start()
        driver = start_chromium()
        wait = WebDriverWait(driver, 30)
        driver.get(f"{url}/_console")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
        Select(driver.find_element(By.ID, "fault-api")).select_by_value("pds")
        Select(driver.find_element(By.ID, "fault-kind")).select_by_value("status")
        driver.find_element(By.ID, "fault-apply").click()  # the form's defaults: 503, twice
        wait.until(ec.text_to_be_present_in_element((By.ID, "active-faults"), "503"))
        for entry in driver.find_elements(By.CSS_SELECTOR, "#scenario-list li.scenario"):
            if entry.find_element(By.CSS_SELECTOR, ".meta code").text == SCENARIO_REQUEST:
                entry.find_element(By.CSS_SELECTOR, "button.run-scenario").click()
                break
        else:
            raise SystemExit(f"no scenario for {SCENARIO_REQUEST}")
        wait.until(ec.presence_of_element_located((By.ID, "trace-status")))
        # Open the last NHS call's details: the picture shows what a trace row holds.
        for details in driver.find_elements(By.CSS_SELECTOR, '#waterfall li[data-kind="nhs"] details')[-1:]:
            details.find_element(By.TAG_NAME, "summary").click()
        driver.execute_script("window.scrollTo(0, 0); document.activeElement.blur()")
        if not args.viewport_only:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            set_viewport(driver, DESKTOP[0], int(height))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        if not driver.save_screenshot(str(args.output)):
            raise SystemExit("the screenshot failed")
        print(args.output)
    finally:
        if driver is not None:
            driver.quit()
        facade.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
