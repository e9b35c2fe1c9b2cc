"""Signing in to the console with an API key, in a real headless Chromium against a live
server: only an editor's (or an admin's) key gets in, the key lives in sessionStorage only, a
key revoked mid-session sends the page back to the form, and refusals are announced."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from selenium.common.exceptions import ElementNotInteractableException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import EDITOR, LiveServer
from tests.browser.console_page import (
    Shot,
    by_id,
    open_console,
    sign_in,
    signed_out_page,
    signin_message,
    stored_key,
    thumbs_loaded,
    wait,
)
from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.heavy


def signed_in(browser: Any) -> bool:
    return by_id(browser, "app").is_displayed() and not by_id(browser, "signin").is_displayed()


def back_at_the_form(browser: Any) -> bool:
    return by_id(browser, "signin").is_displayed() and not by_id(browser, "app").is_displayed()


def focused(browser: Any) -> str:
    return str(browser.switch_to.active_element.get_attribute("id"))


def answer_next(browser: Any, path: str, status: int, message: str,
                retry_after: str | None = None) -> None:
    """The page's next request to `path` gets this error answer instead of the server's."""
    browser.execute_script("""
        const [path, status, message, retry] = arguments;
        const real = window.fetch;
        window.fetch = function (url, init) {
          if (!String(url).startsWith(path)) return real.apply(this, arguments);
          window.fetch = real;
          const headers = {'content-type': 'application/json'};
          if (retry) headers['retry-after'] = retry;
          const body = JSON.stringify({error: {code: 'refused', message}});
          return Promise.resolve(new Response(body, {status, headers}));
        };""", path, status, message, retry_after)


def test_nothing_loads_before_sign_in(browser: Any, live_server: LiveServer, shot: Shot) -> None:
    signed_out_page(browser, live_server.url)
    assert back_at_the_form(browser)
    for hidden in ("session", "active-profile", "messages", "publish", "item-filter"):
        assert not by_id(browser, hidden).is_displayed()
    field = by_id(browser, "api-key")
    assert field.get_attribute("type") == "password"
    label = browser.find_element(By.XPATH, "//label[.//input[@id='api-key']]")
    assert label.text.startswith("API key")
    asked = browser.execute_script("""return performance.getEntriesByType('resource')
        .map(e => new URL(e.name).pathname).filter(p => p.startsWith('/v1/'))""")
    assert asked == []  # not one API call without a key
    # The form works from the keyboard, with the same visible focus ring as the rest.
    assert focused(browser) == "api-key"
    assert field.value_of_css_property("outline-style") == "solid"
    field.send_keys(Keys.TAB)
    assert focused(browser) == "sign-in"
    assert by_id(browser, "sign-in").value_of_css_property("outline-style") == "solid"
    by_id(browser, "sign-in").send_keys(Keys.ENTER)  # nothing typed yet
    assert "Enter an API key" in signin_message(browser)
    shot("sign-in-form")


def test_unknown_key_is_refused(browser: Any, live_server: LiveServer, shot: Shot) -> None:
    signed_out_page(browser, live_server.url)
    sign_in(browser, "mdl_000000000000_not-a-key-anyone-made")
    said = signin_message(browser)
    assert "unknown or revoked key" in said
    box = by_id(browser, "signin-message")
    assert box.get_attribute("role") == "alert" and box.get_attribute("data-kind") == "error"
    assert by_id(browser, "api-key").get_attribute("aria-invalid") == "true"
    assert focused(browser) == "api-key"
    assert back_at_the_form(browser) and stored_key(browser) is None
    shot("unknown-key")


def test_client_key_is_refused_and_admin_key_accepted(
        browser: Any, live_server: LiveServer, shot: Shot) -> None:
    _, client_key = live_server.mint("client", "Cathy Client")
    signed_out_page(browser, live_server.url)
    sign_in(browser, client_key)
    said = signin_message(browser)
    assert "Cathy Client" in said and "client key" in said and "editor key" in said, said
    assert back_at_the_form(browser) and stored_key(browser) is None
    shot("client-key")
    # An admin key may call everything, so it may use the console too.
    sign_in(browser, ADMIN_KEY)
    wait(browser, lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert by_id(browser, "signed-in-as").text == "Signed in as bootstrap admin (admin)"
    assert by_id(browser, "signin-message").text == ""


def test_sign_out_returns_to_the_form_and_forgets_the_key(
        browser: Any, live_server: LiveServer, shot: Shot) -> None:
    open_console(browser, live_server.url, live_server.editor_key)
    assert signed_in(browser)
    assert by_id(browser, "signed-in-as").text == f"Signed in as {EDITOR} (editor)"
    assert stored_key(browser) == live_server.editor_key
    assert live_server.editor_key not in browser.execute_script(
        "return JSON.stringify(localStorage)")  # it must not outlive the browser session
    assert by_id(browser, "api-key").get_attribute("value") == ""  # nor stay in the form
    browser.refresh()  # a reload in the same session stays signed in
    wait(browser, lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
    assert signed_in(browser)
    wait(browser, lambda b: thumbs_loaded(b, "#item-picker"))
    blob = browser.execute_script(
        "return [...document.querySelectorAll('#item-picker img')].find("
        "i => i.src.startsWith('blob:')).src")
    shot("signed-in")

    by_id(browser, "sign-out").send_keys(Keys.ENTER)
    wait(browser, back_at_the_form)
    assert "Signed out" in signin_message(browser)
    assert stored_key(browser) is None
    assert focused(browser) == "api-key"
    assert by_id(browser, "item-picker").find_elements(By.TAG_NAME, "li") == []
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") is None
    fetched = browser.execute_async_script("""const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(() => done('still there'), () => done('revoked'));""", blob)
    assert fetched == "revoked"  # the artwork's object URLs went with the key
    shot("signed-out")


def test_revoked_key_sends_the_console_back_to_sign_in(
        browser: Any, live_server: LiveServer, shot: Shot) -> None:
    key_id, key = live_server.mint("editor", "Rita Revoked")
    open_console(browser, live_server.url, key)
    assert by_id(browser, "signed-in-as").text == "Signed in as Rita Revoked (editor)"
    live_server.revoke(key_id)  # by an admin, while the page is open
    # The preview it asks for is refused, unless a request of the page's own (a thumbnail, a
    # preview retry) was refused first: the slider is hidden then.
    with contextlib.suppress(ElementNotInteractableException):
        by_id(browser, "w-speech").send_keys(Keys.END)
    wait(browser, back_at_the_form)
    said = signin_message(browser)
    assert "no longer accepts this key" in said and "revoked" in said, said
    assert stored_key(browser) is None
    assert focused(browser) == "api-key"
    shot("revoked")
    sign_in(browser, key)  # and it stays out
    wait(browser, lambda b: "unknown or revoked key" in by_id(b, "signin-message").text)
    assert back_at_the_form(browser)


def test_rate_limit_and_forbidden_are_announced(
        browser: Any, live_server: LiveServer, shot: Shot) -> None:
    open_console(browser, live_server.url, live_server.editor_key)
    box = by_id(browser, "messages")
    answer_next(browser, "/v1/fusion/preview", 429,
                "this key is over its rate limit; retry in 7 s", "7")
    by_id(browser, "w-speech").send_keys(Keys.ARROW_RIGHT)
    wait(browser, lambda b: "(429)" in box.text)
    assert "try again in 7 s" in box.text and box.get_attribute("data-kind") == "error"
    assert signed_in(browser)  # a busy key is not a refused one
    shot("rate-limited")
    answer_next(browser, "/v1/fusion/evaluations", 403,  # the draft's evaluation job
                "an editor key cannot use this route; it needs an admin key")
    by_id(browser, "evaluate").send_keys(Keys.ENTER)
    wait(browser, lambda b: "(403)" in box.text)
    assert "needs an admin key" in box.text and signed_in(browser)
