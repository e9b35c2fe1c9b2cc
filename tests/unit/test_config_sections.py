"""Every setting lives in exactly one section, and each is read from its unchanged environment
name `MEDLEY_<FIELD>` into that section (`Settings.<section>`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo

from medley.config import (
    ApiSettings,
    EditorSettings,
    LimitSettings,
    ModelSettings,
    Precision,
    PrivacySettings,
    RankingSettings,
    RecommendationSettings,
    Settings,
    StorageSettings,
    WhisperBackend,
)
from medley.domain import Modality, Role

# Each section by its property on Settings (the engine's `ranking` is part of recommendations).
SECTIONS: dict[str, type[BaseModel]] = {
    "api": ApiSettings,
    "storage": StorageSettings,
    "models": ModelSettings,
    "recommendations": RecommendationSettings,
    "editor": EditorSettings,
    "privacy": PrivacySettings,
    "limits": LimitSettings,
}

# Fields whose type the generic values below do not cover: (environment value, field value).
SPECIAL: dict[str, tuple[str, Any]] = {
    "log_format": ("json", "json"),
    "bootstrap_admin_key": ("admin-secret", "admin-secret"),
    "api_key": ("cli-secret", "cli-secret"),
    "rate_limits": ('{"client": [7, 9]}', {Role.CLIENT: (7.0, 9.0)}),
    "embedded_worker_queues": ('["media", "index"]', ["media", "index"]),
    "clip_precision": ("fp32", Precision.FP32),
    "text_precision": ("int8", Precision.INT8),
    "whisper_backend": ("openai-whisper", WhisperBackend.OPENAI_WHISPER),
    "fusion_weights": ('{"text": 2, "image": 0}', {Modality.TEXT: 2.0, Modality.IMAGE: 0.0}),
}


def _sample(name: str, info: FieldInfo) -> tuple[str, Any]:
    """An environment value unlike the field's default, and the value it reads as."""
    if name in SPECIAL:
        return SPECIAL[name]
    kinds = set(get_args(info.annotation)) - {type(None)} or {info.annotation}
    default = info.get_default(call_default_factory=True)
    if bool in kinds:
        return str(not default).lower(), not default
    if int in kinds:
        return str((default or 0) + 3), (default or 0) + 3
    if float in kinds:
        return str((default or 0.0) + 0.5), (default or 0.0) + 0.5
    if Path in kinds:
        return f"/srv/medley/{name}", Path(f"/srv/medley/{name}")
    if str in kinds:
        return f"x-{name}", f"x-{name}"
    raise AssertionError(f"{name}: give it an environment value in SPECIAL")


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


CASES = [(section, name, info) for section, cls in SECTIONS.items()
         for name, info in cls.model_fields.items()]


@pytest.mark.parametrize(("section", "name", "info"), CASES,
                         ids=[f"{s}.{n}" for s, n, _ in CASES])
def test_each_field_reaches_its_section_under_its_environment_name(
        monkeypatch: pytest.MonkeyPatch, section: str, name: str, info: FieldInfo) -> None:
    env, expected = _sample(name, info)
    assert expected != info.get_default(call_default_factory=True), "the sample is the default"
    monkeypatch.setenv(f"MEDLEY_{name.upper()}", env)
    settings = Settings(_env_file=None)
    part = getattr(settings, section)
    assert type(part) is SECTIONS[section]
    assert _plain(getattr(part, name)) == expected
    assert _plain(getattr(settings, name)) == expected  # the top-level name still works


def test_no_field_belongs_to_two_sections() -> None:
    owners = Counter(name for cls in SECTIONS.values() for name in cls.model_fields)
    assert [name for name, n in owners.items() if n > 1] == []


def test_every_setting_belongs_to_a_section() -> None:
    """A field added to Settings itself, outside every section, fails here until it is given
    a home."""
    owned = {name for cls in SECTIONS.values() for name in cls.model_fields}
    assert set(Settings.model_fields) - owned == set()
    assert owned - set(Settings.model_fields) == set()


def test_the_engine_section_is_part_of_the_recommendations() -> None:
    settings = Settings(_env_file=None, mmr_lambda=0.4)
    assert set(RankingSettings.model_fields) <= set(RecommendationSettings.model_fields)
    assert type(settings.ranking) is RankingSettings and settings.ranking.mmr_lambda == 0.4
    assert settings.recommendations.ranking == settings.ranking


def test_the_model_section_carries_the_cache_folder_under_data_dir(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)
    assert settings.models.models_dir == settings.models_dir == tmp_path / "models"
    chosen = Settings(_env_file=None, data_dir=tmp_path,
                      model_cache_dir=tmp_path / "weights")
    assert chosen.models.models_dir == chosen.models_dir == tmp_path / "weights"
    # Built alone, the section falls back to the storage section's default data folder.
    assert ModelSettings().models_dir == StorageSettings().data_dir / "models"


def test_the_validators_moved_with_their_fields() -> None:
    with pytest.raises(ValidationError, match="rate_limits"):
        ApiSettings(rate_limits={Role.CLIENT: (0.0, 1.0)})
    with pytest.raises(ValidationError, match="fusion weight"):
        EditorSettings(fusion_weights={Modality.TEXT: 0.0})
    assert ApiSettings(api_key=" ").api_key is None
    with pytest.raises(ValidationError, match="rate_limits"):
        Settings(_env_file=None, rate_limits={Role.CLIENT: (1.0, 0.0)})
    assert Settings(_env_file=None, bootstrap_admin_key="").bootstrap_admin_key is None
