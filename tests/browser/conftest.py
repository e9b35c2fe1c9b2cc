"""A live Medley server (real app, real models, uvicorn on a free port) with a small catalog
whose dialogue and descriptions disagree, and a headless Debian Chromium driven by Selenium."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from medley.config import Precision, Settings
from tests.conftest import ADMIN_KEY, AUTH
from tests.support.live import serving, wait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("MEDLEY_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")

# Text-led serving weights, so that the editor's raising the speech weight visibly reorders.
ACTIVE_WEIGHTS = {"image": 0.25, "video": 0.25, "speech": 0.5, "text": 2.0, "clip_text": 0.25}


@dataclass(frozen=True)
class Entry:
    key: str
    title: str
    description: str
    tags: list[str]
    speech: str
    photo: str | None  # a medley.samples photo name: the thumbnail; None tests the placeholder


SPACE_TALK = ("The rocket lifts off from the launch pad. Astronauts ride it into orbit, where the "
              "space station circles the earth among the stars.")

# "kitchen" and "launchtalk" say one thing and show another: their text neighbours and their
# dialogue neighbours are different clusters.
CATALOG: list[Entry] = [
    Entry("kitchen", "Kitchen Diaries", "A baker kneads sourdough and bakes bread loaves in a "
          "hot oven in her kitchen.", ["cooking", "bread"], SPACE_TALK, "coffee"),
    Entry("sourdough", "Sourdough at Home", "Baking sourdough bread at home: flour, water, salt "
          "and a hot oven.", ["cooking", "bread"], "Mix the flour, water and salt, knead the "
          "dough, let it rise, then bake the bread in a hot oven.", None),
    Entry("pasta", "Pasta Night", "Cooking fresh pasta with tomato sauce and basil in the "
          "kitchen.", ["cooking", "pasta"], "Boil the pasta in salted water and stir in the "
          "tomato sauce with fresh basil and garlic.", None),
    Entry("cake", "Chocolate Cake", "Baking a chocolate cake with butter, sugar and cocoa in "
          "the oven.", ["cooking", "baking"], "Whisk the butter and sugar, fold in the cocoa and "
          "bake the cake for forty minutes.", None),
    Entry("falcon", "Falcon 9 Launch", "A rocket launch carries a satellite into orbit.",
          ["space", "rocket"], "Three, two, one, lift off. The Falcon rocket climbs into orbit "
          "on a column of fire.", "rocket"),
    Entry("astronaut", "Astronaut Training", "Astronauts train for a mission to the space "
          "station.", ["space", "astronaut"], "Astronauts train for months before they fly to "
          "the space station in orbit around the earth.", "astronaut"),
    Entry("hubble", "Hubble Deep Field", "A space telescope photographs thousands of distant "
          "galaxies.", ["space", "astronomy"], "The telescope looks deep into space and sees "
          "thousands of galaxies and stars.", "hubble"),
    Entry("launchtalk", "Rocket Science Explained", "How rockets reach orbit: engines, fuel and "
          "staging.", ["space", "rocket"], "Today we bake bread. Knead the dough with flour and "
          "water, then bake it in a hot oven.", "china"),
    Entry("dahlia", "Orange Dahlia", "An orange dahlia flower blooms in the garden.",
          ["garden", "flower"], "The dahlia opens its orange petals in the summer garden.",
          "flower"),
    Entry("cat", "Chelsea the Cat", "A tabby cat sits still and stares at the camera.",
          ["cat", "pet"], "Chelsea the tabby cat watches the camera with bright eyes.", "chelsea"),
]


@dataclass
class LiveServer:
    url: str
    settings: Settings
    ids: dict[str, str]  # catalog key -> item id
    editor_key: str  # the browser's key: an editor named EDITOR
    editor_id: str

    def client(self) -> httpx.Client:
        """An admin's client, for setting up and checking what the browser did."""
        return httpx.Client(base_url=self.url, timeout=60, headers=AUTH)

    def mint(self, role: str, name: str) -> tuple[str, str]:
        """A new key: (id, secret)."""
        with self.client() as c:
            return _mint(c, role, name)

    def revoke(self, key_id: str) -> None:
        with self.client() as c:
            r = c.delete(f"/v1/keys/{key_id}")
            assert r.status_code == 200 and r.json()["revoked"], r.text


EDITOR = "Ada Editor"


def _mint(client: httpx.Client, role: str, name: str) -> tuple[str, str]:
    r = client.post("/v1/keys", json={"role": role, "name": name})
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), str(r.json()["key"])


def _speak(text: str, out: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "--stdin", "-w", str(out)],
                   input=text, text=True, check=True, capture_output=True, timeout=60)
    return out


def _photo(name: str) -> Path:
    # The sample photos ship inside scikit-image and scikit-learn; nothing is downloaded.
    from medley.samples import PHOTO_SOURCES

    package, inner, _, _ = PHOTO_SOURCES[name]
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    return Path(next(iter(spec.submodule_search_locations))) / inner


def _upload(client: httpx.Client, entry: Entry, media: Path) -> str:
    meta = {"title": entry.title, "description": entry.description, "tags": entry.tags,
            "language": "en", "external_id": f"browser-{entry.key}"}
    files: dict[str, Any] = {
        "audio": (f"{entry.key}.wav", _speak(entry.speech, media / f"{entry.key}.wav").read_bytes(),
                  "audio/wav"),
    }
    if entry.photo:
        photo = _photo(entry.photo)
        files["image"] = (photo.name, photo.read_bytes(), "application/octet-stream")
    r = client.post("/v1/items", data={"metadata": json.dumps(meta)}, files=files)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _loaded(client: httpx.Client, ids: dict[str, str]) -> bool:
    for item_id in ids.values():
        body = client.get(f"/v1/items/{item_id}").json()
        if body["status"] not in ("ready", "partial", "failed") or not body["indexed"]:
            return False
        assert body["modalities"]["speech"]["status"] == "ready", body["modalities"]["speech"]
    health = client.get("/healthz").json()["recommendations"]
    return bool(health["ready"] and health["items"] == len(ids))


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory,
                tiny_clip: dict[str, Any]) -> Iterator[LiveServer]:
    """The real app (in-process workers, embedded index, real text and speech models, API keys
    with a bootstrap admin key) with the catalog uploaded through the API and fully understood,
    and an editor's key for the browser. Shared by the browser test modules: it takes a while."""
    from api.app import create_app

    settings = Settings(data_dir=tmp_path_factory.mktemp("console-data"),
                        clip_precision=Precision.FP32, fusion_weights=ACTIVE_WEIGHTS,
                        events_poll_interval_s=0.1, bootstrap_admin_key=SecretStr(ADMIN_KEY),
                        **tiny_clip)
    with serving(create_app(settings)) as url, \
            httpx.Client(base_url=url, timeout=60, headers=AUTH) as c:
        wait(lambda: _healthy(c), 120, "/healthz answering with models loaded")
        media = tmp_path_factory.mktemp("console-speech")
        ids = {e.key: _upload(c, e, media) for e in CATALOG}
        editor_id, editor_key = _mint(c, "editor", EDITOR)
        wait(lambda: _loaded(c, ids), 180, "every item ready and served")
        yield LiveServer(url=url, settings=settings, ids=ids, editor_key=editor_key,
                         editor_id=editor_id)


@pytest.fixture(scope="module")
def console_only() -> Iterator[str]:
    """A server with the console, a key check that accepts any key as an editor's, and
    nothing else behind it: every other /v1 call answers 404."""
    from fastapi import FastAPI

    from api import console, errors

    app = FastAPI()
    errors.install(app)
    app.include_router(console.router)

    @app.get("/v1/keys/me")
    def me() -> dict[str, Any]:
        return {"id": "stub", "name": "Stub Editor", "role": "editor",
                "created_at": "2024-01-01T00:00:00Z", "revoked": False}

    with serving(app) as url:
        yield url


def _healthy(client: httpx.Client) -> bool:
    try:
        body = client.get("/healthz").json()
    except httpx.TransportError:
        return False
    return body.get("status") in ("ok", "degraded")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots of this run only: a stale failure.png from an earlier run would mislead."""
    folder = ARTIFACTS / "console" if os.environ.get("MEDLEY_TEST_ARTIFACTS") else ARTIFACTS
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are required (make setup installs them)")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1366,900",
                 "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path keeps Selenium Manager from looking for (or fetching) one.
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shot(browser: Any, artifacts: Path,
         request: pytest.FixtureRequest) -> Iterator[Callable[[str], Path]]:
    """shot("step") saves a PNG named after the test and the step; a failing test also
    leaves its last screen and the browser console behind."""
    prefix = request.node.name

    def take(step: str) -> Path:
        path = artifacts / f"{prefix}--{step}.png"
        browser.save_screenshot(str(path))
        return path

    yield take
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        take("failure")
        logs = browser.get_log("browser")
        (artifacts / f"{prefix}--console.log").write_text(
            "\n".join(f"{e['level']} {e['message']}" for e in logs))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report

