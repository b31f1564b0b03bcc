"""Run configuration: one stdlib dataclass per section, loaded from TOML recipes.

Unknown sections and keys are errors that name the file and the key; values are checked for
type; CLI overrides use dotted keys (``--set dpo.beta=0.2``). Each field carries its one
piece of documentation in ``metadata["help"]``. The fully resolved config is written into
every round folder next to its weights.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite.errors import ConfigError


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class ModelSection:
    name: str = _f(
        "smollm2-135m", "Model reference: built-in name, .gguf path, HF dir, round folder or hub id."
    )
    trust_remote_code: bool = _f(False, "Allow custom model code from the hub (off unless you ask).")


@dataclass
class TaskSection:
    name: str = _f(
        "arith", "Task family: arith, gsm8k, math500, aime24, amc23, svamp, asdiv, multiarith, jsonl."
    )
    path: str = _f("", "Data file for file-based tasks (JSONL); empty = the task's default location.")
    n_train: int = _f(100, "Training problems per round.")
    n_dev: int = _f(50, "Held-out dev problems scored after each round.")
    seed: int = _f(0, "Seed for problem selection / generation.")
    level: str = _f("default", "Difficulty level (arith only).")


@dataclass
class StepsSection:
    delimiter: str = _f(r"\n", "Regex a token must match to end a step.")
    min_step_tokens: int = _f(3, "Shorter fragments merge into the next step.")
    max_step_tokens: int = _f(96, "A step is cut at this many tokens.")


@dataclass
class ConfidenceSection:
    signal: str = _f("entropy", "Token confidence signal: entropy, margin, maxprob, deepconf.")
    path_mode: str = _f("geomean", "Path confidence: geomean, min, tail.")


@dataclass
class SearchSection:
    strategy: str = _f("cat", "Search strategy by name (caspo_lite.search.STRATEGIES).")
    k: int = _f(8, "Budget: paths started (sc/bon/deepconf: samples; cat: branches).")
    branch_factor: int = _f(2, "CaT: children per fork (forks happen only while k > paths started).")
    beam_width: int = _f(
        8, "CaT: most paths alive at once; min(k, beam_width) roots start together from the prompt."
    )
    prune_threshold: float = _f(
        -1.0,
        "CaT: absolute path-confidence prune threshold; < 0 = the model's calibration (section 'cat'"
        " of calibration.json), else the first step boundary's warm-up paths.",
    )
    prune_percentile: float = _f(
        50.0, "CaT/DeepConf: percentile of calibrated (or warm-up) confidences used as threshold."
    )
    warmup: int = _f(2, "DeepConf: warm-up traces that calibrate the threshold (CaT: all roots' first step).")
    accept_threshold: float = _f(
        0.85,
        "CaT: stop as soon as a finished path's confidence (calibrated P(correct) when the model has an"
        " 'answer' calibration, else path confidence) reaches this (> 1 = never).",
    )
    consensus: float = _f(
        0.7,
        "CaT: stop once the confidence-weighted vote share of the leading answer among finished paths"
        " (at least 2) reaches this (> 1 = never); stragglers are also cut once the vote is decided.",
    )
    restart: bool = _f(False, "CaT: start new roots when every path ended and budget is left.")
    selection: str = _f(
        "vote", "CaT: answer by confidence-weighted vote ('vote') or max path confidence ('max')."
    )
    calibration: str = _f(
        "", "CaT: calibration.json to read thresholds from; empty = the model's own (round or data dir)."
    )
    temperature: float = _f(0.7, "Sampling temperature (greedy ignores it).")
    top_p: float = _f(0.95, "Nucleus sampling cut.")
    max_tokens: int = _f(256, "Max new tokens per path.")
    seed: int = _f(0, "Sampling seed.")

    def validate(self, where: str = "search") -> SearchSection:
        """Check every knob once; ConfigError names ``where.field`` and the valid range."""

        def bad(name: str, want: str) -> ConfigError:
            return ConfigError(f"{where}.{name}: {want}, got {getattr(self, name)!r}")

        for name in ("k", "branch_factor", "beam_width", "max_tokens"):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        if not 0.0 <= self.prune_percentile <= 100.0:
            raise bad("prune_percentile", "must be within 0-100")
        if self.warmup < 0:
            raise bad("warmup", "must be >= 0")
        if not self.temperature >= 0.0:
            raise bad("temperature", "must be >= 0 (0 = greedy)")
        if not 0.0 < self.top_p <= 1.0:
            raise bad("top_p", "must be in (0, 1]")
        if self.selection not in ("max", "vote"):
            raise bad("selection", "choose 'max' or 'vote'")
        for name in ("prune_threshold", "accept_threshold", "consensus"):
            if getattr(self, name) != getattr(self, name):  # NaN
                raise bad(name, "must be a number")
        if not self.consensus > 0.0:
            raise bad("consensus", "must be > 0 (> 1 = never stop on consensus)")
        return self


@dataclass
class CaspoConfig:
    model: ModelSection = field(default_factory=ModelSection)
    task: TaskSection = field(default_factory=TaskSection)
    steps: StepsSection = field(default_factory=StepsSection)
    confidence: ConfidenceSection = field(default_factory=ConfidenceSection)
    search: SearchSection = field(default_factory=SearchSection)


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Coerce ints to float where a float is wanted; otherwise demand the declared type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(annotation):
            try:
                return _check_type(value, arm, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid {annotation}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(annotation) or (Any,)
        return [_check_type(v, item, where) for v in value]
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected nothing, got {value!r}")
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def build_section(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build one dataclass section from a dict, rejecting unknown keys by name."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")
        if dataclasses.is_dataclass(hints[key]):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected a table")
            kwargs[key] = build_section(hints[key], value, f"{where}.{key}")
        else:
            kwargs[key] = _check_type(value, hints[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """'dpo.beta=0.2' -> (['dpo', 'beta'], 0.2); values are parsed as TOML, else kept as text."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. dpo.beta=0.2")
    key, raw = item.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: '{part}' is not a section")
        node[path[-1]] = value
    return data


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: recipe not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None


def load_config(path: Path | None = None, overrides: list[str] | None = None, cls: type = CaspoConfig) -> Any:
    """Load a recipe (or defaults) with dotted overrides into the config dataclass ``cls``."""
    data = read_toml(path) if path else {}
    apply_overrides(data, overrides or [])
    return build_section(cls, data, str(path) if path else "config")


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def help_for(cls: type) -> dict[str, str]:
    """Field name -> help text (the one place each field is documented)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}
