"""Catalog use cases: create, read, change and delete items. Called by the API and the CLI."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from medley import dates, repo
from medley.db import Database
from medley.db.models import Item, Media, ModalityRecord
from medley.db.session import disk_full
from medley.domain import MediaKind, Modality, ModalityStatus
from medley.errors import InvalidInput, StorageFull
from medley.media import MediaStore, StoredMedia

log = logging.getLogger(__name__)

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Published = Annotated[datetime, AfterValidator(dates.in_range)]  # stored as aware UTC


class ItemMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
    description: str = Field("", max_length=20_000)
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    language: str | None = Field(None, max_length=16)
    age_rating: str | None = Field(None, max_length=16)
    published_at: Published | None = None
    external_id: str | None = Field(None, max_length=256)
    attributes: dict[str, Any] = Field(default_factory=dict)


class ItemPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
        | None
    ) = None
    description: str | None = Field(None, max_length=20_000)
    tags: list[Tag] | None = Field(None, max_length=100)
    language: str | None = Field(None, max_length=16)
    age_rating: str | None = Field(None, max_length=16)
    published_at: Published | None = None
    external_id: str | None = Field(None, max_length=256)
    attributes: dict[str, Any] | None = None


# What a field becomes when a PATCH sets it to null.
_CLEARED: dict[str, Any] = {"description": "", "tags": [], "attributes": {}}


class DispatchFailed(RuntimeError):
    """The broker did not take a task. The work is recorded in the database first, so the
    stale sweep sends it again once the broker is back; callers log and carry on."""


class Dispatcher(Protocol):
    """Raises DispatchFailed when the broker is unreachable."""

    def extract(self, item_id: str, modality: Modality) -> None: ...

    def index(self, item_id: str) -> None: ...


def text_input(item: Item, m: Modality) -> str:
    """The text each text-space modality embeds."""
    if m is Modality.CLIP_TEXT:
        return f"{item.title}. {item.description}".strip()
    tags = ", ".join(item.tags or [])
    return f"{item.title}. {item.description} {('Tags: ' + tags) if tags else ''}".strip()


def text_hash(item: Item, m: Modality) -> str:
    return hashlib.sha256(f"{m}\n{text_input(item, m)}".encode()).hexdigest()


def _initial_modalities(uploads: dict[MediaKind, StoredMedia]) -> dict[Modality, str | None]:
    """Which modalities the item will have, each with an error if it failed on arrival."""
    wanted: dict[Modality, str | None] = {Modality.TEXT: None, Modality.CLIP_TEXT: None}
    sources = {
        MediaKind.IMAGE: [Modality.IMAGE],
        MediaKind.VIDEO: [Modality.VIDEO, Modality.SPEECH],
        MediaKind.AUDIO: [Modality.SPEECH],
    }
    for kind in (MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.AUDIO):
        up = uploads.get(kind)
        if up is None:
            continue
        error = f"the uploaded {kind} file is empty" if up.path is None else None
        for m in sources[kind]:
            # A usable audio file wins over a broken one's failure for speech.
            if m not in wanted or error is None:
                wanted[m] = error
    return wanted


class Catalog:
    def __init__(self, db: Database, store: MediaStore, dispatch: Dispatcher) -> None:
        self.db = db
        self.store = store
        self.dispatch = dispatch

    def create(self, meta: ItemMetadata, uploads: dict[MediaKind, StoredMedia]) -> Item:
        item_id = str(uuid.uuid4())
        try:
            queued = self._insert(item_id, meta, uploads)
        except BaseException as exc:
            # No item: its stored files must not stay behind either.
            self._drop_unused(uploads)
            if disk_full(exc):
                raise StorageFull("the database is out of disk space") from exc
            raise
        self._send(item_id, queued)
        return self.get(item_id)

    def _insert(self, item_id: str, meta: ItemMetadata,
                uploads: dict[MediaKind, StoredMedia]) -> list[Modality]:
        with self.db.session() as s:
            item = Item(id=item_id, status="queued", **meta.model_dump())
            s.add(item)
            for up in uploads.values():
                if up.path is not None:
                    s.add(Media(item_id=item_id, kind=up.kind.value, sha256=up.sha256,
                                path=str(up.path), mime=up.mime, size=up.size,
                                filename=up.filename))
            for m, error in _initial_modalities(uploads).items():
                rec = ModalityRecord(item_id=item_id, modality=m.value, attempts=0)
                repo.reset_modality(
                    rec, ModalityStatus.FAILED if error else ModalityStatus.QUEUED, error
                )
                s.add(rec)
            repo.refresh_status(s, item)
            return [Modality(r.modality) for r in item.modalities
                    if r.status == ModalityStatus.QUEUED.value]

    def _drop_unused(self, uploads: dict[MediaKind, StoredMedia]) -> None:
        paths = {str(up.path) for up in uploads.values() if up.path is not None}
        if not paths:
            return
        try:
            with self.db.session() as s:
                paths -= repo.media_still_used(s, paths)
        except Exception:
            log.exception("could not check which uploaded files are orphans; keeping them")
            return
        for p in paths:
            self.store.remove(Path(p))

    def _send(self, item_id: str, modalities: list[Modality]) -> None:
        """Dispatch extractions; with the broker away the rest would fail the same way, so the
        first failure stops here and the stale sweep sends them all later."""
        try:
            for m in modalities:
                self.dispatch.extract(item_id, m)
        except DispatchFailed as exc:
            log.warning("item %s stored, its extractions wait for the broker: %s", item_id, exc)

    def get(self, item_id: str) -> Item:
        with self.db.session() as s:
            return repo.get_item(s, item_id)

    def list(self, *, status: str | None, limit: int, offset: int, ids: Sequence[str] = (),
             external_ids: Sequence[str] = ()) -> tuple[list[Item], int]:
        with self.db.session() as s:
            return repo.list_items(s, status=status, limit=limit, offset=offset, ids=ids,
                                   external_ids=external_ids)

    def patch(self, item_id: str, patch: ItemPatch) -> Item:
        """Change metadata; re-embed only the text modalities whose input changed."""
        changes = patch.model_dump(exclude_unset=True)
        redo: list[Modality] = []
        with self.db.session() as s:
            item = repo.get_item(s, item_id)
            for k, v in changes.items():
                if v is None and k == "title":
                    raise InvalidInput("title cannot be removed")
                setattr(item, k, _CLEARED.get(k) if v is None else v)
            for m in (Modality.TEXT, Modality.CLIP_TEXT):
                rec = repo.modality(s, item_id, m)
                new_hash = text_hash(item, m)
                if rec is not None and rec.source_hash != new_hash:
                    repo.reset_modality(rec, ModalityStatus.QUEUED)
                    rec.source_hash = new_hash  # a second PATCH of the same text queues nothing
                    redo.append(m)
            item.indexed = False
            repo.refresh_status(s, item)
        if redo:
            self._send(item_id, redo)
        else:
            # The payload changed, the vectors did not; the sweep re-sends an unindexed item.
            self._index(item_id)
        return self.get(item_id)

    def _index(self, item_id: str) -> None:
        try:
            self.dispatch.index(item_id)
        except DispatchFailed as exc:
            log.warning("index update of item %s waits for the broker: %s", item_id, exc)

    def delete(self, item_id: str) -> None:
        with self.db.session() as s:
            item = repo.get_item(s, item_id)
            paths = [m.path for m in item.media]
            s.delete(item)
            s.flush()
            orphans = set(paths) - repo.media_still_used(s, paths)
        for p in orphans:
            self.store.remove(Path(p))
        self._index(item_id)  # the index owner drops the point
