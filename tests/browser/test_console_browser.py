"""The testers' console in a real browser: headless Chromium loads /_console from a sandbox
façade on loopback, runs a scenario, injects an NHS fault from the page, uses the
capability view and the keyboard, and is photographed at 1280x800 and 420x800.

Every wait is a WebDriverWait on what the page shows; nothing sleeps a fixed time.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.harness import NARROW, set_viewport

pytestmark = pytest.mark.browser

WAIT = 20  # seconds: the fault test waits through the façade's retries and backoff

# Patients each test reads, so that one test's cached answer never hides another's NHS call.
SCENARIO_PATIENT = "9000000009"  # the catalogue's plain read
FAULT_PATIENT = "9000000033"  # read only by the fault test: uncached when the fault is set


def open_console(browser: WebDriver, base_url: str) -> WebDriverWait[WebDriver]:
    """Load the console and wait until it has its config, capability and scenarios."""
    browser.get(f"{base_url}/_console")
    wait = WebDriverWait(browser, WAIT)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    return wait


def scenario_for(browser: WebDriver, method_and_path: str) -> WebElement:
    """The catalogue entry whose request line starts with `method_and_path`."""
    for entry in browser.find_elements(By.CSS_SELECTOR, "#scenario-list li.scenario"):
        shown = entry.find_element(By.CSS_SELECTOR, ".meta code").text
        if shown == method_and_path or shown.startswith(method_and_path + "?"):
            return entry
    shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#scenario-list .meta code")]
    raise AssertionError(f"no scenario for {method_and_path}; the catalogue shows {shown}")


def response_status(browser: WebDriver) -> str:
    return browser.find_element(By.ID, "response-status").text


def wait_for_response(browser: WebDriver, request_line: str) -> str:
    """Wait for the response panel to show `request_line`'s answer and for its trace; the status."""
    wait = WebDriverWait(browser, WAIT)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#response .status-line code"), request_line))
    wait.until(ec.presence_of_element_located((By.ID, "trace-status")))
    return response_status(browser)


def trace_rows(browser: WebDriver, kind: str | None = None) -> list[WebElement]:
    selector = "#waterfall li.event" + (f'[data-kind="{kind}"]' if kind else "")
    return browser.find_elements(By.CSS_SELECTOR, selector)


def set_field(browser: WebDriver, element_id: str, value: str) -> None:
    field = browser.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


# WCAG 2.1 contrast of every visible piece of text against the first opaque background
# behind it: 4.5:1, or 3:1 for large text (24px, or 18.66px bold).
CONTRAST_SCRIPT = """
const rgb = (c) => (c.match(/[0-9.]+/g) || []).map(Number);
const lum = ([r, g, b]) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const background = (node) => {
  for (let n = node; n; n = n.parentElement) {
    const c = rgb(getComputedStyle(n).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
const failures = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let text = walker.nextNode(); text; text = walker.nextNode()) {
  const node = text.parentElement;
  if (!text.textContent.trim() || !node || !node.checkVisibility() || node.closest("[disabled], option")) continue;
  const style = getComputedStyle(node);
  const [l1, l2] = [lum(rgb(style.color)), lum(background(node))].sort((a, b) => b - a);
  const ratio = (l1 + 0.05) / (l2 + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) failures.push(`${ratio.toFixed(2)}: ${text.textContent.trim().slice(0, 40)}`);
}
return failures;
"""


def test_the_page_loads_only_its_own_resources_under_its_csp(browser: WebDriver, console_url: str) -> None:
    open_console(browser, console_url)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(console_url))
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(performance.getEntriesByType('navigation').map(e => e.name))"
    )
    assert any(name.endswith("/_console/static/console.js") for name in resources)
    assert any(name.endswith("/_console/static/console.css") for name in resources)
    foreign = [name for name in resources if not name.startswith(origin + "/")]
    assert foreign == [], f"resources from elsewhere: {foreign}"
    # The CSP (default-src 'self', no inline script or style) reports every violation here.
    violations = [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
    assert violations == []
    # Landmarks and headings a screen reader navigates by.
    assert browser.find_element(By.TAG_NAME, "main")
    assert browser.find_element(By.TAG_NAME, "h1").text
    assert browser.find_element(By.ID, "status").get_attribute("aria-live") == "polite"
    # Every visible form control has a label.
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter(c => c.offsetParent !== null && c.labels.length === 0 && !c.getAttribute('aria-label'))"
        ".map(c => c.id || c.name || c.outerHTML)"
    )
    assert unlabelled == []


def test_a_scenario_fills_the_builder_runs_and_shows_response_and_trace(browser: WebDriver, console_url: str) -> None:
    open_console(browser, console_url)
    request_line = f"GET /Patient/{SCENARIO_PATIENT}"
    scenario_for(browser, request_line).find_element(By.CSS_SELECTOR, "button.run-scenario").click()

    assert wait_for_response(browser, request_line).startswith("200")
    assert Select(browser.find_element(By.ID, "req-type")).first_selected_option.get_attribute("value") == "Patient"
    assert browser.find_element(By.ID, "req-id").get_attribute("value") == SCENARIO_PATIENT
    tree = browser.find_element(By.ID, "json-tree")
    assert f'"{SCENARIO_PATIENT}"' in tree.text
    assert '"Patient"' in tree.text
    # Collapsible: a branch closes and opens again.
    branch = tree.find_element(By.CSS_SELECTOR, "li details")
    branch.find_element(By.TAG_NAME, "summary").click()
    assert branch.get_attribute("open") is None

    assert browser.find_element(By.ID, "trace-status").text == "Final status 200 OK"
    nhs = trace_rows(browser, "nhs")
    assert nhs, [row.text for row in trace_rows(browser)]
    assert nhs[0].find_element(By.CSS_SELECTOR, ".kind").get_attribute("textContent") == "NHS call"  # not colour alone
    bar = nhs[0].find_element(By.CSS_SELECTOR, ".bar")
    assert bar.size["width"] >= 3
    assert trace_rows(browser, "response")
    assert "Patient" in browser.find_element(By.ID, "status").text  # announced in the live region

    # The request is listed among the recent ones, and its entry brings its trace back.
    recent = f"{request_line} → 200 OK"
    WebDriverWait(browser, WAIT).until(ec.text_to_be_present_in_element((By.ID, "recent-list"), recent))
    browser.execute_script("document.getElementById('trace').replaceChildren()")
    entry = next(b for b in browser.find_elements(By.CSS_SELECTOR, "#recent-list button") if b.text.startswith(recent))
    entry.click()
    WebDriverWait(browser, WAIT).until(ec.presence_of_element_located((By.ID, "trace-status")))
    assert trace_rows(browser, "nhs")

    # Everything on the page now (builder, response, trace) has AA contrast.
    assert browser.execute_script(CONTRAST_SCRIPT) == []


def test_a_fault_from_the_page_shows_retries_in_the_trace(browser: WebDriver, console_url: str) -> None:
    wait = open_console(browser, console_url)
    Select(browser.find_element(By.ID, "fault-api")).select_by_value("pds")
    Select(browser.find_element(By.ID, "fault-kind")).select_by_value("status")
    set_field(browser, "fault-status", "503")
    set_field(browser, "fault-times", "2")
    browser.find_element(By.ID, "fault-apply").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "active-faults"), "503"))
    assert "pds" in browser.find_element(By.ID, "active-faults").text

    try:
        Select(browser.find_element(By.ID, "req-type")).select_by_value("Patient")
        set_field(browser, "req-id", FAULT_PATIENT)
        Select(browser.find_element(By.ID, "tok-role")).select_by_value("clinician")
        set_field(browser, "tok-patient", FAULT_PATIENT)
        browser.find_element(By.ID, "send").click()
        status = wait_for_response(browser, f"GET /Patient/{FAULT_PATIENT}")

        # Two 503s, then the third attempt answers: the client sees 200, the trace the retries.
        assert status.startswith("200"), status
        assert browser.find_element(By.ID, "trace-status").text == "Final status 200 OK"
        rows = [row.text for row in trace_rows(browser)]
        nhs_calls = [row.find_element(By.CSS_SELECTOR, ".label").text for row in trace_rows(browser, "nhs")]
        assert len(nhs_calls) == 3, rows
        assert "503" in nhs_calls[0] and "503" in nhs_calls[1] and "200" in nhs_calls[2], nhs_calls
        assert len(trace_rows(browser, "retry")) == 2, rows
        # Both faults were used up by the retries.
        wait.until(lambda d: "503" not in d.find_element(By.ID, "active-faults").text)
    finally:
        browser.find_element(By.ID, "fault-clear").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "active-faults"), "None"))


def test_the_capability_view_lists_types_and_fills_the_builder(browser: WebDriver, console_url: str) -> None:
    open_console(browser, console_url)
    patient = browser.find_element(By.CSS_SELECTOR, '#capability-list details[data-type="Patient"]')
    types = [d.get_attribute("data-type") for d in browser.find_elements(By.CSS_SELECTOR, "#capability-list > details")]
    assert {"Patient", "MedicationRequest", "AllergyIntolerance", "ServiceRequest"} <= set(types)
    patient.find_element(By.TAG_NAME, "summary").click()
    assert "read" in patient.find_element(By.CSS_SELECTOR, ".interactions").text

    Select(browser.find_element(By.ID, "req-type")).select_by_value("MedicationRequest")
    patient.find_element(By.CSS_SELECTOR, "button.fill-type").click()
    assert Select(browser.find_element(By.ID, "req-type")).first_selected_option.get_attribute("value") == "Patient"
    assert browser.find_element(By.ID, "req-id").get_attribute("value") == ""

    patient.find_element(By.CSS_SELECTOR, 'button.fill-param[data-param="family"]').click()
    keys = [k.get_attribute("value") for k in browser.find_elements(By.CSS_SELECTOR, "#params .kv-key")]
    assert keys == ["family"]
    value = browser.switch_to.active_element  # the new row's value field has the focus
    assert value.get_attribute("class") == "kv-value"
    value.send_keys("Smith")
    assert browser.find_element(By.ID, "req-preview").text == "GET /Patient?family=Smith"


def test_the_keyboard_reaches_send_and_sends(browser: WebDriver, console_url: str) -> None:
    open_console(browser, console_url)
    reached = False
    for _ in range(300):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.switch_to.active_element
        if focused.get_attribute("id") == "send":
            reached = True
            break
    assert reached, "Tab never reached the Send button"
    # The focus is visible: an outline drawn around the focused button.
    outline = browser.execute_script(
        "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]"
    )
    assert outline[0] != "none" and outline[1] != "0px", outline
    request_line = browser.find_element(By.ID, "req-preview").text
    focused.send_keys(Keys.ENTER)
    assert wait_for_response(browser, request_line)


def test_screenshots_at_desktop_and_narrow_sizes(browser: WebDriver, console_url: str, artifacts: Path) -> None:
    wait = open_console(browser, console_url)
    request_line = f"GET /Patient/{SCENARIO_PATIENT}"
    scenario_for(browser, request_line).find_element(By.CSS_SELECTOR, "button.run-scenario").click()
    wait_for_response(browser, request_line)

    side = browser.find_element(By.CSS_SELECTOR, ".column-side")
    main = browser.find_element(By.CSS_SELECTOR, ".column-main")
    assert main.location["x"] > side.location["x"] + side.size["width"] - 1  # two columns at 1280
    assert browser.save_screenshot(str(artifacts / "console-1280x800.png"))
    browser.execute_script("document.getElementById('response-heading').scrollIntoView()")
    assert browser.save_screenshot(str(artifacts / "console-1280x800-response.png"))

    set_viewport(browser, *NARROW)
    wait.until(lambda d: d.execute_script("return window.innerWidth") == NARROW[0])
    wait.until(lambda d: main.location["y"] >= side.location["y"] + side.size["height"])  # one column
    assert abs(main.location["x"] - side.location["x"]) <= 1
    overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {NARROW[0]}px"
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(artifacts / "console-420x800.png"))
    browser.execute_script("document.getElementById('trace-heading').scrollIntoView()")
    assert browser.save_screenshot(str(artifacts / "console-420x800-trace.png"))


def test_xml_is_shown_as_text(browser: WebDriver, console_url: str) -> None:
    open_console(browser, console_url)
    Select(browser.find_element(By.ID, "hdr-accept")).select_by_value("application/fhir+xml")
    request_line = browser.find_element(By.ID, "req-preview").text
    browser.find_element(By.ID, "send").click()
    assert wait_for_response(browser, request_line).startswith("200")
    raw = browser.find_element(By.CSS_SELECTOR, "#response pre.raw")
    assert raw.text.lstrip().startswith("<"), raw.text[:200]
    assert "<Patient" in raw.text
    assert browser.find_elements(By.ID, "json-tree") == []


def test_live_mode_asks_for_a_token_and_offers_no_faults_or_scenarios(
    browser: WebDriver, live_console_url: str
) -> None:
    open_console(browser, live_console_url)
    assert browser.find_element(By.ID, "mode").text == "live"
    assert browser.find_element(By.ID, "tok-paste").is_displayed()
    assert not browser.find_element(By.ID, "tok-role").is_displayed()
    assert not browser.find_element(By.ID, "fault-apply").is_enabled()
    assert "sandbox mode only" in browser.find_element(By.ID, "scenario-list").text
    assert "Paste a token" in browser.find_element(By.ID, "recent-list").text
