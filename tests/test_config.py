"""Config loading: unknown keys are errors naming the key; dotted overrides; type checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from caspo_lite.config import CaspoConfig, load_config, parse_override, to_dict
from caspo_lite.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_load_without_a_file() -> None:
    cfg = load_config()
    assert isinstance(cfg, CaspoConfig)
    assert cfg.search.strategy == "cat" and cfg.confidence.signal == "entropy"


def test_recipe_and_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, '[search]\nk = 4\ntemperature = 1\n[model]\nname = "tiny"\n')
    cfg = load_config(path, ["search.k=16", "search.strategy=sc", "confidence.signal=margin"])
    assert cfg.search.k == 16 and cfg.search.strategy == "sc"
    assert cfg.search.temperature == 1.0 and isinstance(cfg.search.temperature, float)
    assert cfg.model.name == "tiny" and cfg.confidence.signal == "margin"
    assert to_dict(cfg)["search"]["k"] == 16


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[search]\nbeam = 3\n")
    with pytest.raises(ConfigError, match=r"r\.toml\.search: unknown key 'beam'"):
        load_config(path)


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'serch'"):
        load_config(write(tmp_path, "[serch]\nk = 1\n"))


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"search\.k: expected an integer"):
        load_config(write(tmp_path, '[search]\nk = "eight"\n'))
    with pytest.raises(ConfigError, match=r"model\.trust_remote_code: expected true or false"):
        load_config(write(tmp_path, "[model]\ntrust_remote_code = 1\n"))


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[search\n"))
    with pytest.raises(ConfigError, match="recipe not found"):
        load_config(tmp_path / "nope.toml")


def test_parse_override_forms() -> None:
    assert parse_override("dpo.beta=0.2") == (["dpo", "beta"], 0.2)
    assert parse_override("model.name=tiny") == (["model", "name"], "tiny")
    assert parse_override("a.b=true") == (["a", "b"], True)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("dpo.beta")
