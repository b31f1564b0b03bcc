"""Request bodies of the OpenAI-compatible routes, the ``caspo`` extension and the server limits.

The standard fields follow OpenAI's API (unknown standard fields are ignored, as OpenAI's own
clients send fields a server may not know). The search is picked in one extension object,
``caspo``, which the `openai` Python client sends with ``extra_body={"caspo": {...}}``; its keys
are checked strictly, so a typo is a 400 naming the field instead of a silently default search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from caspo_lite.confidence import SIGNALS
from caspo_lite.search import STRATEGIES


class CaspoOptions(BaseModel):
    """The search a request asks for; every field falls back to the server's default."""

    model_config = ConfigDict(extra="forbid")

    strategy: str | None = Field(None, description=f"Search strategy: {STRATEGIES.choices()}.")
    k: int | None = Field(None, description="Budget: paths started.")
    branch_factor: int | None = Field(None, description="CaT: children per fork.")
    beam_width: int | None = Field(None, description="CaT: most paths alive at once.")
    prune_threshold: float | None = Field(None, description="CaT: absolute prune threshold; < 0 = warm-up.")
    prune_percentile: float | None = Field(None, description="CaT/DeepConf: warm-up percentile (0-100).")
    warmup: int | None = Field(None, description="CaT/DeepConf: warm-up steps that calibrate the threshold.")
    accept_threshold: float | None = Field(None, description="CaT: stop once a path reaches this confidence.")
    selection: Literal["max", "vote"] | None = Field(None, description="CaT: max path confidence or vote.")
    signal: str | None = Field(None, description=f"Token confidence: {', '.join(SIGNALS)}.")
    path_mode: str | None = Field(None, description="Path confidence: geomean, min, tail.")
    task: str | None = Field(None, description="Prompt and grade as this task (e.g. arith, gsm8k).")
    prompt_style: Literal["fewshot", "chat"] | None = Field(
        None, description="chat route: few-shot completion prompt (default) or the model's chat template."
    )
    tree: bool = Field(False, description="Return the reasoning tree in caspo.tree.")
    progress: bool = Field(True, description="Streaming: send a progress chunk at each step boundary.")


class StreamOptions(BaseModel):
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: Any = None
    caspo: CaspoOptions = Field(default_factory=CaspoOptions)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message text; OpenAI's content-part lists are joined over their text parts."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type", "text") == "text")


class ChatRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    stop: str | list[str] | None = None


class CompletionRequest(_Common):
    prompt: str | list[str]
    stop: str | list[str] | None = None
    echo: bool = False


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for; beyond these it gets a 400 naming the field.

    Why limits: one request with K = 10^6 or a 50k-token prompt would hold a worker for hours
    (or overflow the context); a shared server refuses it up front instead.
    """

    max_k: int = 64
    max_beam_width: int = 32
    max_tokens: int = 1024
    max_prompt_chars: int = 32_000
    queue_size: int = 16
    stream_timeout_s: float = 600.0


def stop_list(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(s for s in stop if s)
