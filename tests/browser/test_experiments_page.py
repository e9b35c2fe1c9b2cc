"""The console's experiments page in a real headless Chromium against a live server: an editor
creates an experiment in the form, starts it, watches both arms' users and metrics arrive from
real traffic, pauses, ships and stops it with the keyboard alone; refusals read in words; the
sample-ratio, guardrail and interleaving verdicts and the timeline chart render what the API
says. Screenshots land in tests/browser/artifacts/ (or $MEDLEY_TEST_ARTIFACTS)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import EDITOR, LiveServer
from tests.browser.console_page import Shot, by_id, sign_in, wait

pytestmark = pytest.mark.heavy

USERS = [f"page-user-{k}" for k in range(40)]


def open_page(browser: Any, url: str, key: str, before_sign_in: str = "") -> None:
    """The experiments page, fresh, signed in with `key`, its list loaded. `before_sign_in`
    runs in the page first (to stand in for the API)."""
    browser.get(f"{url}/console/static/console.css")  # same origin, loads nothing else
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{url}/console/experiments")
    wait(browser, lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-signed-in")
         == "false")
    if before_sign_in:
        browser.execute_script(before_sign_in)
    sign_in(browser, key)
    wait(browser, lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))


def steady(browser: Any, check: Callable[[Any], Any], timeout: float = 20.0) -> Any:
    """wait(), where the page may replace what `check` reads meanwhile (it redraws the results
    every few seconds while an experiment runs): a replaced element is read again."""
    return WebDriverWait(browser, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(check)


def listed(browser: Any, exp_id: str) -> str:
    return str(steady(browser, lambda b: b.find_element(
        By.CSS_SELECTOR, f"[data-experiment-id='{exp_id}']").text)).lower()


def results(browser: Any) -> dict[str, Any]:
    """What the results area shows, read at once."""
    ctr = browser.find_element(By.CSS_SELECTOR, "[data-testid='metrics-table'] "
                                                "tr[data-metric='ctr']")
    versus = ctr.find_element(By.CSS_SELECTOR, "[data-testid='versus']")
    bar = versus.find_element(By.CSS_SELECTOR, "svg.interval")
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.timeline")
    return {
        "users": arm_users(browser),
        "ctr": ctr.find_element(By.CSS_SELECTOR, "td[data-arm='control']").text,
        "versus": versus.text, "bar": bar.get_attribute("aria-label"),
        "spans": len(bar.find_elements(By.CSS_SELECTOR, "line.span")),
        "chart": charts[0].get_attribute("data-metric") if charts else None,
        "lines": {p.get_attribute("data-arm") for c in charts
                  for p in c.find_elements(By.CSS_SELECTOR, "polyline.line")},
    }


def whole_page(browser: Any, shot: Shot, step: str) -> None:
    """A screenshot of the whole page, not only what fits the window."""
    size = browser.get_window_size()
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size["width"], height + size["height"] - browser.execute_script(
        "return window.innerHeight"))
    try:
        shot(step)
    finally:
        browser.set_window_size(size["width"], size["height"])


def focused(browser: Any) -> Any:
    return browser.switch_to.active_element


def press(browser: Any, *keys: str) -> None:
    """Keys to whatever has focus, as a keyboard user types them."""
    for key in keys:
        focused(browser).send_keys(key)


def status(browser: Any) -> str:
    return str(by_id(browser, "detail").get_attribute("data-status"))


def message(browser: Any, needle: str, timeout: float = 20.0) -> str:
    return str(wait(browser, lambda b: needle in by_id(b, "messages").text
                    and by_id(b, "messages").text, timeout))


def arm_users(browser: Any) -> dict[str, int]:
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid='arms-table'] tbody tr")
    return {r.get_attribute("data-arm"): int(r.find_element(
        By.CSS_SELECTOR, "[data-field='users']").text) for r in rows}


@pytest.fixture
def admin(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An admin's client; every experiment left live is stopped afterwards, so that other
    tests' users are served as usual."""
    with live_server.client() as c:
        yield c
        for e in c.get("/v1/experiments").json():
            if e["status"] in ("running", "paused", "shipped"):
                assert c.post(f"/v1/experiments/{e['id']}/stop").status_code == 200


def traffic(server: LiveServer, users: list[str],
            clicks: Callable[[int, str], bool]) -> dict[str, str]:
    """Each user fetches recommendations with a client key; where clicks(k, arm) says so, the
    k-th user views the first item, citing the answer. Returns each user's arm."""
    _, key = server.mint("client", f"traffic-{uuid.uuid4().hex[:6]}")
    arm_of: dict[str, str] = {}
    with httpx.Client(base_url=server.url, timeout=60,
                      headers={"Authorization": f"Bearer {key}"}) as c:
        for k, user in enumerate(users):
            r = c.get(f"/v1/users/{user}/recommendations", params={"limit": 5})
            assert r.status_code == 200, r.text
            answer = r.json()
            arm_of[user] = answer["arm"]
            if clicks(k, answer["arm"]):
                r = c.post("/v1/events", json={"events": [{
                    "event_id": str(uuid.uuid4()), "user_id": user,
                    "item_id": answer["items"][0]["item_id"], "type": "view",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "recommendation_id": answer["recommendation_id"]}]})
                assert r.status_code == 200, r.text
    return arm_of


def test_pages_are_served_and_link_to_each_other(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as c:
        page = c.get("/console/experiments")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'href="/console"' in page.text and "experiments.js" in page.text
        assert 'href="/console/experiments"' in c.get("/console").text
        assert c.get("/console/experiments/", follow_redirects=False).status_code == 308
        for asset in ("experiments.js", "expform.js", "expview.js", "expchart.js"):
            r = c.get(f"/console/static/{asset}")
            assert r.status_code == 200 and r.headers["content-type"].startswith(
                "text/javascript")
        assert c.get("/v1/experiments").status_code == 401  # what it loads needs a key


def test_create_start_read_ship_and_stop_with_the_keyboard(
        browser: Any, live_server: LiveServer, admin: httpx.Client, shot: Shot) -> None:
    open_page(browser, live_server.url, live_server.editor_key)
    assert focused(browser).get_attribute("id") == "list-h"  # where the page starts

    # The form, by keyboard: a name, the treatment's ranker and MMR λ, a latency guardrail.
    by_id(browser, "f-name").send_keys("Blend against learned")
    treatment = browser.find_elements(By.CSS_SELECTOR, "[data-testid='arm-row']")[1]
    ranker = treatment.find_element(By.CSS_SELECTOR, "[data-key='ranker']")
    ranker.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)  # as configured -> learned -> hand blend
    treatment.find_element(By.CSS_SELECTOR, "[data-key='mmr_lambda']").send_keys("0.5")
    by_id(browser, "add-guard").send_keys(Keys.ENTER)
    metric = focused(browser)  # the new row's metric
    assert metric.get_attribute("data-path") == "guardrails.0.metric"
    metric.send_keys(Keys.END)  # the last choice: p95 latency
    bound = browser.find_element(By.CSS_SELECTOR, "[data-testid='guard-row'] [data-key='bound']")
    wait(browser, lambda b: bound.get_attribute("data-path") == "guardrails.0.max_value")
    bound.send_keys(Keys.CONTROL, "a")
    bound.send_keys("60000")
    by_id(browser, "create").send_keys(Keys.ENTER)
    message(browser, "Created “Blend against learned”")
    assert status(browser) == "draft"
    assert focused(browser).get_attribute("id") == "detail"  # the new experiment, to read
    exp_id = by_id(browser, "detail").get_attribute("data-experiment-id")
    made = admin.get(f"/v1/experiments/{exp_id}").json()
    assert [a["name"] for a in made["arms"]] == ["control", "treatment"]
    assert (made["arms"][1]["ranker"], made["arms"][1]["mmr_lambda"]) == ("blend", 0.5)
    assert made["guardrails"] == [{"metric": "p95_ms", "max_drop": None, "max_value": 60000.0}]
    assert made["created_by"] == f"{EDITOR} ({live_server.editor_id})"
    assert "draft" in listed(browser, exp_id)
    assert browser.find_element(By.CSS_SELECTOR, "[data-experiment-id][aria-current='true']"
                                ).get_attribute("data-experiment-id") == exp_id

    by_id(browser, "do-start").send_keys(Keys.ENTER)
    message(browser, "“Blend against learned” started.")
    assert status(browser) == "running"
    steady(browser, lambda b: "running" in listed(b, exp_id))

    # Real traffic: every control user views an item, one treatment user in four does.
    arm_of = traffic(live_server, USERS, lambda k, arm: arm == "control" or k % 4 == 0)
    expected = {arm: sum(a == arm for a in arm_of.values()) for arm in ("control", "treatment")}
    assert min(expected.values()) > 0, expected
    # The page refreshes itself while the experiment runs: no key pressed from here.
    seen = steady(browser, lambda b: (r := results(b))["users"] == expected
                  and r["ctr"][:1].isdigit() and float(r["ctr"]) > 0 and r["lines"] and r,
                  timeout=40)
    assert "against control, interval" in seen["bar"] and seen["spans"] == 1  # drawn
    assert "%" in seen["versus"] and " to " in seen["versus"]
    srm = by_id(browser, "srm")
    assert srm.get_attribute("data-mismatch") == "false"
    assert f"control {expected['control']}" in srm.text and "as configured" in srm.text
    guards = by_id(browser, "guardrails").text
    assert "p95 latency above 60000 ms" in guards and "No guardrail has fired" in guards
    assert seen["chart"] == "ctr" and seen["lines"] == {"control", "treatment"}
    assert "Results as of" in by_id(browser, "refreshed").text
    whole_page(browser, shot, "with-data")  # README's picture of the page

    # Pause and resume, then ship: every step by keys sent to whatever has focus.
    by_id(browser, "do-pause").send_keys(Keys.ENTER)
    message(browser, "paused")
    assert status(browser) == "paused" and focused(browser).get_attribute("id") != "do-pause"
    by_id(browser, "do-start").send_keys(Keys.ENTER)
    message(browser, "“Blend against learned” started.")
    by_id(browser, "do-ship").send_keys(Keys.ENTER)
    dialog = by_id(browser, "ship-dialog")
    wait(browser, lambda b: dialog.is_displayed())
    assert focused(browser).get_attribute("value") == "control"  # nothing chosen for you
    assert not by_id(browser, "ship-ok").is_enabled()
    press(browser, Keys.ARROW_DOWN)  # -> treatment, chosen
    assert focused(browser).get_attribute("value") == "treatment" and focused(browser).is_selected()
    press(browser, Keys.TAB)
    assert focused(browser).get_attribute("id") == "ship-cancel"
    press(browser, Keys.TAB)
    assert focused(browser).get_attribute("id") == "ship-ok"
    shot("ship-dialog")
    press(browser, Keys.ENTER)
    message(browser, "shipped: treatment serves every user")
    assert status(browser) == "shipped" and "shipped: treatment" in by_id(
        browser, "detail-summary").text
    row = browser.find_element(By.CSS_SELECTOR, "[data-testid='arms-table'] "
                                                "tr[data-arm='treatment'] [data-field='state']")
    assert row.text == "shipped: serves everyone"
    after = admin.get(f"/v1/experiments/{exp_id}").json()
    assert (after["status"], after["winner"]) == ("shipped", "treatment")
    entry = browser.find_element(By.CSS_SELECTOR, "[data-testid='audit-entry']")  # newest first
    assert entry.get_attribute("data-action") == "ship" and "arm: treatment" in entry.text
    assert f"by {EDITOR} ({live_server.editor_id})" in entry.text

    # Ship is no longer offered; focus went on to Stop, which asks first.
    assert focused(browser).get_attribute("id") == "do-stop"
    press(browser, Keys.ENTER)
    wait(browser, lambda b: by_id(b, "confirm").is_displayed())
    assert focused(browser).get_attribute("id") == "confirm-cancel"
    press(browser, Keys.TAB)
    press(browser, Keys.ENTER)
    message(browser, "“Blend against learned” stopped.")
    assert status(browser) == "stopped"
    assert admin.get(f"/v1/experiments/{exp_id}").json()["status"] == "stopped"
    assert [b.is_enabled() for b in browser.find_elements(
        By.CSS_SELECTOR, "#detail .buttons button")] == [False] * 4
    actions = [e.get_attribute("data-action") for e in browser.find_elements(
        By.CSS_SELECTOR, "[data-testid='audit-entry']")]
    assert actions == ["stop", "ship", "start", "pause", "start", "create"]
    shot("stopped")


def test_refusals_are_shown_in_words(browser: Any, live_server: LiveServer,
                                     admin: httpx.Client, shot: Shot) -> None:
    body = {"arms": [{"name": "control"}, {"name": "other"}], "surfaces": ["similar"]}
    running = admin.post("/v1/experiments", json={"name": "already on similar", **body}).json()
    assert admin.post(f"/v1/experiments/{running['id']}/start").status_code == 200
    waiting = admin.post("/v1/experiments", json={"name": "waits for similar", **body}).json()
    open_page(browser, live_server.url, live_server.editor_key)
    assert status(browser) == "running"  # the running one is shown first
    by_id(browser, "exp-list").find_element(
        By.CSS_SELECTOR, f"[data-experiment-id='{waiting['id']}']").send_keys(Keys.ENTER)
    wait(browser, lambda b: by_id(b, "detail").get_attribute("data-experiment-id")
         == str(waiting["id"]))
    by_id(browser, "do-start").send_keys(Keys.ENTER)
    said = message(browser, "(409)")
    assert "Could not start “waits for similar”" in said
    assert f"experiment {running['id']} (already on similar) already runs on similar" in said
    assert by_id(browser, "messages").get_attribute("data-kind") == "error"
    assert status(browser) == "draft"

    # A field the API refuses is named as the form labels it, marked, and focused.
    by_id(browser, "f-name").send_keys("badly named arm")
    second = browser.find_elements(By.CSS_SELECTOR, "[data-testid='arm-row'] [data-key='name']")[1]
    second.send_keys(Keys.CONTROL, "a")
    second.send_keys("two words")
    by_id(browser, "create").send_keys(Keys.ENTER)
    error = by_id(browser, "form-error")
    wait(browser, lambda b: error.text)
    assert "The experiment was not created (422)" in error.text
    assert "Arm 2 Name: use only letters, digits, _ . and - (no spaces)" in error.text, \
        error.text
    assert "body.arms" not in error.text  # the API's path, said as the form says it
    assert focused(browser) == second and second.get_attribute("aria-invalid") == "true"
    assert error.get_attribute("role") == "alert"
    shot("refused-field")
    # A rule of the experiment, not of one field: the API's own words under the fieldset's.
    second.send_keys(Keys.CONTROL, "a")
    second.send_keys("control")
    by_id(browser, "create").send_keys(Keys.ENTER)
    wait(browser, lambda b: "names must differ" in error.text)
    assert "Arms (the first is control): names must differ" in error.text, error.text
    assert second.get_attribute("aria-invalid") == "false"
    names = [e["name"] for e in admin.get("/v1/experiments").json()]
    assert "badly named arm" not in names


def test_a_guardrail_stopping_an_arm_is_shown_and_announced(
        browser: Any, live_server: LiveServer, admin: httpx.Client, shot: Shot) -> None:
    exp = admin.post("/v1/experiments", json={
        "name": "too slow to keep", "surfaces": ["new-items"],
        "arms": [{"name": "control"}, {"name": "slow", "mmr_lambda": 0.3}],
        "guardrails": [{"metric": "p95_ms", "max_value": 0.0001}]}).json()
    assert admin.post(f"/v1/experiments/{exp['id']}/start").status_code == 200
    open_page(browser, live_server.url, live_server.editor_key)
    assert status(browser) == "running" and by_id(browser, "srm").text  # shown, and read
    _, key = live_server.mint("client", "slow traffic")
    with httpx.Client(base_url=live_server.url, timeout=60,
                      headers={"Authorization": f"Bearer {key}"}) as c:
        arms = {u: c.get(f"/v1/users/{u}/new-items").json()["arm"] for u in USERS}
        slow = [u for u, arm in arms.items() if arm == "slow"]
        assert slow
        for k in range(60):  # latency is judged over at least 50 of the arm's answers
            assert c.get(f"/v1/users/{slow[k % len(slow)]}/new-items").status_code == 200
    # The server's guard runs every 20 s; the open page notices within its next refresh.
    said = message(browser, "is now stopped", timeout=60)
    assert "“too slow to keep” is now stopped (every treatment arm was stopped)" in said
    guards = by_id(browser, "guardrails")
    assert guards.get_attribute("data-stopped") == "slow"
    assert "slow stopped: p95 latency" in guards.text and "above 0.0001 ms" in guards.text
    state = browser.find_element(By.CSS_SELECTOR, "tr[data-arm='slow'] [data-field='state']")
    assert state.text.startswith("stopped: p95 latency")
    actions = [e.get_attribute("data-action") for e in browser.find_elements(
        By.CSS_SELECTOR, "[data-testid='audit-entry']")]
    assert actions[:2] == ["stop", "guardrail"]
    assert [b.is_enabled() for b in browser.find_elements(
        By.CSS_SELECTOR, "#detail .buttons button")] == [False] * 4
    shot("guardrail-stopped")


# What the API would say about an interleaving experiment whose users depart from the split
# and whose treatment a guardrail stopped: served by the page's own fetch, on a server with
# nothing but the console behind it.
CANNED_EXP = {
    "id": 7, "name": "Interleaved blend", "mode": "interleave", "status": "running",
    "surfaces": ["recommendations"], "holdout": 0.0, "ramp": [1.0], "ramp_share": 1.0,
    "ramp_every_s": 3600, "winner": None, "note": None, "created_by": "Ada Editor (k1)",
    "started_at": "2026-01-02T10:00:00Z", "ended_at": None,
    "arms": [{"name": "control", "weight": 1, "profile_id": None, "ranker": None,
              "mmr_lambda": None, "exploration_share": None, "stopped": None},
             {"name": "treatment", "weight": 1, "profile_id": 3, "ranker": "blend",
              "mmr_lambda": 0.6, "exploration_share": None,
              "stopped": "p95 latency 130.0 ms is above 100 ms"}],
    "guardrails": [{"metric": "p95_ms", "max_drop": None, "max_value": 100}],
    "history": [{"at": "2026-01-02T10:00:00Z", "actor": "Ada Editor (k1)", "action": "create",
                 "detail": {"arms": ["control", "treatment"]}},
                {"at": "2026-01-02T10:05:00Z", "actor": "guardrail", "action": "guardrail",
                 "detail": {"arm": "treatment", "why": "p95 latency 130.0 ms is above 100 ms"}}],
}


def _versus(rel: float, low: float, high: float, significant: bool) -> dict[str, Any]:
    return {"diff": rel / 10, "low": low / 10, "high": high / 10, "relative": rel,
            "relative_low": low, "relative_high": high, "p_value": 0.0004 if significant
            else 0.4, "significant": significant}


CANNED_RESULTS = {
    "arms": {
        "control": {"users": 500, "exposures": 1500, "coverage": 0.4, "p50_ms": 12.0,
                    "p95_ms": 30.0, "stopped": None,
                    "metrics": {"ctr": 0.1, "skip_rate": 0.05, "dwell": 30.0}},
        "treatment": {"users": 380, "exposures": 1100, "coverage": 0.5, "p50_ms": 60.0,
                      "p95_ms": 130.0, "stopped": "p95 latency 130.0 ms is above 100 ms",
                      "metrics": {"ctr": 0.12, "skip_rate": 0.07, "dwell": 29.0},
                      "versus_control": {"ctr": _versus(0.2, 0.05, 0.35, True),
                                         "skip_rate": _versus(0.4, 0.1, 0.7, True),
                                         "dwell": _versus(-0.03, -0.2, 0.14, False)}}},
    "sample_ratio": {"users": {"control": 500, "treatment": 380}, "p_value": 0.00005,
                     "mismatch": True},
    "guardrails": {"breached": [], "stopped": {
        "treatment": "p95 latency 130.0 ms is above 100 ms"}},
    "holdout": None,
    "interleaving": {"users": 880, "wins": {"control": 200, "treatment": 310}, "ties": 370,
                     "preference": {"diff": -0.12, "low": -0.2, "high": -0.04,
                                    "p_value": 0.001, "significant": True},
                     "winner": "treatment"},
}

CANNED_TIMELINE = {"experiment_id": 7, "metric": "ctr", "points": [
    {"at": f"2026-01-02T1{k}:00:00Z", "arms": {
        "control": {"users": 100 * k, "mean": 0.1},
        "treatment": {"users": 80 * k, "mean": 0.1 + 0.01 * k, "relative": 0.1 * k,
                      "relative_low": 0.1 * k - 0.15, "relative_high": 0.1 * k + 0.15}}}
    for k in range(1, 5)]}

STAND_IN = """
const answers = JSON.parse(arguments[0]);
const real = window.fetch;
window.__asked = [];
window.fetch = function (url, init) {
  const path = String(url).split('?')[0];
  if (!path.startsWith('/v1/experiments') && !path.startsWith('/v1/fusion/evaluations/')) {
    return real.apply(this, arguments);
  }
  window.__asked.push(path);
  const body = (window.__override || {})[path] ?? answers[path];
  return Promise.resolve(new Response(JSON.stringify(body ?? {error: {code: 'not_found',
    message: 'Not Found'}}), {status: body ? 200 : 404,
    headers: {'content-type': 'application/json'}}));
};"""


def stand_in() -> str:
    answers = {"/v1/experiments": [CANNED_EXP], "/v1/experiments/7": CANNED_EXP,
               "/v1/experiments/7/results": CANNED_RESULTS,
               "/v1/experiments/7/timeline": CANNED_TIMELINE}
    return STAND_IN.replace("arguments[0]", json.dumps(json.dumps(answers)))


def test_warnings_and_verdicts_render_as_the_api_says(browser: Any, console_only: str,
                                                     shot: Shot) -> None:
    browser.get_log("browser")  # drop what earlier tests' pages logged (their refusals)
    open_page(browser, console_only, "mdl_stub_editor", stand_in())
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid='metrics-table']"))
    steady(browser, verdicts_shown)
    # Running, so it is read again every few seconds.
    asked = browser.execute_script("return window.__asked.length")
    wait(browser, lambda b: b.execute_script("return window.__asked.length") > asked + 2,
         timeout=10)
    shot("verdicts")
    errors = [e["message"] for e in browser.get_log("browser")
              if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
    assert errors == []  # no script error on the way


def verdicts_shown(browser: Any) -> bool:
    srm = by_id(browser, "srm")
    assert srm.get_attribute("data-mismatch") == "true"
    warning = srm.find_element(By.CSS_SELECTOR, "[role='alert']")
    assert warning.text.startswith("Sample ratio mismatch: users per arm (control 500, "
                                   "treatment 380) depart from the configured split")
    guards = by_id(browser, "guardrails")
    assert guards.get_attribute("data-stopped") == "treatment"
    assert "treatment stopped: p95 latency 130.0 ms is above 100 ms" in guards.text
    state = browser.find_element(By.CSS_SELECTOR, "tr[data-arm='treatment'] "
                                                  "[data-field='state']")
    assert state.text == "stopped: p95 latency 130.0 ms is above 100 ms"
    verdict = by_id(browser, "interleaving")
    assert verdict.is_displayed() and verdict.get_attribute("data-winner") == "treatment"
    assert "treatment is preferred" in verdict.text and "wins: control 200, treatment 310" \
        in verdict.text
    # Green only when the whole interval says better; a rising skip rate is worse.
    verdicts = {r.get_attribute("data-metric"): r.find_element(
        By.CSS_SELECTOR, "[data-testid='versus']").get_attribute("data-verdict")
        for r in browser.find_elements(By.CSS_SELECTOR, "[data-testid='metrics-table'] tbody tr")}
    assert (verdicts["ctr"], verdicts["skip_rate"], verdicts["dwell"]) == (
        "better", "worse", "unsure")
    ctr = browser.find_element(By.CSS_SELECTOR, "tr[data-metric='ctr'] [data-testid='versus']")
    assert "+20% (+5.0% to +35%)" in ctr.text
    chart = by_id(browser, "timeline").find_element(By.CSS_SELECTOR, "svg.timeline")
    assert chart.get_attribute("data-points") == "4"
    assert {p.get_attribute("data-arm") for p in chart.find_elements(
        By.CSS_SELECTOR, "polyline.line")} == {"control", "treatment"}
    assert [p.get_attribute("data-arm") for p in chart.find_elements(
        By.CSS_SELECTOR, "polygon.band")] == ["treatment"]
    assert "latest: control 0.100, treatment 0.140" in chart.get_attribute("aria-label")
    actions = [e.get_attribute("data-action") for e in browser.find_elements(
        By.CSS_SELECTOR, "[data-testid='audit-entry']")]
    assert actions == ["guardrail", "create"]
    return True


def test_every_control_is_reachable_by_keyboard(browser: Any, console_only: str) -> None:
    open_page(browser, console_only, "mdl_stub_editor", stand_in())
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid='metrics-table']"))
    wanted = {"skip", "to-editor", "sign-out", "exp-item", "f-name", "f-mode", "add-arm",
              "f-holdout", "f-ramp-every", "f-ramp", "add-guard", "f-note", "create",
              "do-pause", "do-stop", "do-ship", "do-offline", "t-metric"}
    reached: set[str] = set()
    outlines: set[str] = set()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    for _ in range(70):
        here = focused(browser)
        if here.tag_name != "body":
            reached.add(here.get_attribute("data-testid") or here.get_attribute("data-key")
                        or here.get_attribute("id") or here.get_attribute("name"))
            outlines.add(here.value_of_css_property("outline-style"))
        here.send_keys(Keys.TAB)
    assert wanted <= reached, wanted - reached
    assert {"surface", "name", "weight", "ranker", "mmr_lambda"} <= reached
    assert outlines == {"solid"}


def _evaluation(status: str, progress: float, result: dict[str, Any] | None = None,
                error: str | None = None) -> dict[str, Any]:
    return {"id": "ev-7", "subject": "experiment 7", "status": status, "progress": progress,
            "result": result, "error": error, "created_at": "2026-01-02T12:00:00Z",
            "finished_at": None if status in ("queued", "running") else "2026-01-02T12:01:00Z"}


DASH = "\u2013"  # what the page shows for a figure it could not compute

OFFLINE_RESULT = {
    "events": 1200, "users": 150, "note": "3 users had too little history to split.",
    "arm:control": {"ndcg_at_10": 0.3124, "recall_at_10": 0.41, "new_items_recall_at_10": 0.1,
                    "coverage_at_10": 0.25},
    "arm:treatment": {"ndcg_at_10": 0.35, "recall_at_10": None,
                      "new_items_recall_at_10": 0.125, "coverage_at_10": 0.3},
}


def offline_rows(browser: Any) -> dict[str, list[str]]:
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-testid='offline-table'] tbody tr")
    return {r.get_attribute("data-arm"): [c.text for c in r.find_elements(By.CSS_SELECTOR, "td")]
            for r in rows}


def test_offline_figures_per_arm_follow_the_job(browser: Any, console_only: str,
                                               shot: Shot) -> None:
    browser.get_log("browser")  # drop what earlier tests' pages logged
    open_page(browser, console_only, "mdl_stub_editor", stand_in())
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid='arms-table']"))
    browser.execute_script("window.__override = arguments[0]", {
        "/v1/experiments/7/evaluations": _evaluation("queued", 0.0),
        "/v1/fusion/evaluations/ev-7": _evaluation("running", 0.5)})
    button = by_id(browser, "do-offline")
    assert button.text == "Offline figures" and button.is_enabled()
    assert "Replays each arm's fusion profile" in by_id(
        browser, button.get_attribute("aria-describedby")).text
    button.send_keys(Keys.ENTER)

    # Progress, announced politely while the job runs; one job at a time.
    state = by_id(browser, "offline-state")
    wait(browser, lambda b: state.text == "Offline figures: 50%")
    assert state.get_attribute("aria-live") == "polite"
    bar = by_id(browser, "offline-progress")
    assert bar.is_displayed() and bar.get_attribute("value") == "50"
    assert message(browser, "Computing") == "Computing the offline figures of “Interleaved blend”…"
    assert not button.is_enabled()
    asked = browser.execute_script("return window.__asked")
    assert "/v1/experiments/7/evaluations" in asked and "/v1/fusion/evaluations/ev-7" in asked
    shot("offline-running")

    browser.execute_script("window.__override['/v1/fusion/evaluations/ev-7'] = arguments[0]",
                           _evaluation("succeeded", 1.0, OFFLINE_RESULT))
    said = message(browser, "are ready")
    assert said == "Offline figures of “Interleaved blend” are ready: 1200 events from 150 users."
    assert state.text == "Offline figures: done — 100%" and bar.get_attribute("value") == "100"
    table = by_id(browser, "offline").find_element(By.CSS_SELECTOR, "table")
    assert [h.text for h in table.find_elements(By.CSS_SELECTOR, "thead th")] == [
        "Arm", "NDCG@10", "Recall@10", "New-items recall@10", "Coverage@10"]
    assert offline_rows(browser) == {"control": ["0.312", "0.410", "0.100", "0.250"],
                                     "treatment": ["0.350", DASH, "0.125", "0.300"]}
    # Beside the online figures: the same arms, in the arm table's order.
    online = [r.get_attribute("data-arm") for r in browser.find_elements(
        By.CSS_SELECTOR, "[data-testid='arms-table'] tbody tr")]
    assert online == list(offline_rows(browser))
    assert "1200 events from 150 users" in table.find_element(By.TAG_NAME, "caption").text
    assert by_id(browser, "offline").find_element(
        By.CSS_SELECTOR, "[data-testid='offline-note']").text == OFFLINE_RESULT["note"]
    assert button.is_enabled()
    # The results refresh every few seconds while the experiment runs; the figures stay.
    asked = browser.execute_script("return window.__asked.length")
    wait(browser, lambda b: b.execute_script("return window.__asked.length") > asked + 2,
         timeout=10)
    assert offline_rows(browser)["control"][0] == "0.312"
    whole_page(browser, shot, "offline-figures")

    # A failed job says why, in words; the old figures do not linger.
    browser.execute_script("window.__override['/v1/fusion/evaluations/ev-7'] = arguments[0]",
                           _evaluation("failed", 0.3, error="arm treatment: profile 3 is gone"))
    button.send_keys(Keys.ENTER)
    wait(browser, lambda b: state.text == "Offline figures failed: arm treatment: profile 3 "
         "is gone")
    assert "eval-error" in state.get_attribute("class") and not bar.is_displayed()
    said = message(browser, "failed")
    assert said == "Offline figures of “Interleaved blend” failed: arm treatment: profile 3 is gone"
    assert by_id(browser, "messages").get_attribute("data-kind") == "error"
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='offline-table']")
    assert button.is_enabled()
    errors = [e["message"] for e in browser.get_log("browser")
              if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
    assert errors == []


def test_offline_figures_from_the_server(browser: Any, live_server: LiveServer,
                                         admin: httpx.Client, shot: Shot) -> None:
    exp = admin.post("/v1/experiments", json={
        "name": "offline check", "surfaces": ["recommendations"],
        "arms": [{"name": "control"}, {"name": "wider", "mmr_lambda": 0.4}]}).json()
    open_page(browser, live_server.url, live_server.editor_key)
    by_id(browser, "exp-list").find_element(
        By.CSS_SELECTOR, f"[data-experiment-id='{exp['id']}']").send_keys(Keys.ENTER)
    wait(browser, lambda b: by_id(b, "detail").get_attribute("data-experiment-id")
         == str(exp["id"]))
    by_id(browser, "do-offline").send_keys(Keys.ENTER)
    message(browser, "“offline check” are ready", timeout=120)
    job_id = by_id(browser, "offline").get_attribute("data-job-id")
    job = admin.get(f"/v1/fusion/evaluations/{job_id}").json()
    assert job["status"] == "succeeded"

    def figure(v: float | None) -> str:
        return DASH if v is None else f"{v:.3f}"

    keys = ["ndcg_at_10", "recall_at_10", "new_items_recall_at_10", "coverage_at_10"]
    assert offline_rows(browser) == {
        arm: [figure(job["result"][f"arm:{arm}"][k]) for k in keys]
        for arm in ("control", "wider")}
    note = by_id(browser, "offline").find_elements(By.CSS_SELECTOR,
                                                   "[data-testid='offline-note']")
    assert [n.text for n in note] == ([job["result"]["note"]] if job["result"]["note"] else [])
    assert "null" not in by_id(browser, "offline").text
    shot("offline-from-server")
