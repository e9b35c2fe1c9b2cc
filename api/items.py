"""Catalog routes: upload, read, list, change, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.auth import allow
from api.deps import ServiceDep
from api.edge import strict_loads
from api.params import ItemIdPath
from api.schemas import Accepted, ItemOut, ItemPage
from api.service import Service
from medley import repo, thumbnails
from medley.catalog import ItemMetadata, ItemPatch
from medley.domain import ItemStatus, MediaKind
from medley.errors import InvalidInput
from medley.keys import Role
from medley.media import StoredMedia

router = APIRouter(prefix="/v1/items", tags=["items"])


def _parse_metadata(raw: str) -> ItemMetadata:
    data = strict_loads(raw, "metadata")
    if not isinstance(data, dict):
        raise InvalidInput("metadata must be a JSON object")
    try:
        return ItemMetadata.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "metadata"
        raise InvalidInput(f"metadata.{field}: {first['msg']}") from exc


@router.post("", status_code=202, response_model=Accepted, dependencies=[allow(Role.CONTENT)])
async def upload_item(
    request: Request,
    service: ServiceDep,
    metadata: Annotated[str, Form(description="JSON: title (required), description, tags...")],
    image: Annotated[UploadFile | None, File()] = None,
    audio: Annotated[UploadFile | None, File()] = None,
    video: Annotated[UploadFile | None, File()] = None,
) -> Accepted:
    _only_known_parts(await request.form())
    meta = _parse_metadata(metadata)
    stored: dict[MediaKind, StoredMedia] = {}
    try:
        for kind, upload in ((MediaKind.IMAGE, image), (MediaKind.AUDIO, audio),
                             (MediaKind.VIDEO, video)):
            if upload is not None:
                stored[kind] = await run_in_threadpool(
                    service.runtime.store.save, kind, upload.file, upload.filename
                )
    except Exception:
        # A refused part must not leave the others' files behind.
        for media in stored.values():
            await run_in_threadpool(_drop_if_unused, service, media)
        raise
    item = await run_in_threadpool(service.catalog.create, meta, stored)
    return Accepted(
        id=item.id,
        status=item.status,
        modalities={r.modality: r.status for r in item.modalities},
        links={"self": f"/v1/items/{item.id}"},
    )


UPLOAD_PARTS = frozenset({"metadata", "image", "audio", "video"})


def _only_known_parts(form: FormData) -> None:
    """An unknown part (a typo: `imgae`) or a repeated one would otherwise be dropped or
    replace the first without a word."""
    names = [name for name, _ in form.multi_items()]
    unknown = sorted({n for n in names if n not in UPLOAD_PARTS})
    if unknown:
        raise InvalidInput(f"unknown part {unknown[0][:64]!r}; an upload has the parts "
                           f"{', '.join(sorted(UPLOAD_PARTS))}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidInput(f"the part {repeated[0]!r} is sent twice; send each part once")


def _drop_if_unused(service: Service, media: StoredMedia) -> None:
    if media.path is None:
        return
    with service.runtime.db.session() as s:
        if not repo.media_still_used(s, [str(media.path)]):
            service.runtime.store.remove(media.path)


@router.get("", response_model=ItemPage, dependencies=[allow(Role.CONTENT, Role.EDITOR)])
def list_items(
    service: ServiceDep,
    status: ItemStatus | None = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    ids: Annotated[list[str], Query(description=
        "only these items (comma-separated or repeated; at most MEDLEY_MAX_PAGE_SIZE): "
        "a bulk import follows its items a page at a time")] = [],  # noqa: B006
    external_id: Annotated[list[str], Query(description=
        "only items with these external ids (comma-separated or repeated): what an "
        "interrupted import already sent")] = [],  # noqa: B006
) -> ItemPage:
    cap = service.settings.max_page_size
    limit = min(limit, cap)
    if offset > service.settings.max_offset:
        raise InvalidInput(f"offset: at most {service.settings.max_offset}; "
                           "narrow the listing with status instead of paging this deep")
    wanted, externals = _values(ids), _values(external_id)
    if len(wanted) > cap or len(externals) > cap:
        raise InvalidInput(f"ids, external_id: at most {cap} values per request")
    items, total = service.catalog.list(
        status=status.value if status else None, limit=limit, offset=offset, ids=wanted,
        external_ids=externals,
    )
    nxt = offset + len(items)
    return ItemPage(
        items=[ItemOut.of(i) for i in items], total=total, limit=limit, offset=offset,
        next_offset=nxt if nxt < total else None,
    )


def _values(raw: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for part in raw for v in part.split(",") if v.strip()))


@router.get("/{item_id}", response_model=ItemOut,
            dependencies=[allow(Role.CONTENT, Role.EDITOR)])
def get_item(service: ServiceDep, item_id: ItemIdPath) -> ItemOut:
    return ItemOut.of(service.catalog.get(item_id), service.recs.sync.set_aside.get(item_id))


@router.get(
    "/{item_id}/thumbnail",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 304: {"description": "Not modified"}},
    dependencies=[allow(*Role)],  # client apps show artwork too
)
def get_thumbnail(
    service: ServiceDep,
    item_id: ItemIdPath,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A small JPEG of the item's image, or of a frame of its video."""
    # A plain def: rendering is CPU and ffmpeg work, so FastAPI runs it in the threadpool.
    source = thumbnails.source_of(service.catalog.get(item_id))
    tag = thumbnails.etag(source, service.settings.thumbnail_px)
    headers = {"ETag": tag, "Cache-Control": thumbnails.CACHE_CONTROL}
    if thumbnails.etag_matches(if_none_match, tag):
        return Response(status_code=304, headers=headers)
    data = thumbnails.ThumbnailCache(service.settings).get(source)
    return Response(data, media_type="image/jpeg", headers=headers)


@router.patch("/{item_id}", response_model=ItemOut, dependencies=[allow(Role.CONTENT)])
def patch_item(service: ServiceDep, item_id: ItemIdPath, patch: ItemPatch) -> ItemOut:
    return ItemOut.of(service.catalog.patch(item_id, patch))


@router.delete("/{item_id}", status_code=204, dependencies=[allow(Role.CONTENT)])
def delete_item(service: ServiceDep, item_id: ItemIdPath) -> Response:
    service.catalog.delete(item_id)
    service.recs.table.remove(item_id)  # other API processes notice within their reconcile
    return Response(status_code=204)
