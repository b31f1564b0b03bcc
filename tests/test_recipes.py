"""Every recipe parses and validates; the training config rejects bad keys and values by name."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from caspo_lite.errors import ConfigError
from caspo_lite.train.config import TrainConfig, load_train_config, to_toml

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))
REQUIRED = {"tiny-ci", "smollm2-135m-arith-cpu", "qwen3-0.6b-gsm8k-8gb", "qwen3-8b-base-math-24gb"}


def test_the_four_recipes_exist() -> None:
    assert {p.stem for p in RECIPES} >= REQUIRED


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_parses_validates_and_has_a_header(path: Path) -> None:
    cfg = load_train_config(path)
    assert isinstance(cfg, TrainConfig)
    head = path.read_text(encoding="utf-8").split("\n[", 1)[0]
    assert "Purpose:" in head and "Command:" in head and "Cost:" in head
    assert f"recipes/{path.name}" in head  # the exact command names this file
    # the resolved config round-trips through TOML (it is written into every round folder)
    again = tomllib.loads(to_toml(cfg))
    assert again["dpo"]["beta"] == cfg.dpo.beta and again["pairs"]["types"] == cfg.pairs.types


def test_overrides_and_types(tmp_path: Path) -> None:
    cfg = load_train_config(RECIPES[0], ["dpo.beta=0.2", "sample.n=3", "pairs.types=['B']"])
    assert (cfg.dpo.beta, cfg.sample.n, cfg.pairs.types) == (0.2, 3, ["B"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dpo.bta=0.2", "unknown key 'bta'"),
        ("dpo.beta='high'", "dpo.beta: expected float"),
        ("dpo.beta=0", "dpo.beta must be > 0"),
        ("sample.engine='vllm'", "sample.engine = 'vllm' is not one of"),
        ("pairs.low_percentile=150", "pairs.low_percentile must be in [0, 100]"),
        ("pairs.types=['C']", "pairs.types may hold only"),
        ("labels.labeler='judge'", "needs labels.judge_model"),
        ("sampling.n=2", "unknown key 'sampling'"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_train_config(RECIPES[0], [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_recipe_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[dpo]\nbeta = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_train_config(bad)
    bad.write_bytes(b"[dpo]\nbeta = 0.1 # \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_train_config(bad)
