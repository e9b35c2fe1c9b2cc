"""Driving the console page: waits, signing in, opening it fresh. Shared by the browser tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

Shot = Callable[[str], Path]


def wait(browser: Any, check: Callable[[Any], Any], timeout: float = 20.0) -> Any:
    return WebDriverWait(browser, timeout, poll_frequency=0.1).until(check)


def by_id(browser: Any, element_id: str) -> Any:
    return browser.find_element(By.ID, element_id)


def stored_key(browser: Any) -> Any:
    return browser.execute_script("return sessionStorage.getItem('medley.console.key')")


def signed_out_page(browser: Any, url: str) -> None:
    """The console with no key held: the sign-in form, focus in its key field."""
    browser.get(f"{url}/console/static/console.css")  # same origin, loads nothing else
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{url}/console")
    wait(browser, lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-signed-in")
         == "false")


def sign_in(browser: Any, key: str) -> None:
    """Type the key and press Enter, as a keyboard user would."""
    field = by_id(browser, "api-key")
    field.clear()
    field.send_keys(key, Keys.ENTER)


def open_console(browser: Any, url: str, key: str) -> None:
    """A fresh page, signed in with `key`, everything loaded."""
    signed_out_page(browser, url)
    sign_in(browser, key)
    wait(browser, lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))


def signin_message(browser: Any) -> str:
    """The sign-in form's announcement, once there is one."""
    return str(wait(browser, lambda b: by_id(b, "signin-message").text))


def thumbs_loaded(browser: Any, container: str) -> bool:
    """Whether every thumbnail in the container is fetched; scrolls the next one waiting
    into view (they are fetched once near view)."""
    return bool(browser.execute_script("""
        const imgs = [...document.querySelectorAll(arguments[0] + ' img')];
        const waiting = imgs.find(i => i.dataset.loading);
        if (waiting) { waiting.scrollIntoView({block: 'nearest'}); return false; }
        return imgs.length > 0 && imgs.every(i => i.complete);""", container))
