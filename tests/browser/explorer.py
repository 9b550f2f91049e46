"""The explorer in a real headless Chromium (Debian `chromium` + `chromium-driver`, Selenium from
PyPI), run by tests/explorer.rs against a stackd holding real deep Spark stacks.

usage: explorer.py <base url> <base url of an empty stackd> <screenshot dir>

Every figure the page shows is checked against stackd's JSON API or computed here from the
.folded text of the same selection (the heaviest function, a function's callers and callees,
search shares). Screenshots of each view go to <screenshot dir>. Exits non-zero on the first
failed check, with what the page showed; prints a JSON report (with the page's ready times) when
all pass.
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

BASE, EMPTY, SHOTS = sys.argv[1:4]
APP, FLINK, GAUGES, OTHER, WIDE = "spark-etl", "flink-job", "gauges-only", "evil<b>x</b>", "wide-20k"
WAIT = 20  # seconds any one thing may take to show
W, H = 1400, 900

# Whatever happens, this process (and with it the driver) ends.
signal.alarm(300)


def q(s):
    return urllib.parse.quote(s, safe="")


def api(path, data=None):
    req = urllib.request.Request(BASE + path, data=data)
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.read().decode()


def api_json(path):
    return json.loads(api(path))


def wait(what, cond, timeout=WAIT):
    deadline = time.time() + timeout
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
    v = driver.find_element(By.ID, "total").get_attribute("data-samples")
    return int(v) if v else None


def wait_total(driver, want, what):
    wait(f"{what}: the graph's root says {want}", lambda: shown_total(driver) == want)


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, name))


def folded(path):
    out = []
    for line in api(path).splitlines():
        stack, count = line.rsplit(" ", 1)
        out.append((stack.split(";"), int(count)))
    return out


def functions(stacks):
    """name -> [self, total] as stackd counts them (total: once per stack)."""
    f = {}
    for frames, n in stacks:
        for name in set(frames):
            f.setdefault(name, [0, 0])[1] += n
        f.setdefault(frames[-1], [0, 0])[0] += n
    return f


def sandwich(stacks, fn):
    """The function's total, and its immediate callers and callees at its outermost call."""
    total, callers, callees = 0, {}, {}
    for frames, n in stacks:
        if fn not in frames:
            continue
        at = frames.index(fn)
        total += n
        if at > 0:
            callers[frames[at - 1]] = callers.get(frames[at - 1], 0) + n
        if at + 1 < len(frames):
            callees[frames[at + 1]] = callees.get(frames[at + 1], 0) + n
    return total, callers, callees


def frames_at(driver, box, level):
    """(name, total) of the drawn frames of one level of a graph."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' .f[data-l=\"' + arguments[1] + '\"]'))"
        ".map(e => [e.title, Number(e.dataset.total), e.getBoundingClientRect().width])",
        box,
        level,
    )


def in_viewport(driver):
    """Drawn frames of the main graph wholly inside the window, with their text."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#flame .f')).filter(e => { const r = e.getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight && r.left >= 0 && r.right <= window.innerWidth; })"
        ".map(e => [e.textContent, Number(e.dataset.l)])"
    )


def check_sandwich(driver, fn, total, callers, callees):
    """The sandwich shown: its total; every caller and callee drawn has its exact total, and
    every one wider than 0.2% of the function's total is drawn; both roots carry the total."""
    wait(f"the sandwich of {fn}", lambda: driver.find_element(By.ID, "sandwich-title").get_attribute("data-total") == str(total))
    for box, want in (("callers", callers), ("callees", callees)):
        got = {n: t for n, t, _ in frames_at(driver, box, 1)}
        wide = {n: t for n, t in want.items() if t > 0.002 * total}
        check(all(got.get(n) == t for n, t in wide.items()), f"{box} of {fn}: {got} vs {want}")
        check(all(want.get(n) == t for n, t in got.items()), f"{box} of {fn}: {got} vs {want}")
    roots = [frames_at(driver, b, 0)[0][1] for b in ("callers", "callees")]
    check(roots == [total, total], f"both roots of {fn} carry its total {total}: {roots}")


def ready_ms(driver):
    return int(wait("the page's first graph", lambda: driver.execute_script("return document.body.dataset.ready")))


def main():
    os.makedirs(SHOTS, exist_ok=True)
    options = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={W},{H}"]:
        options.add_argument(a)
    options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(WAIT)
    # The window's inner size is what a 1400x900 screen shows.
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(W + (W - inner[0]), H + (H - inner[1]))
    report = {"ok": False}
    try:
        info = api_json(f"/apps/{q(APP)}")

        # ---- the index: relative times, the metrics-only app, the markup name as text.
        driver.get(BASE + "/")
        rows = driver.find_elements(By.CSS_SELECTOR, "#apps tbody tr")
        names = [r.find_element(By.CSS_SELECTOR, "td").text for r in rows]
        for n in (APP, FLINK, GAUGES, OTHER, WIDE):
            check(any(n in x for x in names), f"index rows {names} lack {n}")
        check(not driver.find_elements(By.CSS_SELECTOR, "#apps b, #apps img"), "markup from an app name was rendered")
        seen = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#apps time")]
        check(seen and all(re.fullmatch(r"just now|\d+ s ago|\d+ min ago", s) for s in seen), f"last seen: {seen}")
        shot(driver, "index.png")
        driver.find_element(By.ID, "filter").send_keys("spark-e")
        shown = [r for r in rows if r.is_displayed()]
        check(len(shown) == 1 and APP in shown[0].text, f"filter shows {[r.text for r in shown]}")
        # The empty index says how to send profiles, with a link.
        driver.get(EMPTY + "/")
        empty = driver.find_element(By.CSS_SELECTOR, "#apps tr.empty")
        check("No profiles yet" in empty.text, empty.text)
        check(empty.find_element(By.CSS_SELECTOR, "a").get_attribute("href") == EMPTY + "/setup", "the empty index links the setup page")
        shot(driver, "index-empty.png")
        driver.get(EMPTY + "/setup")
        check("Send profiles to stackd" in driver.find_element(By.TAG_NAME, "h1").text, "the setup page")
        host = urllib.parse.urlparse(EMPTY).hostname
        check(all(e.text == host for e in driver.find_elements(By.CSS_SELECTOR, ".host")), "the setup page names this host")

        # ---- the app page on arrival: roots on top, readable without scrolling.
        driver.get(f"{BASE}/app/{q(APP)}")
        wait_total(driver, info["total_samples"], "whole run")
        report["ready_ms_spark"] = ready_ms(driver)
        inside = in_viewport(driver)
        labelled = [t for t, _ in inside if t.strip()]
        check(["all", 0] in inside, f"the root frame's text is in the first viewport: {inside[:3]}")
        check(len(labelled) >= 10, f"at least 10 labelled frames in the first viewport, not {len(labelled)}")
        check(driver.execute_script("return window.scrollY") == 0, "no scrolling happened")
        types = Select(driver.find_element(By.ID, "type"))
        check([o.get_attribute("value") for o in types.options] == [t["type"] for t in info["types"]], "one option per type")
        check(types.first_selected_option.text == f"On-CPU (cpu) · {info['total_samples']:,} samples", types.first_selected_option.text)
        shot(driver, "app.png")

        # Hovering a frame shows its figures in the page.
        frame = max(driver.find_elements(By.CSS_SELECTOR, '#flame .f[data-l="3"]'), key=lambda e: int(e.get_attribute("data-total")))
        ActionChains(driver).move_to_element(frame).perform()
        details = wait("the details line", lambda: driver.find_element(By.ID, "details").text if frame.text[:20] in driver.find_element(By.ID, "details").text else None)
        total3 = int(frame.get_attribute("data-total"))
        check(f"{total3:,} samples" in details and "of all" in details, f"details: {details}")

        # Zoom: one click is one history step, kept in the URL; Back undoes it.
        share = lambda e: int(e.get_attribute("data-total")) / info["total_samples"]
        deep = [e for e in driver.find_elements(By.CSS_SELECTOR, "#flame .f") if int(e.get_attribute("data-l")) >= 8 and 0.05 < share(e) < 0.5]
        check(deep, "a frame of 5-50% at level 8 or deeper")
        target = deep[0]
        level = int(target.get_attribute("data-l"))
        target_total = int(target.get_attribute("data-total"))
        target.click()
        wait("zoom= in the URL", lambda: any(k == "zoom" and v.startswith(f"{level}-") for k, v in page_query(driver)))
        wide = lambda: [f for f in frames_at(driver, "flame", level) if f[2] > W * 0.9 and f[1] == target_total]
        wait("the zoomed frame full width", wide)
        driver.refresh()
        wait("the zoom kept by a reload", wide)
        driver.back()
        wait("Back: not zoomed", lambda: "zoom" not in dict(page_query(driver)) and frames_at(driver, "flame", 0)[0][2] > W * 0.9
             and shown_total(driver) == info["total_samples"] and not wide())

        # ---- the top functions table: the heaviest by self is the one the folded text says.
        stacks = folded(f"/flamegraph/{q(APP)}.folded")
        fns = functions(stacks)
        heaviest = sorted(fns.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[0]
        first = driver.find_element(By.CSS_SELECTOR, "#functions tbody tr")
        check(first.get_attribute("data-name") == heaviest[0], f"first row {first.get_attribute('data-name')} != {heaviest[0]}")
        cells = first.find_elements(By.CSS_SELECTOR, "td[data-value]")
        check([int(c.get_attribute("data-value")) for c in cells] == heaviest[1], f"self, total {heaviest[1]}")
        # Sorting by total puts the root's child with every sample on top.
        driver.find_element(By.CSS_SELECTOR, '#functions th[data-key="total"]').click()
        wait("sort=-total", lambda: ("sort", "-total") in page_query(driver))
        top_total = max(fns.items(), key=lambda kv: (kv[1][1], -len(kv[0])))
        check(int(driver.find_element(By.CSS_SELECTOR, "#functions tbody tr td:nth-child(4)").get_attribute("data-value")) == top_total[1][1], "sorted by total")
        driver.find_element(By.CSS_SELECTOR, '#functions th[data-key="self"]').click()
        wait("sort=-self", lambda: ("sort", "-self") in page_query(driver))
        # Clicking the row marks that function in the graph.
        driver.find_element(By.CSS_SELECTOR, "#functions tbody tr td.fn").click()
        marked = wait("frames marked", lambda: driver.find_elements(By.CSS_SELECTOR, "#flame .f.match"))
        check(all(m.get_attribute("textContent") in ("", heaviest[0]) for m in marked), "only that function is marked")
        covered = int(driver.find_element(By.ID, "matched").get_attribute("data-covered"))
        check(covered == heaviest[1][1], f"the marked share is its total: {covered} != {heaviest[1][1]}")
        # The search box filters the table too.
        rows_shown = driver.find_elements(By.CSS_SELECTOR, "#functions tbody tr")
        check(len(rows_shown) == 1 and rows_shown[0].get_attribute("data-name") == heaviest[0], "the table filtered by the search")
        shot(driver, "table.png")

        # ---- the sandwich of that function: its exact callers and callees.
        fn = heaviest[0]
        total, callers, callees = sandwich(stacks, fn)
        driver.find_element(By.CSS_SELECTOR, "#functions tbody tr button").click()
        wait("sandwich= in the URL", lambda: ("sandwich", fn) in page_query(driver))
        check_sandwich(driver, fn, total, callers, callees)
        report["sandwich"] = {"function": fn, "total": total, "callers": len(callers), "callees": len(callees)}
        # A function with several callers and callees, opened by a link to the view.
        rich = max((f for f in fns if fns[f][1] > 0.01 * info["total_samples"]), key=lambda f: min(len(sandwich(stacks, f)[1]), len(sandwich(stacks, f)[2])))
        total, callers, callees = sandwich(stacks, rich)
        check(len(callers) >= 2 and len(callees) >= 2, f"{rich}: {len(callers)} callers, {len(callees)} callees")
        driver.get(f"{BASE}/app/{q(APP)}?sandwich={q(rich)}")
        check_sandwich(driver, rich, total, callers, callees)
        report["sandwich_rich"] = {"function": rich, "total": total, "callers": len(callers), "callees": len(callees)}
        shot(driver, "sandwich.png")
        driver.find_element(By.ID, "sandwich-close").click()
        wait("no sandwich", lambda: "sandwich" not in dict(page_query(driver)) and driver.find_element(By.ID, "flame").is_displayed())

        # ---- labels: several values, negation; the tag table.
        driver.get(f"{BASE}/app/{q(APP)}")
        wait_total(driver, info["total_samples"], "whole run again")
        ex = info["labels"]["executor"]
        driver.find_element(By.CSS_SELECTOR, 'details.picker[data-label="executor"] summary').click()
        for v in ("1", "3"):
            driver.find_element(By.CSS_SELECTOR, f'details.picker[data-label="executor"] input[value="{v}"]').click()
            time.sleep(0.3)
        wait("executor=1,3", lambda: ("executor", "1,3") in page_query(driver))
        want = ex["1"]["samples"] + ex["3"]["samples"]
        check(api_json(f"/apps/{q(APP)}/timeline?executor=1,3")["total"] == want, "the API's total of executor=1,3")
        wait_total(driver, want, "executor=1,3")
        driver.find_element(By.CSS_SELECTOR, 'details.picker[data-label="executor"] input[data-negate]').click()
        wait("executor!=1,3", lambda: ("executor!", "1,3") in page_query(driver))
        want = ex["2"]["samples"] + ex["driver"]["samples"]
        check(api_json(f"/apps/{q(APP)}/timeline?executor!=1,3")["total"] == want, "the API's total of executor!=1,3")
        wait_total(driver, want, "executor!=1,3")
        Select(driver.find_element(By.ID, "by")).select_by_value("executor")
        shares = wait("the tag table", lambda: [float(e.get_attribute("data-share")) for e in driver.find_elements(By.CSS_SELECTOR, "#breakdown td.share")])
        check(abs(sum(shares) - 1) < 1e-9 and len(shares) == 2, f"shares of executor 2 and driver add up to the whole: {shares}")

        # Relative presets stay relative; local time; live mode follows new samples.
        driver.get(f"{BASE}/app/{q(APP)}")
        wait_total(driver, info["total_samples"], "whole run")
        driver.find_element(By.CSS_SELECTOR, '#presets button[data-range="1h"]').click()
        wait("from=-1h and no to", lambda: ("from", "-1h") in page_query(driver) and "to" not in dict(page_query(driver)))
        want = api_json(f"/apps/{q(APP)}/timeline?from=-1h")["total"]
        check(0 < want < info["total_samples"], f"the last hour holds some samples: {want}")
        wait_total(driver, want, "last hour")
        # The breakdown covers the selected range: each executor's amount in the last hour.
        Select(driver.find_element(By.ID, "by")).select_by_value("executor")
        want_rows = {s["value"]: s["total"] for s in api_json(f"/apps/{q(APP)}/timeline?from=-1h&by=executor")["series"]}
        got_rows = wait("the last hour's breakdown", lambda: {r.get_attribute("data-value"): int(r.get_attribute("data-total")) for r in driver.find_elements(By.CSS_SELECTOR, "#breakdown tbody tr")} == want_rows and want_rows)
        check(sum(want_rows.values()) == want, f"the breakdown adds up to the range's total: {got_rows}")
        Select(driver.find_element(By.ID, "by")).select_by_value("")
        Select(driver.find_element(By.ID, "tz")).select_by_value("local")
        wait("tz=local", lambda: ("tz", "local") in page_query(driver) and "local time" in driver.find_element(By.ID, "summary").text)
        driver.find_element(By.ID, "live").click()
        wait("live=1", lambda: ("live", "1") in page_query(driver))
        api(f"/import/folded?app={q(APP)}&executor=1", data=b"com.example.Live.tick:1 1000\n")
        wait("live mode shows new samples", lambda: shown_total(driver) == want + 1000, timeout=25)
        driver.find_element(By.ID, "live").click()
        info = api_json(f"/apps/{q(APP)}")

        # ---- orientation: the classic flame graph scrolls its roots into view.
        driver.get(f"{BASE}/app/{q(APP)}?orient=flame")
        wait_total(driver, info["total_samples"], "flame orientation")
        root = wait("the root in view", lambda: [f for f in in_viewport(driver) if f == ["all", 0]])
        check(root, "root in view")

        # ---- a diff: executor 2 against executor 1; the table's top row is the biggest growth.
        driver.get(f"{BASE}/app/{q(APP)}?executor=2&base.executor=1")
        wait_total(driver, info["labels"]["executor"]["2"]["samples"], "diff")
        check(driver.find_element(By.ID, "legend").is_displayed(), "the diff legend is shown")
        now = functions(folded(f"/flamegraph/{q(APP)}.folded?executor=2"))
        base = functions(folded(f"/flamegraph/{q(APP)}.folded?executor=1"))
        tn, tb = sum(v[0] for v in now.values()), sum(v[0] for v in base.values())
        growth = {k: now.get(k, [0, 0])[0] / tn - base.get(k, [0, 0])[0] / tb for k in set(now) | set(base)}
        top = max(growth.items(), key=lambda kv: kv[1])
        first = wait("the diff table", lambda: driver.find_element(By.CSS_SELECTOR, "#functions tbody tr"))
        check(first.get_attribute("data-name") == top[0], f"biggest growth {top} but the table shows {first.get_attribute('data-name')}")
        check(f"+{100 * top[1]:.2f} pp" in first.text, f"{first.text} lacks +{100 * top[1]:.2f} pp")
        shot(driver, "diff.png")
        Select(driver.find_element(By.ID, "by")).select_by_value("executor")
        cells = wait("the diff breakdown", lambda: [[c.text for c in r.find_elements(By.CSS_SELECTOR, "td")] for r in driver.find_elements(By.CSS_SELECTOR, "#breakdown tbody tr")])
        check(len(cells) == 1 and cells[0][1] == "2" and cells[0][3] == "100.00%" and cells[0][4] == "0.00%" and cells[0][5] == "+100.00 pp", f"executor 2 against executor 1, per executor: {cells}")

        # ---- a Flink-shaped app: On-CPU by default, the type in the URL when switched.
        driver.get(f"{BASE}/app/{q(FLINK)}")
        finfo = api_json(f"/apps/{q(FLINK)}")
        totals = {t["type"]: t["total"] for t in finfo["types"]}
        wait_total(driver, totals["cpu"], "On-CPU by default")
        check(Select(driver.find_element(By.ID, "type")).first_selected_option.get_attribute("value") == "cpu", "cpu selected")
        shot(driver, "flink.png")
        Select(driver.find_element(By.ID, "type")).select_by_value("off_cpu")
        wait("type=off_cpu", lambda: ("type", "off_cpu") in page_query(driver))
        wait_total(driver, totals["off_cpu"], "Off-CPU")
        check(totals["off_cpu"] != totals["cpu"], "the types differ")

        # ---- dead ends, replaced.
        # A metrics-only app says so and lists its families.
        driver.get(f"{BASE}/app/{q(GAUGES)}")
        box = wait("the metrics-only message", lambda: driver.find_element(By.ID, "metrics-only") if driver.find_element(By.ID, "metrics-only").is_displayed() else None)
        check("sends metrics, but no stack samples" in box.text, box.text)
        fams = wait("its families", lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#families code")])
        body = api(f"/metrics?app={q(GAUGES)}")
        check(fams == re.findall(r"^# HELP (\S+)", body, re.M) and fams, f"families {fams}")
        check(driver.find_element(By.ID, "metrics-link").get_attribute("href") == f"{BASE}/metrics?app={q(GAUGES)}", "the link to its series")
        shot(driver, "metrics-only.png")
        # An unknown app: a page with the closest names and the way home.
        driver.get(f"{BASE}/app/spark-et")
        check("No app named" in driver.find_element(By.TAG_NAME, "h1").text, "404 heading")
        check(APP in [a.text for a in driver.find_elements(By.CSS_SELECTOR, "ul.suggestions a")], "the closest name offered")
        shot(driver, "not-found.png")
        # Compare ticked without a baseline: it stays ticked and says what to pick.
        driver.get(f"{BASE}/app/{q(APP)}")
        wait_total(driver, info["total_samples"], "whole run")
        driver.find_element(By.CSS_SELECTOR, "#compare-box summary").click()
        driver.find_element(By.ID, "compare").click()
        wait("the compare hint", lambda: driver.find_element(By.ID, "compare-hint").is_displayed())
        check(driver.find_element(By.ID, "compare").is_selected(), "compare stays ticked")
        shot(driver, "compare-pending.png")
        # An empty selection: an error, styled as one, and a loading indicator while waiting.
        driver.get(f"{BASE}/app/{q(APP)}?executor=nope")
        err = wait("the error", lambda: driver.find_element(By.ID, "error") if driver.find_element(By.ID, "error").is_displayed() else None)
        check("no data" in err.text, err.text)
        check(err.value_of_css_property("background-color") == "rgba(253, 236, 234, 1)", "styled as an error")
        shot(driver, "error.png")
        driver.get(f"{BASE}/app/{q(FLINK)}")
        wait_total(driver, totals["cpu"], "On-CPU")
        driver.execute_script("const f = window.fetch; window.fetch = (...a) => new Promise(r => setTimeout(() => r(f(...a)), 1500));")
        Select(driver.find_element(By.ID, "type")).select_by_value("off_cpu")
        wait("the loading indicator", lambda: driver.find_element(By.ID, "loading").is_displayed(), timeout=1.4)
        check(len(driver.find_elements(By.CSS_SELECTOR, "#flame .f")) > 10, "the previous graph stays while loading")
        shot(driver, "loading.png")
        check(shown_total(driver) == totals["cpu"], "the previous figures stay while loading")
        wait_total(driver, totals["off_cpu"], "Off-CPU")
        check(not driver.find_element(By.ID, "loading").is_displayed(), "the indicator goes")
        # A one-step timeline is a bar, not a wall.
        driver.get(f"{BASE}/app/{q(OTHER)}")
        bar = wait("one bar", lambda: driver.find_element(By.CSS_SELECTOR, "#timeline svg rect.c0"))
        steps = int(driver.find_element(By.CSS_SELECTOR, "#timeline svg").get_attribute("data-steps"))
        check(steps <= 2 and float(bar.get_attribute("width")) <= 48, f"a bar of one of {steps} steps is narrow")
        shot(driver, "one-step.png")
        check(driver.title == f"{OTHER} · stackd" and not driver.find_elements(By.CSS_SELECTOR, "h1 b"), "the markup name is text")

        # A crafted search that would backtrack without end is matched as plain text.
        evil = urllib.parse.quote("(.*.*)*#")
        driver.get(f"{BASE}/app/{q(APP)}?search={evil}")
        wait("the hostile search answered", lambda: driver.find_element(By.ID, "matched").text == "no frame matches (as plain text)")
        started = time.time()
        check(driver.execute_script("return 1 + 1") == 2 and time.time() - started < 2, "the page answers")

        # ---- speed: 20,000 distinct deep stacks, page ready (graph drawn) in a fresh tab.
        times = []
        for _ in range(3):
            driver.get("about:blank")
            driver.get(f"{BASE}/app/{q(WIDE)}")
            times.append(ready_ms(driver))
        winfo = api_json(f"/apps/{q(WIDE)}")
        check(winfo["unique_stacks"] == 20000, f"20,000 stacks: {winfo['unique_stacks']}")
        report["ready_ms_20k"] = times
        report["ready_ms_20k_median"] = sorted(times)[1]

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "404" not in e["message"]]
        check(not errors, f"console errors: {errors}")
        report["ok"] = True
        print(json.dumps(report))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
