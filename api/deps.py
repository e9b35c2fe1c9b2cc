"""Typed dependencies: what a route needs is in its signature (`recs: RecsDep`), tests can
replace one provider (`app.dependency_overrides[get_recs] = ...`), and no route reaches into
`request.app.state` untyped.

Every provider here is `async def` on purpose. FastAPI runs a plain `def` dependency on its
thread pool, one hand-off per dependency per request; these only read attributes, so they run
on the event loop and a request pays for one hand-off (its handler's), not four.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.service import Service
from medley.config import Settings
from medley.editor.service import FusionEditor
from medley.experiments.service import Experiments
from medley.keys import KeyStore
from medley.privacy.users import UserPrivacy
from medley.recs.service import Recommendations


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def get_settings(service: ServiceDep) -> Settings:
    return service.settings


async def get_recs(service: ServiceDep) -> Recommendations:
    return service.recs


async def get_editor(service: ServiceDep) -> FusionEditor:
    return service.editor


async def get_experiments(service: ServiceDep) -> Experiments:
    return service.experiments


async def get_keys(service: ServiceDep) -> KeyStore:
    return service.keys


async def get_privacy(recs: Annotated[Recommendations, Depends(get_recs)]) -> UserPrivacy:
    return UserPrivacy(recs)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RecsDep = Annotated[Recommendations, Depends(get_recs)]
EditorDep = Annotated[FusionEditor, Depends(get_editor)]
ExperimentsDep = Annotated[Experiments, Depends(get_experiments)]
KeysDep = Annotated[KeyStore, Depends(get_keys)]
PrivacyDep = Annotated[UserPrivacy, Depends(get_privacy)]
