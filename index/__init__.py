"""The vector index behind a narrow interface: embedded Qdrant Edge or a Qdrant server."""

from index.base import Hit, IndexPoint, VectorIndex
from index.factory import open_index

__all__ = ["Hit", "IndexPoint", "VectorIndex", "open_index"]
