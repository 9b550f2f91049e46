"""The explorer in a real headless Chromium (Debian `chromium` + `chromium-driver`, Selenium from
PyPI), run by tests/explorer.rs against a stackd holding real JVM stacks.

usage: explorer.py <base url> <app> <other app> <screenshot dir>

Every figure the page shows is checked against stackd's JSON API (label totals from /apps/<app>,
range totals from /apps/<app>/timeline, match percentages from the .folded text of the same
selection). Screenshots of each view go to <screenshot dir>. Exits non-zero on the first failed
check, with what the page showed.
"""

import json
import os
import re
import signal
import sys
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

BASE, APP, OTHER, SHOTS = sys.argv[1:5]
WAIT = 20  # seconds any one thing may take to show

# Whatever happens, this process (and with it the driver) ends.
signal.alarm(240)


def api(path):
    with urllib.request.urlopen(BASE + path, timeout=10) as r:
        return r.read().decode()


def api_json(path):
    return json.loads(api(path))


def wait(what, cond):
    deadline = time.time() + WAIT
    last = None
    while time.time() < deadline:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # the page is still being redrawn
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def page_query(driver):
    return urllib.parse.parse_qsl(urllib.parse.urlparse(driver.current_url).query)


def shown_total(driver):
    el = driver.find_element(By.ID, "total")
    v = el.get_attribute("data-samples")
    return int(v) if v else None


def wait_total(driver, want, what):
    """The embedded graph's root frame says `want` samples."""
    wait(f"{what}: the flame graph shows {want} samples", lambda: shown_total(driver) == want)


def selection(driver):
    """The page's query, without page-only parameters, as a query string for the API."""
    q = [(k, v) for k, v in page_query(driver) if k not in ("by", "search")]
    return urllib.parse.urlencode(q)


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, name))


def severe_logs(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def main():
    os.makedirs(SHOTS, exist_ok=True)
    options = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"]:
        options.add_argument(a)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(WAIT)
    enc = urllib.parse.quote(APP, safe="")
    try:
        info = api_json(f"/apps/{enc}")

        # The index: both apps, most recent first; the hostile name is text, not markup; the
        # filter box hides what does not match.
        driver.get(BASE + "/")
        rows = driver.find_elements(By.CSS_SELECTOR, "#apps tbody tr")
        names = [r.find_element(By.CSS_SELECTOR, "td").text for r in rows]
        check(any(APP in n for n in names) and any(OTHER in n for n in names), f"index rows: {names}")
        check(not driver.find_elements(By.CSS_SELECTOR, "#apps b, #apps img"), "markup from an app name was rendered")
        check(len(driver.find_elements(By.CSS_SELECTOR, "svg.spark polyline")) >= 2, "a sparkline per app with samples")
        shot(driver, "index.png")
        driver.find_element(By.ID, "filter").send_keys(APP[:6])
        visible = [r for r in rows if r.is_displayed()]
        check(len(visible) == 1 and APP in visible[0].text, f"filter {APP[:6]!r} shows {[r.text for r in visible]}")

        # The app page, whole run: the embedded graph's total is the app's.
        driver.get(f"{BASE}/app/{enc}")
        wait_total(driver, info["total_samples"], "whole run")
        wait("the timeline", lambda: driver.find_elements(By.CSS_SELECTOR, "#timeline svg rect"))
        # The profile type picker lists the app's types with their totals; cpu is shown.
        types = Select(driver.find_element(By.ID, "type"))
        check([o.get_attribute("value") for o in types.options] == [t["type"] for t in info["types"]], "one option per type")
        check(types.first_selected_option.get_attribute("value") == info["default_type"] == "cpu", "the default type is selected")
        check(types.first_selected_option.text == f"cpu · {info['total_samples']:,} samples", types.first_selected_option.text)
        shot(driver, "app.png")

        # A label picker: executor 2, as /apps/<app> counts it.
        Select(driver.find_element(By.ID, "label-executor")).select_by_value("2")
        wait("executor=2 in the URL", lambda: ("executor", "2") in page_query(driver))
        wait_total(driver, info["labels"]["executor"]["2"]["samples"], "executor=2")

        # A time range preset: the last hour, as the timeline counts it for the same selection.
        driver.find_element(By.CSS_SELECTOR, '#presets button[data-range="1h"]').click()
        wait("from and to in the URL", lambda: {"from", "to"} <= {k for k, _ in page_query(driver)})
        want = api_json(f"/apps/{enc}/timeline?{selection(driver)}")["total"]
        check(0 < want < info["labels"]["executor"]["2"]["samples"], f"the last hour holds some samples: {want}")
        wait_total(driver, want, "last hour, executor=2")

        # Drag across the left half of the timeline: a range of whole steps.
        driver.find_element(By.CSS_SELECTOR, '#presets button[data-range=""]').click()
        wait("the whole run again", lambda: "from" not in {k for k, _ in page_query(driver)})
        wait_total(driver, info["labels"]["executor"]["2"]["samples"], "whole run, executor=2")
        chart = wait("the timeline", lambda: driver.find_element(By.CSS_SELECTOR, "#timeline svg"))
        w = chart.size["width"]
        ActionChains(driver).move_to_element_with_offset(chart, int(-w * 0.45), 0).click_and_hold().move_by_offset(
            int(w * 0.4), 0
        ).release().perform()
        wait("a dragged range in the URL", lambda: {"from", "to"} <= {k for k, _ in page_query(driver)})
        want = api_json(f"/apps/{enc}/timeline?{selection(driver)}")["total"]
        check(want > 0, "the dragged range holds samples")
        wait_total(driver, want, "dragged range")
        shot(driver, "app-range.png")

        # Search: the percentage the graph computes is the share of samples whose stack has a
        # matching frame, from the folded text of the same selection.
        folded = api(f"/flamegraph/{enc}.folded?{selection(driver)}")
        total = matched = 0
        for line in folded.splitlines():
            stack, count = line.rsplit(" ", 1)
            total += int(count)
            if any(re.search("hashCode", f) for f in stack.split(";")):
                matched += int(count)
        pct = 100 * matched / total
        want = "Matched: " + ("100" if pct == 100 else f"{pct:.1f}") + "%"
        box = driver.find_element(By.ID, "search")
        box.clear()
        box.send_keys("hashCode")
        driver.find_element(By.ID, "search-go").click()
        wait(f"{want!r} shown", lambda: driver.find_element(By.ID, "matched").text == want)
        check(("search", "hashCode") in page_query(driver), "the search is in the URL")
        shot(driver, "search.png")

        # The URL reproduces the view: loaded afresh, same total and same search result.
        permalink = driver.current_url
        driver.get(permalink)
        wait_total(driver, want_total := api_json(f"/apps/{enc}/timeline?{selection(driver)}")["total"], "permalink")
        wait(f"{want!r} after reload", lambda: driver.find_element(By.ID, "matched").text == want)
        check(want_total > 0, "permalink total")

        # Compare: executor 2 against executor 1 over the whole run.
        driver.find_element(By.CSS_SELECTOR, '#presets button[data-range=""]').click()
        wait("the whole run again", lambda: "from" not in {k for k, _ in page_query(driver)})
        driver.find_element(By.CSS_SELECTOR, "#compare-box summary").click()
        Select(driver.find_element(By.ID, "base-label-executor")).select_by_value("1")
        driver.find_element(By.ID, "compare").click()
        wait("base.executor=1 in the URL", lambda: ("base.executor", "1") in page_query(driver))
        wait_total(driver, info["labels"]["executor"]["2"]["samples"], "diff (widths are the current selection)")
        check(driver.find_element(By.ID, "legend").is_displayed(), "the diff legend is shown")
        check(not driver.find_element(By.ID, "dl-json").is_displayed(), "no JSON download of a diff")
        frame = driver.find_element(By.ID, "flame")
        driver.switch_to.frame(frame)
        titles = [t.get_attribute("textContent") for t in driver.find_elements(By.CSS_SELECTOR, "#frames title")]
        heading = driver.find_element(By.ID, "title").get_attribute("textContent")
        driver.switch_to.default_content()
        check("(differential)" in heading, f"diff title: {heading}")
        check(any(re.search(r"; [+-]\d+\.\d\d%\)$", t) for t in titles), f"frames carry their change: {titles[:5]}")
        dl = driver.find_element(By.ID, "dl-folded").get_attribute("href")
        two_columns = api(urllib.parse.urlparse(dl).path + "?" + urllib.parse.urlparse(dl).query)
        check(all(re.fullmatch(r".+ \d+ \d+", l) for l in two_columns.splitlines()), "the diff's folded download has two columns")
        shot(driver, "diff.png")

        # A crafted link: a search that would backtrack without end as a browser regex is
        # matched as plain text, in the page and in the SVG itself, and the tab stays responsive.
        evil = urllib.parse.quote("(.*.*)*#")
        driver.get(f"{BASE}/app/{enc}?search={evil}")
        wait("the hostile search answered", lambda: driver.find_element(By.ID, "matched").text == "no frame matches (as plain text)")
        started = time.time()
        check(driver.execute_script("return 1 + 1") == 2 and time.time() - started < 2, "the page answers")
        driver.get(f"{BASE}/flamegraph/{enc}.svg?s={evil}")
        started = time.time()
        check(driver.execute_script("return typeof search") == "function" and time.time() - started < 2, "the SVG answers")

        errors = severe_logs(driver)
        check(not errors, f"console errors: {errors}")
        print(json.dumps({"ok": True, "checked": ["index", "labels", "preset", "drag", "search", "permalink", "diff", "hostile search"]}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
