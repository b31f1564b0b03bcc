"""Chat settings: which model, which search, which confidence signal.

The chat screen copies these at the moment a question is asked, so a change made in the
settings screen applies to the next question and never to a search already running.
The sections are the library's own config dataclasses, so the same validation and help
texts serve the TUI, the CLI and the recipes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite.confidence import SIGNALS
from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection, build_section
from caspo_lite.errors import CaspoError, ConfigError
from caspo_lite.models import BUILTIN, resolve_model
from caspo_lite.paths import atomic_write_text, data_dir, runs_dir
from caspo_lite.search import STRATEGY_NAMES

log = logging.getLogger(__name__)
SETTINGS_FILE = "tui-settings.json"


# The search fields the settings screen exposes, in display order.
SEARCH_FIELDS: tuple[str, ...] = (
    "k",
    "branch_factor",
    "beam_width",
    "prune_threshold",
    "prune_percentile",
    "accept_threshold",
    "temperature",
    "max_tokens",
)


@dataclass
class ChatSettings:
    """Everything one chat question needs besides the question itself."""

    model: str = "smollm2-135m"
    task: str = ""  # whose prompt a chat question uses; "" = what `solve` picks for it
    search: SearchSection = field(default_factory=SearchSection)
    confidence: ConfidenceSection = field(default_factory=ConfidenceSection)
    steps: StepsSection = field(default_factory=StepsSection)
    abstain_below: float | None = None  # answers under this P(correct) read "not sure" (#16)

    def copy(self) -> ChatSettings:
        return dataclasses.replace(
            self,
            search=dataclasses.replace(self.search),
            confidence=dataclasses.replace(self.confidence),
            steps=dataclasses.replace(self.steps),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def token_budget(self) -> int:
        """Tokens the search may spend at most: K paths of at most max_tokens each."""
        return self.search.k * self.search.max_tokens


def strategy_names() -> tuple[str, ...]:
    """The search registry's names, in its order."""
    return tuple(STRATEGY_NAMES)


def signal_names() -> tuple[str, ...]:
    return SIGNALS


def model_choices(runs: Path | None = None) -> list[str]:
    """Built-in model names, then every GGUF file found under the runs folder (sorted)."""
    names = list(BUILTIN)
    folder = runs if runs is not None else runs_dir()
    if folder.is_dir():
        names += sorted(str(p) for p in folder.rglob("*.gguf") if p.is_file())
    return names


def check_model(ref: str) -> None:
    """Raise a one-line CaspoError when ``ref`` names no model (nothing is loaded or downloaded).

    Built-in names and hub ids pass; a .gguf must exist and have a sound header; a folder must
    be an HF model or a training round.
    """

    try:
        resolve_model(ref)
    except CaspoError as exc:
        raise ConfigError(f"settings.model: {exc}") from None


def _parse_number(raw: str, want: type, where: str) -> Any:
    text = raw.strip()
    try:
        return int(text) if want is int else float(text)
    except ValueError:
        kind = "a whole number" if want is int else "a number"
        raise ConfigError(f"{where}: {raw!r} is not {kind}") from None


def apply_form(current: ChatSettings, form: dict[str, str]) -> ChatSettings:
    """Build new settings from the settings screen's text fields (raises ConfigError).

    ``form`` maps ``"model"``, ``"strategy"``, ``"signal"`` and the names in SEARCH_FIELDS to
    the text the user typed; missing keys keep their current value.
    """
    new = current.copy()
    model = form.get("model", new.model).strip()
    if not model:
        raise ConfigError("settings.model: empty; pick a built-in model or type a .gguf path")
    new.model = model
    search = dataclasses.asdict(new.search)
    types = {f.name: f.type for f in dataclasses.fields(SearchSection)}
    for name in SEARCH_FIELDS:
        if name in form:
            want = int if types[name] in (int, "int") else float
            search[name] = _parse_number(form[name], want, f"settings.search.{name}")
    if "strategy" in form:
        known = strategy_names()
        if form["strategy"] not in known:
            raise ConfigError(
                f"settings.search.strategy: unknown {form['strategy']!r} (known: {', '.join(known)})"
            )
        search["strategy"] = form["strategy"]
    new.search = build_section(SearchSection, search, "settings.search")
    new.search.validate("settings.search")
    if "signal" in form:
        signals = signal_names()
        if form["signal"] not in signals:
            raise ConfigError(
                f"settings.confidence.signal: unknown {form['signal']!r} (known: {', '.join(signals)})"
            )
        new.confidence = dataclasses.replace(new.confidence, signal=form["signal"])
    return new


def settings_path() -> Path:
    """Where the chat settings of this user are remembered between launches."""

    return data_dir() / SETTINGS_FILE


def save_settings(settings: ChatSettings, path: Path) -> None:
    """Write ``settings`` as JSON, atomically (a crash never leaves half a file)."""

    atomic_write_text(path, json.dumps(settings.to_dict(), indent=1))


def load_settings(path: Path) -> ChatSettings:
    """The remembered settings, or the defaults when the file is absent, damaged or outdated.

    Every section goes through the library's own validation, so a file written by an older
    version (a renamed field, a value no longer allowed) falls back instead of failing later.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ChatSettings()
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.warning("%s: unreadable (%s); using the default settings", path, exc)
        return ChatSettings()
    try:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: not a JSON object")
        defaults = ChatSettings()
        return ChatSettings(
            model=str(data.get("model", defaults.model)),
            task=str(data.get("task", defaults.task)),
            search=build_section(SearchSection, data.get("search", {}), "settings.search"),
            confidence=build_section(ConfidenceSection, data.get("confidence", {}), "settings.confidence"),
            steps=build_section(StepsSection, data.get("steps", {}), "settings.steps"),
        )
    except (ConfigError, TypeError, ValueError) as exc:
        log.warning("%s: %s; using the default settings", path, exc)
        return ChatSettings()
