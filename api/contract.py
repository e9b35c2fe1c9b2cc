"""The OpenAPI schema says as much as the API enforces, so a client generated from it gets
models for the two calls it makes most.

Two bodies are read by hand on purpose and looked untyped: an event batch (each event is
validated on its own, so one bad event is refused alone, not the batch) and the upload's
`metadata` part (JSON inside a multipart form). Here the schema gains the models behind them,
`EventIn` and `ItemMetadata`; an event batch's items and the metadata part point at them
(the part as JSON text, `contentMediaType` + `contentSchema`), and file parts are binary.
What the routes accept does not change.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from medley.catalog import ItemMetadata
from medley.recs.events import EventIn

REF = "#/components/schemas/{model}"
UPLOAD_PARTS = ("image", "audio", "video")


def typed_contract(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        _, defs = models_json_schema([(EventIn, "validation"), (ItemMetadata, "validation")],
                                     ref_template=REF)
        components.update(defs.get("$defs", {}))
        batch = components.get("EventBatch", {}).get("properties", {}).get("events")
        if batch is not None:
            batch["items"] = {"$ref": REF.format(model="EventIn")}
        for name, body in components.items():
            if not name.startswith("Body_upload_item"):
                continue
            props = body.get("properties", {})
            if "metadata" in props:
                props["metadata"] |= {"contentMediaType": "application/json",
                                      "contentSchema": {"$ref": REF.format(model="ItemMetadata")}}
            for part in UPLOAD_PARTS:
                for option in props.get(part, {}).get("anyOf", []):
                    if option.get("type") == "string":
                        option["format"] = "binary"
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
