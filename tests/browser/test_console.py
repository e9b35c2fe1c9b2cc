"""The fusion editor console in a real headless Chromium against a live server: the editor's
whole loop (raise the speech weight, see dialogue-driven neighbours rise, publish, watch the
job, roll back), evaluation, error messages and keyboard access. Screenshots land in
tests/browser/artifacts/ (or $MEDLEY_TEST_ARTIFACTS)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import EDITOR, LiveServer
from tests.browser.console_page import Shot, by_id, thumbs_loaded, wait
from tests.browser.console_page import open_console as open_with_key

pytestmark = pytest.mark.heavy

SPACE = {"falcon", "astronaut", "hubble"}  # what "Kitchen Diaries" talks about
COOKING = {"sourdough", "pasta", "cake"}  # what its description is about


def open_console(browser: Any, server: LiveServer | str) -> None:
    """Signed in as the editor (any key passes the console-only server's check)."""
    if isinstance(server, str):
        open_with_key(browser, server, "mdl_stub_editor")
    else:
        open_with_key(browser, server.url, server.editor_key)


def pick_only(browser: Any, item_id: str) -> None:
    """Leave exactly one item picked, with the keyboard (space toggles a checkbox)."""
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid='pick']"))
    for box in browser.find_elements(By.CSS_SELECTOR, "[data-testid='pick']"):
        if box.is_selected() != (box.get_attribute("data-item-id") == item_id):
            box.send_keys(Keys.SPACE)


def preview_for(browser: Any, speech: float) -> None:
    """Wait until the rendered preview is the one asked for with this speech weight."""
    def done(b: Any) -> bool:
        raw = by_id(b, "results").get_attribute("data-weights")
        state = by_id(b, "preview-state").get_attribute("data-state")
        return bool(raw) and state == "ready" and json.loads(raw)["speech"] == speech

    wait(browser, done)


def ranked(browser: Any, item_id: str, side: str) -> list[str]:
    rows = browser.find_elements(
        By.CSS_SELECTOR, f"article[data-key='{item_id}'] [data-testid='{side}-list'] li")
    return [r.get_attribute("data-item-id") for r in rows]


def active_id(browser: Any) -> str:
    return str(by_id(browser, "active-profile").get_attribute("data-profile-id"))


def follow_job(browser: Any) -> list[int]:
    """Progress values the bar showed, recorded in the page so no quick step is missed."""
    wait(browser, lambda b: by_id(b, "job-panel").get_attribute("data-status")
         in ("succeeded", "failed"), timeout=60)
    return [int(v) for v in browser.execute_script("return window.__progress || []")]


def record_progress(browser: Any) -> None:
    browser.execute_script("""
        window.__progress = [];
        const bar = document.getElementById('job-progress');
        new MutationObserver(() => window.__progress.push(bar.value))
          .observe(bar, {attributes: true, attributeFilter: ['value']});""")


def test_console_is_served_with_its_assets(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as c:
        page = c.get("/console")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for asset, kind in (("console.js", "text/javascript"), ("signin.js", "text/javascript"),
                            ("thumbs.js", "text/javascript"), ("console.css", "text/css")):
            r = c.get(f"/console/static/{asset}")  # no key needed: the page asks for one
            assert r.status_code == 200 and r.headers["content-type"].startswith(kind)
        assert c.get("/v1/fusion/profiles").status_code == 401  # what it loads does
        assert c.get("/console/static/..%2Fconsole.py").status_code == 404
        assert c.get("/console/static/nothing.js").json()["error"]["code"] == "not_found"


def test_console_loads(browser: Any, live_server: LiveServer, shot: Shot) -> None:
    open_console(browser, live_server)
    sliders = browser.find_elements(By.CSS_SELECTOR, "input[type='range']")
    assert [s.get_attribute("data-modality") for s in sliders] == [
        "image", "video", "speech", "text", "clip_text"]
    for s in sliders:  # every slider is labelled and speaks its share as a percentage
        label = browser.find_element(By.CSS_SELECTOR, f"label[for='{s.get_attribute('id')}']")
        assert label.text
        assert s.get_attribute("aria-valuetext").split()[0].endswith("%")
    assert by_id(browser, "pct-text").text == "62%"  # 2.0 of 3.25
    assert "default v1" in by_id(browser, "active-profile").text
    picks = wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid='pick']"))
    assert len(picks) == len(live_server.ids)
    # Artwork shows as a thumbnail, fetched with the key and shown through an object URL; an
    # item without any falls back to the placeholder tile.
    wait(browser, lambda b: thumbs_loaded(b, "#item-picker"))
    thumbs = browser.execute_script("""return Object.fromEntries([...document.querySelectorAll(
        '#item-picker li')].map(li => [li.querySelector('input').value,
        [li.querySelector('img').naturalWidth, li.querySelector('img').dataset.placeholder,
         li.querySelector('img').src.split(':')[0]]]))""")
    width, placeholder, scheme = thumbs[live_server.ids["falcon"]]
    assert width > 64 and placeholder is None and scheme == "blob"
    assert thumbs[live_server.ids["pasta"]][1:] == ["true", "data"]
    shot("loaded")


def test_raising_speech_brings_dialogue_neighbours_up(
        browser: Any, live_server: LiveServer, shot: Shot) -> None:
    ids = live_server.ids
    names = {v: k for k, v in ids.items()}
    open_console(browser, live_server)
    pick_only(browser, ids["kitchen"])
    preview_for(browser, 0.5)
    before = [names[i] for i in ranked(browser, ids["kitchen"], "before")]
    assert set(before[:2]) <= COOKING, before  # the active profile follows the description
    assert ranked(browser, ids["kitchen"], "after") == ranked(browser, ids["kitchen"], "before")

    speech = by_id(browser, "w-speech")
    speech.send_keys(Keys.ARROW_RIGHT)  # 0.5 -> 0.6 of 3.35: 18%
    wait(browser, lambda b: by_id(b, "pct-speech").text == "18%")
    assert speech.get_attribute("aria-valuetext").startswith("18%")
    speech.send_keys(Keys.END)  # 10 of 12.75: 78%
    wait(browser, lambda b: by_id(b, "pct-speech").text == "78%")
    assert by_id(browser, "pct-text").text == "16%"
    preview_for(browser, 10.0)

    after = [names[i] for i in ranked(browser, ids["kitchen"], "after")]
    assert after != before
    assert set(after[:3]) == SPACE, after  # what is said in it now leads
    badges = browser.find_elements(
        By.CSS_SELECTOR, "[data-testid='after-list'] li:first-child .badge")
    assert int(badges[0].get_attribute("data-shift")) > 0  # shown as moving up
    first = browser.find_element(By.CSS_SELECTOR, "[data-testid='after-list'] li:first-child")
    segs = {s.get_attribute("data-modality"): s.size["width"]
            for s in first.find_elements(By.CSS_SELECTOR, ".seg")}
    assert max(segs, key=lambda m: segs[m]) == "speech"  # the bar says why
    assert first.find_element(By.CSS_SELECTOR, ".snippet").text  # the transcript excerpt
    overlap = browser.find_element(By.CSS_SELECTOR, "[data-testid='overlap']").text
    assert overlap.startswith("Overlap@10:") and overlap.endswith("%")
    assert by_id(browser, "draft-state").text == "Unsaved draft."
    shot("weight-changed")


# Stands in front of the page's fetch for the evaluation job's polls: while window.__evalHold
# is set they read "running, 40%"; window.__evalFail makes them read as a failed job. Every
# evaluation request the page makes is recorded in window.__evalAsked.
EVAL_GATE = """
const real = window.fetch;
window.__evalAsked = [];
window.__evalHold = true;
window.__evalFail = null;
window.fetch = function (url, init) {
  const path = String(url).split('?')[0];
  const method = (init && init.method) || 'GET';
  if (path.includes('/evaluat')) window.__evalAsked.push(method + ' ' + path);
  const poll = path.match(/^\\/v1\\/fusion\\/evaluations\\/(.+)$/);
  if (poll && method === 'GET' && (window.__evalHold || window.__evalFail)) {
    const failed = Boolean(window.__evalFail);
    return Promise.resolve(new Response(JSON.stringify({id: poll[1], subject: 'draft',
      status: failed ? 'failed' : 'running', progress: 0.4, result: null,
      error: window.__evalFail, created_at: null, finished_at: null}),
      {status: 200, headers: {'content-type': 'application/json'}}));
  }
  return real.apply(this, arguments);
};"""


def evaluation_shown(browser: Any) -> dict[str, dict[str, str]]:
    """The figures table as the editor reads it: metric -> column -> text."""
    table = browser.find_element(By.CSS_SELECTOR, "[data-testid='eval-body'] "
                                                  "[data-testid='metrics']")
    out: dict[str, dict[str, str]] = {}
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [c.text for c in row.find_elements(By.CSS_SELECTOR, "td")]
        out[row.get_attribute("data-metric")] = dict(zip(["active", "draft", "delta"], cells,
                                                         strict=True))
    return out


def test_evaluate_runs_as_a_job_with_progress_then_compares_active_and_draft(
        browser: Any, live_server: LiveServer, shot: Shot) -> None:
    ids = list(live_server.ids.values())
    start = datetime.now(UTC) - timedelta(hours=2)
    events = [{"event_id": f"ev-{u}-{k}", "user_id": f"viewer-{u}", "item_id": ids[(u + k) % 10],
               "type": "like", "timestamp": (start + timedelta(minutes=10 * k + u)).isoformat()}
              for u in range(8) for k in range(5)]
    with live_server.client() as c:
        assert c.post("/v1/events", json={"events": events}).json()["accepted"] == len(events)
    open_console(browser, live_server)
    browser.execute_script(EVAL_GATE)
    by_id(browser, "w-speech").send_keys(Keys.END)
    by_id(browser, "evaluate").send_keys(Keys.ENTER)

    # The job is started, not waited for: its progress shows (and is announced) meanwhile.
    state = by_id(browser, "eval-state")
    wait(browser, lambda b: state.text == "Evaluation: 40%", timeout=30)
    bar = by_id(browser, "eval-progress")
    assert bar.is_displayed() and bar.get_attribute("value") == "40"
    assert bar.get_attribute("aria-valuetext") == "40%"
    assert state.get_attribute("aria-live") == "polite"
    assert by_id(browser, "messages").text == "Evaluating the draft on the recorded events…"
    assert not by_id(browser, "evaluate").is_enabled()  # one evaluation at a time
    asked = browser.execute_script("return window.__evalAsked")
    assert asked[0] == "POST /v1/fusion/evaluations" and all("/evaluate" not in a for a in asked)
    job_id = by_id(browser, "eval-panel").get_attribute("data-job-id")
    assert job_id and asked[-1] == f"GET /v1/fusion/evaluations/{job_id}"
    shot("evaluating")

    browser.execute_script("window.__evalHold = false")
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid='metrics']"),
         timeout=60)
    assert state.text == "Evaluation: done — 100%" and bar.get_attribute("value") == "100"
    with live_server.client() as c:
        job = c.get(f"/v1/fusion/evaluations/{job_id}").json()
    assert job["status"] == "succeeded" and job["progress"] == 1.0
    result = job["result"]
    shown = evaluation_shown(browser)
    assert list(shown) == ["ndcg_at_10", "recall_at_10", "new_items_recall_at_10",
                           "coverage_at_10"]

    def fmt(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    for metric, cells in shown.items():
        assert cells["active"] == fmt(result["active"][metric]), (metric, cells)
        assert cells["draft"] == fmt(result["candidate"][metric]), (metric, cells)
    body = by_id(browser, "eval-body").text
    assert f"{result['events']} events from {result['users']} users." in body
    assert by_id(browser, "messages").text == (
        f"Evaluation of the draft finished: {result['events']} events from "
        f"{result['users']} users.")
    assert by_id(browser, "evaluate").is_enabled()
    shot("evaluated")

    # A saved profile is evaluated by its id; a failed job says why, in words.
    by_id(browser, "reset").send_keys(Keys.ENTER)  # back to the active profile, saved
    browser.execute_script("window.__evalFail = 'the event log could not be read'")
    by_id(browser, "evaluate").send_keys(Keys.ENTER)
    wait(browser, lambda b: state.text == "Evaluation failed: the event log could not be read",
         timeout=30)
    assert "eval-error" in state.get_attribute("class")  # shown as an error
    assert not bar.is_displayed()  # no half-full bar left behind
    assert by_id(browser, "eval-panel").get_attribute("data-status") == "failed"
    said = by_id(browser, "messages")
    assert said.get_attribute("data-kind") == "error"
    assert said.text.startswith("Evaluation of ") and said.text.endswith(
        " failed: the event log could not be read")
    asked = browser.execute_script("return window.__evalAsked")
    assert f"POST /v1/fusion/profiles/{active_id(browser)}/evaluations" in asked
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='metrics']")  # not stale
    assert by_id(browser, "evaluate").is_enabled()
    shot("evaluation-failed")


def test_save_as_profile_and_start_from_it(browser: Any, live_server: LiveServer,
                                           shot: Shot) -> None:
    open_console(browser, live_server)
    by_id(browser, "w-speech").send_keys(Keys.PAGE_UP)  # 0.5 -> 1.5 of 4.25: 35%
    wait(browser, lambda b: by_id(b, "pct-speech").text == "35%")
    name = by_id(browser, "profile-name")
    name.clear()
    name.send_keys("speech-led")
    by_id(browser, "save").send_keys(Keys.ENTER)
    wait(browser, lambda b: by_id(b, "messages").text == "Saved as speech-led v1.")
    assert by_id(browser, "draft-state").text == "Draft equals speech-led v1."
    with live_server.client() as c:
        saved = c.get("/v1/fusion/profiles").json()["profiles"][0]
    assert (saved["name"], saved["weights"]["speech"], saved["published"]) == (
        "speech-led", 1.5, False)
    # Starting from another profile puts its weights on the sliders.
    select = by_id(browser, "base-profile")
    option = select.find_element(By.XPATH, ".//option[starts-with(., 'default v1')]")
    option.click()
    wait(browser, lambda b: by_id(b, "pct-speech").text == "15%")
    assert by_id(browser, "draft-state").text.startswith("Draft equals default v1")
    shot("saved")


def test_publish_then_roll_back(browser: Any, live_server: LiveServer, shot: Shot) -> None:
    ids = live_server.ids
    open_console(browser, live_server)
    first = active_id(browser)
    assert by_id(browser, "signed-in-as").text == f"Signed in as {EDITOR} (editor)"
    pick_only(browser, ids["kitchen"])
    by_id(browser, "w-speech").send_keys(Keys.END)
    preview_for(browser, 10.0)

    # Escape on the confirmation publishes nothing and gives focus back to the button.
    by_id(browser, "publish").send_keys(Keys.ENTER)
    dialog = wait(browser, lambda b: by_id(b, "confirm") if by_id(b, "confirm").is_displayed()
                  else None)
    assert browser.switch_to.active_element.get_attribute("id") == "confirm-cancel"
    assert "Speech 78%" in by_id(browser, "confirm-text").text
    shot("confirm")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait(browser, lambda b: not dialog.is_displayed())
    assert browser.switch_to.active_element.get_attribute("id") == "publish"
    with live_server.client() as c:
        assert str(c.get("/v1/fusion/profiles").json()["active"]["profile_id"]) == first

    record_progress(browser)
    by_id(browser, "publish").send_keys(Keys.ENTER)
    wait(browser, lambda b: dialog.is_displayed())
    browser.switch_to.active_element.send_keys(Keys.TAB)  # Cancel -> Publish
    assert browser.switch_to.active_element.get_attribute("id") == "confirm-ok"
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait(browser, lambda b: by_id(b, "job-panel").is_displayed())
    shot("publishing")
    progress = follow_job(browser)
    assert by_id(browser, "job-panel").get_attribute("data-status") == "succeeded"
    assert progress and progress[-1] == 100 and progress == sorted(progress), progress
    assert "100%" in by_id(browser, "job-text").text
    wait(browser, lambda b: active_id(b) != first)
    published = active_id(browser)
    assert "default v2" in by_id(browser, "active-profile").text
    assert "Speech 78%" in by_id(browser, "active-profile").text
    entry = wait(browser, lambda b: b.find_elements(
        By.CSS_SELECTOR, f"[data-action='publish'][data-profile-id='{published}']"))[0]
    assert f"by {EDITOR} ({live_server.editor_id})" in entry.text  # the key's, not a typed name
    preview_for(browser, 10.0)  # the draft is now what serves: nothing moves
    wait(browser, lambda b: ranked(b, ids["kitchen"], "before")
         == ranked(b, ids["kitchen"], "after"))
    shot("published")

    record_progress(browser)
    back = browser.find_element(
        By.CSS_SELECTOR, f"[data-testid='rollback'][data-profile-id='{first}']")
    back.send_keys(Keys.ENTER)
    wait(browser, lambda b: dialog.is_displayed())
    by_id(browser, "confirm-ok").click()
    wait(browser, lambda b: by_id(b, "job-text").text.startswith("Rollback"))
    assert follow_job(browser)[-1] == 100
    wait(browser, lambda b: active_id(b) == first)
    assert "default v1" in by_id(browser, "active-profile").text
    wait(browser, lambda b: b.find_elements(
        By.CSS_SELECTOR, f"[data-action='rollback'][data-profile-id='{first}']"))
    with live_server.client() as c:
        overview = c.get("/v1/fusion/profiles").json()
        assert str(overview["active"]["profile_id"]) == first
        top = c.get("/v1/fusion/history?limit=5").json()["entries"]
        assert any(e["action"] == "rollback" and e["actor"] == f"{EDITOR} ({live_server.editor_id})"
                   for e in top)
    shot("rolled-back")


def test_api_errors_are_announced(browser: Any, live_server: LiveServer, shot: Shot) -> None:
    open_console(browser, live_server)
    for slider in browser.find_elements(By.CSS_SELECTOR, "input[type='range']"):
        slider.send_keys(Keys.HOME)
    box = by_id(browser, "messages")
    wait(browser, lambda b: box.get_attribute("data-kind") == "error")
    with live_server.client() as c:
        zero = dict.fromkeys(("image", "video", "speech", "text", "clip_text"), 0)
        said = c.post("/v1/fusion/preview", json={"weights": zero}).json()["error"]["message"]
    assert said in box.text  # the server's own words
    assert box.get_attribute("aria-live") == "polite" and box.get_attribute("role") == "status"
    shot("error")


def test_missing_fusion_api_reads_as_an_error(browser: Any, console_only: str,
                                             shot: Shot) -> None:
    open_console(browser, console_only)
    box = by_id(browser, "messages")
    wait(browser, lambda b: "not available" in box.text)
    assert box.get_attribute("data-kind") == "error"
    assert not by_id(browser, "publish").is_enabled()
    shot("no-fusion-api")


def test_every_control_is_reachable_by_keyboard(browser: Any, live_server: LiveServer) -> None:
    open_console(browser, live_server)
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid='rollback']"))
    wanted = {"skip", "sign-out", "base-profile", "w-image", "w-video", "w-speech", "w-text",
              "w-clip_text", "profile-name", "save", "evaluate", "publish", "reset",
              "item-filter", "users", "query"}
    reached: set[str] = set()
    outlines: set[str] = set()
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    for _ in range(80):
        focused = browser.switch_to.active_element
        if focused.tag_name != "body":  # past the last stop focus leaves the page a moment
            reached.add(focused.get_attribute("id") or focused.get_attribute("data-testid"))
            outlines.add(focused.value_of_css_property("outline-style"))
        focused.send_keys(Keys.TAB)
    assert wanted <= reached, wanted - reached
    assert {"pick", "rollback"} <= reached
    assert outlines == {"solid"}  # a visible focus ring on every stop
