"""Every setting Medley reads, in one place, for the API and the workers alike.

Values come from `MEDLEY_*` environment variables or a `.env` file.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medley.domain import Modality


class Precision(StrEnum):
    FP32 = "fp32"
    INT8 = "int8"  # dynamic int8 quantisation of linear layers (CPU)


class WhisperBackend(StrEnum):
    AUTO = "auto"  # the fastest backend that can load the configured weights
    FASTER_WHISPER = "faster-whisper"
    OPENAI_WHISPER = "openai-whisper"


DEFAULT_FUSION_WEIGHTS: dict[Modality, float] = {
    Modality.IMAGE: 1.0,
    Modality.VIDEO: 1.0,
    Modality.SPEECH: 1.0,
    Modality.TEXT: 1.0,
    Modality.CLIP_TEXT: 0.5,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDLEY_", env_file=".env", extra="ignore")

    # --- deployment -------------------------------------------------------------------------
    data_dir: Path = Path("data")
    # Converted and quantised weights (derived once, reused); default: data_dir/models.
    model_cache_dir: Path | None = None
    database_url: str | None = None  # default: SQLite file under data_dir
    broker_url: str | None = None  # default: in-process Celery worker on an in-memory broker
    qdrant_url: str | None = None  # default: embedded Qdrant Edge shard under data_dir
    qdrant_api_key: str | None = None
    collection: str = "items"
    host: str = "127.0.0.1"
    port: int = 8000
    # Queues this process's in-process worker consumes when a broker is configured; the index
    # owner (the API, when the index is embedded) consumes "index".
    embedded_worker_queues: list[str] = Field(default_factory=lambda: ["index"])

    # --- limits ---------------------------------------------------------------------------------
    max_upload_bytes: int = 512 * 1024 * 1024
    max_image_pixels: int = 64_000_000  # larger images are treated as decompression bombs
    max_media_seconds: float = 4 * 3600.0
    max_page_size: int = 200
    task_soft_time_limit_s: int = 900
    task_time_limit_s: int = 960
    task_max_attempts: int = 3  # deliveries of one extraction before it is marked failed
    broker_visibility_timeout_s: int = 3600  # Redis: when an unacked task is redelivered
    stale_sweep_interval_s: float = 30.0

    # --- models -----------------------------------------------------------------------------
    device: str = "cpu"
    torch_threads: int | None = None
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "laion2b_s34b_b79k"
    clip_checkpoint: Path | None = None  # a local open_clip state dict instead of a hub tag
    clip_model_config: Path | None = None  # JSON config of a custom open_clip architecture
    clip_precision: Precision = Precision.INT8
    clip_batch_size: int = 32
    text_model: str | None = None  # name or folder; default: the packaged all-MiniLM-L6-v2
    text_precision: Precision = Precision.INT8
    text_batch_size: int = 64
    whisper_backend: WhisperBackend = WhisperBackend.AUTO
    whisper_model: str | None = None  # name, CTranslate2 folder or .pt; default: packaged tiny.en
    whisper_language: str | None = None  # None: detect
    keyframe_cap: int = 8
    scene_threshold: float = 0.3

    # --- fusion -----------------------------------------------------------------------------
    fusion_weights: dict[Modality, float] = Field(
        default_factory=lambda: dict(DEFAULT_FUSION_WEIGHTS)
    )

    @field_validator("fusion_weights")
    @classmethod
    def _weights_non_negative(cls, value: dict[Modality, float]) -> dict[Modality, float]:
        if any(w < 0 for w in value.values()):
            raise ValueError("fusion weights must be >= 0")
        if not any(w > 0 for w in value.values()):
            raise ValueError("at least one fusion weight must be > 0")
        return value

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'medley.db').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
