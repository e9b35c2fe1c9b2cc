"""The editor's web console: the fusion editor (`/console`) and the experiments page
(`/console/experiments`), two HTML pages and their static assets, served as files.

Plain HTML, CSS and ES modules under api/static/console/ — nothing is built at run time and
nothing is fetched from outside this machine.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from medley.errors import NotFound

STATIC = Path(__file__).parent / "static" / "console"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The console changes with the API it talks to; revalidating keeps a stale script from
# calling endpoints that moved, and costs only a 304 on an unchanged file.
HEADERS = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["console"], include_in_schema=False)


def _asset(name: str) -> Path:
    # Only files that sit directly in the folder, with a known type: no path can climb out.
    path = STATIC / name
    if "/" in name or "\\" in name or path.suffix not in MEDIA_TYPES or not path.is_file():
        raise NotFound(f"no console asset {name!r}")
    return path


@router.get("/console")
def console_page() -> FileResponse:
    return FileResponse(_asset("index.html"), media_type=MEDIA_TYPES[".html"], headers=HEADERS)


@router.get("/console/")
def console_slash() -> RedirectResponse:
    return RedirectResponse("/console", status_code=308)


@router.get("/console/experiments")
def experiments_page() -> FileResponse:
    return FileResponse(_asset("experiments.html"), media_type=MEDIA_TYPES[".html"],
                        headers=HEADERS)


@router.get("/console/experiments/")
def experiments_slash() -> RedirectResponse:
    return RedirectResponse("/console/experiments", status_code=308)


@router.get("/console/static/{name}")
def console_asset(name: str) -> FileResponse:
    path = _asset(name)
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=HEADERS)
