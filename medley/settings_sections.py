"""The sections of the settings, one per subsystem (imported through `medley.config`).

`medley.config.Settings` inherits every section, so each field keeps its environment name
`MEDLEY_<FIELD>`; `Settings.<section>` hands a subsystem its own section alone. A field lives
in the section of the code that reads it.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr, field_validator

from medley.domain import Modality, Role

DEFAULT_DATA_DIR = Path("data")


class Precision(StrEnum):
    AUTO = "auto"  # per machine: bf16 where the CPU has it natively, else int8 (enrich/cpu.py)
    FP32 = "fp32"
    INT8 = "int8"  # dynamic int8 quantisation of linear layers (CPU)
    BF16 = "bf16"  # weights in bfloat16 (CPU with AMX or AVX-512-BF16)


class WhisperBackend(StrEnum):
    AUTO = "auto"  # the fastest backend that can load the configured weights
    FASTER_WHISPER = "faster-whisper"
    OPENAI_WHISPER = "openai-whisper"


RateLimits = dict[Role, tuple[float, float]]  # role -> (requests per second, burst)

DEFAULT_FUSION_WEIGHTS: dict[Modality, float] = {
    Modality.IMAGE: 1.0,
    Modality.VIDEO: 1.0,
    Modality.SPEECH: 1.0,
    Modality.TEXT: 1.0,
    Modality.CLIP_TEXT: 0.5,
}

S = TypeVar("S", bound=BaseModel)


def section_of(source: BaseModel, section: type[S], **resolved: Any) -> S:
    """`section` with its fields' values as `source` (settings that carry them at their top
    level) has them; `resolved` replaces a few (a default that depends on another section)."""
    values = {name: getattr(source, name) for name in section.model_fields}
    return section.model_validate({**values, **resolved})


class ApiSettings(BaseModel):
    """The HTTP server and who may call it (`medley serve`, `api/`)."""

    host: str = "127.0.0.1"
    port: int = 8000
    # "text" lines, or "json": one object per line, with every request's id, route, status and
    # duration (medley/logs.py).
    log_format: Literal["text", "json"] = "text"
    # API processes on that port (`medley serve --workers`). On the embedded default the first
    # owns the index and the worker, and the others call it for those (medley/owner.py).
    api_processes: int = Field(default=1, ge=1, le=64)
    # An admin key to honour (hashed at start) in deployments that inject one as a secret; left
    # unset, `medley serve` mints and prints a first admin key when the database has none.
    bootstrap_admin_key: SecretStr | None = None
    api_key: SecretStr | None = None  # the key CLI commands send to a running API
    key_cache_s: float = 5.0  # a revoked key stops working within this long
    # Requests per second each key may make, and the burst it may save up, by role.
    rate_limits: RateLimits = Field(default_factory=lambda: {
        Role.CLIENT: (500.0, 1000.0), Role.CONTENT: (20.0, 100.0),
        Role.EDITOR: (20.0, 60.0), Role.ADMIN: (50.0, 100.0),
    })
    max_offset: int = 10_000  # deeper pages cost a scan; clients should narrow the query

    @field_validator("bootstrap_admin_key", "api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limits")
    @classmethod
    def _limits_sane(cls, value: RateLimits) -> RateLimits:
        for role, (rate, burst) in value.items():
            if rate <= 0 or burst < 1:
                raise ValueError(f"rate_limits.{role}: rate must be > 0 and burst >= 1")
        return value


class StorageSettings(BaseModel):
    """Where data lives and which services hold it: the data folder, database, broker and
    index (`index/`, the database and the process wiring)."""

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None  # default: SQLite file under data_dir
    broker_url: str | None = None  # default: in-process Celery worker on an in-memory broker
    qdrant_url: str | None = None  # default: embedded Qdrant Edge shard under data_dir
    # The embedded shard in a child process of the owner, called by every serving process
    # (index/process.py): its searches then do not hold the serving processes' GIL.
    index_process: bool = True
    qdrant_api_key: str | None = None
    collection: str = "items"
    # Queues this process's in-process worker consumes when a broker is configured; the index
    # owner (the API, when the index is embedded) consumes "index".
    embedded_worker_queues: list[str] = Field(default_factory=lambda: ["index"])
    # Where the behaviour state is saved for restarts (how often: the recommendations section's
    # `behavior_snapshot_interval_s`). Default file: data_dir/behavior.snapshot; an empty path
    # turns snapshots off too.
    behavior_snapshot_path: Path | None = None
    # The serving item table (vectors and item info) saved on the same interval, so a start
    # maps it instead of reading every item's vectors, and serving processes share its pages
    # (`medley/recs/table_file.py`). Default: data_dir/items.table; an empty path: off.
    items_snapshot_path: Path | None = None

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def behavior_snapshot_file(self) -> Path | None:
        path = self.behavior_snapshot_path
        if path is None:
            return self.data_dir / "behavior.snapshot"
        return None if str(path) in ("", ".") else path  # "" reads as Path("."): no file

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'medley.db').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url is None


class ModelSettings(BaseModel):
    """The models and how they are fed (`enrich/`: the model factory and loaders, batching,
    keyframes)."""

    device: str = "cpu"
    torch_threads: int | None = None
    # Converted and quantised weights (derived once, reused); default: data_dir/models. Here,
    # not with the storage, because only the model loaders read it: `Settings.models` fills in
    # that default, so a loader needs no other section.
    model_cache_dir: Path | None = None
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "laion2b_s34b_b79k"
    clip_checkpoint: Path | None = None  # a local open_clip state dict instead of a hub tag
    clip_model_config: Path | None = None  # JSON config of a custom open_clip architecture
    clip_precision: Precision = Precision.AUTO
    clip_batch_size: int = 32
    text_model: str | None = None  # name or folder; default: the packaged all-MiniLM-L6-v2
    text_precision: Precision = Precision.AUTO
    text_batch_size: int = 64
    # Cross-task micro-batching (enrich/batching.py): extraction tasks of one model family
    # running at once are embedded together, up to this many, waiting at most this long for
    # the batch to fill; the embedded default runs the text queue on this many worker threads.
    batch_max_items: int = Field(default=32, ge=1)
    batch_max_wait_ms: float = Field(default=10.0, ge=0)
    text_worker_concurrency: int = Field(default=16, ge=1)
    whisper_backend: WhisperBackend = WhisperBackend.AUTO
    whisper_model: str | None = None  # name, CTranslate2 folder or .pt; default: packaged tiny.en
    whisper_language: str | None = None  # None: detect
    keyframe_cap: int = 8
    scene_threshold: float = 0.3

    @property
    def models_dir(self) -> Path:
        # A section built alone has no data_dir: the storage section's default stands in.
        return self.model_cache_dir or DEFAULT_DATA_DIR / "models"


class RankingSettings(BaseModel):
    """What the recommender engine (`medley.recs.engine.Recommender`) reads: its own part of
    the recommendations section, handed to the engine alone (`Settings.ranking`)."""

    # An item's behavioural weight is n / (n + k) for n interactions: k = evidence needed for 50%.
    behavior_confidence: float = 30.0
    blend_content: float = 1.0
    blend_collab: float = 2.0
    blend_popularity: float = 0.5
    prior_neighbours: int = 20  # established items a new item's prior appeal is predicted from
    new_item_max_age_days: float = 14.0  # from published_at, else from entering the catalog
    # New items leave out, by default, items more distinct users than this engaged with: an
    # item many people already know is not new to the audience, whatever its date (a back
    # catalog imported with its history). 20 users bring an item 20-40 interactions (a view,
    # often a like or a completion too): around where the blend weighs its own behaviour as
    # much as its content (n / (n + MEDLEY_BEHAVIOR_CONFIDENCE), 30), so it no longer needs
    # the new shelf to be found. Clients choose another cap with `max_audience`.
    new_item_max_audience: int = Field(default=20, ge=0)
    exploration_share: float = 0.2  # share of for-you slots kept for new items matched on content
    exploration_grace_hours: float = 48.0  # a new item explores this long whatever its velocity
    exploration_min_velocity: float = 1.0  # after that, trending score it needs to keep exploring
    mmr_lambda: float = 0.8  # 1 = relevance only, lower = more diverse
    candidates_per_source: int = 100
    # Users whose personal candidates are kept between requests (`medley.recs.user_lists`,
    # ~8 KB each; 0 turns them off), and how long an entry found under an older catalog serves.
    user_lists_size: int = Field(default=20_000, ge=0)
    user_lists_max_age_s: float = Field(default=60.0, ge=0, allow_inf_nan=False)


class RecommendationSettings(RankingSettings):
    """Events, behaviour, the collaborative model and the serving caches (`medley/recs/`), with
    the engine's part (`RankingSettings`) inside."""

    max_event_batch: int = 1000
    max_event_future_skew_s: float = 300.0  # later timestamps are refused as clock errors
    events_poll_interval_s: float = 0.25  # how often a serving process folds in new events
    # The behaviour state saved at most this often (seconds), so a restart tails the events
    # after it instead of replaying them all; 0 turns snapshots off (the item table's too).
    # Their files: the storage section's `behavior_snapshot_path`, `items_snapshot_path`.
    behavior_snapshot_interval_s: float = Field(default=300.0, ge=0, allow_inf_nan=False)
    popularity_half_life_days: float = 30.0
    trending_half_life_hours: float = 24.0
    max_results: int = 100
    collab_factors: int = 64
    collab_iterations: int = 15
    collab_regularization: float = 10.0
    collab_retrain_interval_s: float = 600.0
    # Whole answers per user (or item) and surface, reused while nothing they depend on changed
    # (`medley.recs.cache`); the time-to-live bounds what drifts without notice (others' events
    # moving popularity, items ageing out of "new"). 0 turns the cache off.
    answer_cache_size: int = Field(default=20_000, ge=0)
    answer_cache_ttl_s: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    query_vector_cache_size: int = Field(default=2_000, ge=0)  # embedded search queries

    @property
    def ranking(self) -> RankingSettings:
        """The recommender engine's section, as these settings have it."""
        return section_of(self, RankingSettings)


class EditorSettings(BaseModel):
    """What the fusion editor and its console read (`medley/editor/`, `/console`)."""

    # The default profile's weights, made on first start (then editors publish profiles).
    fusion_weights: dict[Modality, float] = Field(
        default_factory=lambda: dict(DEFAULT_FUSION_WEIGHTS)
    )
    thumbnail_px: int = 160  # longest side of the editor console's item thumbnails

    @field_validator("fusion_weights")
    @classmethod
    def _weights_non_negative(cls, value: dict[Modality, float]) -> dict[Modality, float]:
        if any(w < 0 for w in value.values()):
            raise ValueError("fusion weights must be >= 0")
        if not any(w > 0 for w in value.values()):
            raise ValueError("at least one fusion weight must be > 0")
        return value


class PrivacySettings(BaseModel):
    """Differentially private analytics and erasure (`medley/privacy/`)."""

    # Per-item analytics are differentially private: each query spends `analytics_epsilon`
    # (split evenly over its counts) from the calling key's `analytics_budget`, which refills
    # every `analytics_budget_window_s`.
    analytics_epsilon: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    analytics_budget: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    analytics_budget_window_s: float = Field(default=86400.0, ge=1, allow_inf_nan=False)
    # How long an erasure notice keeps a hash of the erased user id (so every live process can
    # drop that user at once); after it only the receipt, with no trace of the id, is kept.
    erasure_notice_s: float = 3600.0


class LimitSettings(BaseModel):
    """What one input or one task may take: sizes, durations, attempts, and the timers that
    find lost work (the API's guard, the workers, the stale sweep)."""

    max_upload_bytes: int = 512 * 1024 * 1024
    max_image_pixels: int = 64_000_000  # larger images are treated as decompression bombs
    max_media_seconds: float = 4 * 3600.0
    max_page_size: int = 200
    max_json_bytes: int = 4 * 1024 * 1024  # any request body that is not an upload
    task_soft_time_limit_s: int = 900
    task_time_limit_s: int = 960
    task_max_attempts: int = 3  # deliveries of one extraction before it is marked failed
    broker_visibility_timeout_s: int = 3600  # Redis: when an unacked task is redelivered
    # How often the embedded (in-memory) broker's consumer looks for work. kombu's default, 1 s,
    # let the in-process worker take about one task per second per slot, however fast the
    # models were (a catalog import drained at ~1.3 tasks/s with the CPU idle). At 10 ms a
    # freed slot waits 5 ms on average for its next task, for ~0.4% of a core while idle
    # (`python -m benchmarks drain`).
    embedded_poll_interval_s: float = Field(default=0.01, gt=0, le=5)
    stale_sweep_interval_s: float = 30.0
    # Queued work whose broker message was lost (a broker restarted without persistence, a
    # dispatch during a broker outage) is sent again by the stale sweep: once its queue is empty
    # and it has waited this long, or after the longer wait whatever the queue holds.
    redispatch_idle_s: float = 60.0
    redispatch_max_wait_s: float = 3600.0
