"""Choose the index backend from settings."""

from __future__ import annotations

from index.base import VectorIndex
from medley.config import StorageSettings


def open_index(settings: StorageSettings) -> VectorIndex:
    """Qdrant server when MEDLEY_QDRANT_URL is set, otherwise the embedded Edge shard."""
    if settings.qdrant_url:
        from index.qdrant import QdrantIndex

        return QdrantIndex.connect(
            settings.qdrant_url, settings.collection, settings.qdrant_api_key
        )
    from index.edge import EdgeIndex

    return EdgeIndex(settings.index_dir / settings.collection)
