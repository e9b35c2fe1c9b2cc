"""Every setting Medley reads, in one place, for the API and the workers alike.

Values come from `MEDLEY_*` environment variables or a `.env` file. The fields are grouped in
sections, one per subsystem (`medley/settings_sections.py`); `Settings` carries them all at its
top level, so the environment names stay `MEDLEY_<FIELD>`, and `Settings.<section>` hands a
subsystem its own section alone.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from medley.settings_sections import (
    DEFAULT_FUSION_WEIGHTS,
    ApiSettings,
    EditorSettings,
    LimitSettings,
    ModelSettings,
    Precision,
    PrivacySettings,
    RankingSettings,
    RateLimits,
    RecommendationSettings,
    StorageSettings,
    WhisperBackend,
    section_of,
)

__all__ = [
    "DEFAULT_FUSION_WEIGHTS", "ApiSettings", "EditorSettings", "LimitSettings",
    "ModelSettings", "Precision", "PrivacySettings", "RankingSettings", "RateLimits",
    "RecommendationSettings", "Settings", "StorageSettings", "WhisperBackend", "get_settings",
]


class Settings(BaseSettings, ApiSettings, StorageSettings, ModelSettings, RecommendationSettings,
               EditorSettings, PrivacySettings, LimitSettings):
    """Every section's fields at the top level (their environment names), each section whole
    through its property."""

    model_config = SettingsConfigDict(env_prefix="MEDLEY_", env_file=".env", extra="ignore")

    @property
    def api(self) -> ApiSettings:
        return section_of(self, ApiSettings)

    @property
    def storage(self) -> StorageSettings:
        return section_of(self, StorageSettings)

    @property
    def models(self) -> ModelSettings:
        """The model section, with the model cache's default (under data_dir) filled in."""
        return section_of(self, ModelSettings, model_cache_dir=self.models_dir)

    @property
    def recommendations(self) -> RecommendationSettings:
        return section_of(self, RecommendationSettings)

    @property
    def editor(self) -> EditorSettings:
        return section_of(self, EditorSettings)

    @property
    def privacy(self) -> PrivacySettings:
        return section_of(self, PrivacySettings)

    @property
    def limits(self) -> LimitSettings:
        return section_of(self, LimitSettings)

    # `ranking` (the engine's part of the recommendations) comes with RecommendationSettings;
    # the storage section's paths (media_dir, index_dir, ...) with StorageSettings.

    @property
    def models_dir(self) -> Path:
        # The model section's, with this data_dir (a section alone only knows the default).
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def items_snapshot_file(self) -> Path | None:
        # Here, not in a section: the path is the storage section's, whether the file is
        # written at all the recommendations' (it is saved on the behaviour snapshots' interval).
        if self.behavior_snapshot_interval_s <= 0:
            return None
        path = self.items_snapshot_path
        if path is None:
            return self.data_dir / "items.table"
        return None if str(path) in ("", ".") else path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
