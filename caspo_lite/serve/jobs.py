"""One request -> a search job -> a `SearchResult`, with no HTTP in sight.

Building a job (`chat_job`, `completion_job`) validates everything that needs no model: the
strategy and its knobs (through `get_strategy`, the same checks `solve` runs), the limits of
`ServeLimits`, the prompt's size in characters. `execute` runs on a worker's engine: it renders
the prompt, refuses one that cannot fit the context (before any decoding), then runs the
search exactly as `solve` does (`run_search`), polling the job's cancel flag between tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from caspo_lite.config import ConfidenceSection, SearchSection, StepsSection
from caspo_lite.engines.base import Engine
from caspo_lite.errors import CaspoError
from caspo_lite.search import STRATEGY_NAMES, SearchResult, Strategy, get_strategy, run_search
from caspo_lite.search.events import SearchEvent
from caspo_lite.serve.errors import ApiError
from caspo_lite.serve.schemas import ChatRequest, CompletionRequest, ServeLimits, _Common, stop_list
from caspo_lite.solve import question_prompt
from caspo_lite.tasks import get_task
from caspo_lite.tasks.answers import extract_numeric_answer
from caspo_lite.tasks.base import Prompt

ExtractFn = Callable[[str], str | None]


@dataclass
class ServeDefaults:
    """The server's search when a request names none (``serve --strategy/--k ...``)."""

    search: SearchSection = field(default_factory=SearchSection)
    confidence: ConfidenceSection = field(default_factory=ConfidenceSection)
    steps: StepsSection = field(default_factory=StepsSection)


@dataclass
class SearchJob:
    """A validated request, ready for any worker."""

    prompt: Prompt
    extract_answer: ExtractFn
    strategy: Strategy
    strategy_name: str
    k: int
    max_tokens: int
    want_tree: bool = False
    slots: int = 1  # paths the strategy keeps alive at once (each may grow to max_tokens)
    on_event: Callable[[SearchEvent], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    prompt_tokens: int = 0  # set by `execute` once rendered


def _search_of(req: _Common, defaults: ServeDefaults, limits: ServeLimits) -> tuple[str, SearchSection, Any]:
    """The request's strategy name, search section and confidence section, limits checked."""
    o = req.caspo
    if req.n != 1:
        raise ApiError(400, f"n = {req.n}: this server returns one searched answer per request (n = 1)", "n")
    if req.logprobs not in (None, False, 0):
        raise ApiError(400, "logprobs are not returned by a searched answer; omit 'logprobs'", "logprobs")
    name = o.strategy or defaults.search.strategy
    if name not in STRATEGY_NAMES:
        raise ApiError(
            400,
            f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}",
            "caspo.strategy",
            "unknown_strategy",
        )
    given = {
        "k": o.k,
        "branch_factor": o.branch_factor,
        "beam_width": o.beam_width,
        "prune_threshold": o.prune_threshold,
        "prune_percentile": o.prune_percentile,
        "warmup": o.warmup,
        "accept_threshold": o.accept_threshold,
        "selection": o.selection,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "seed": req.seed,
        "max_tokens": req.max_completion_tokens or req.max_tokens,
    }
    search = replace(defaults.search, strategy=name, **{k: v for k, v in given.items() if v is not None})
    if not 1 <= search.k <= limits.max_k:
        raise ApiError(400, f"caspo.k = {search.k} is out of range: 1 to {limits.max_k} paths", "caspo.k")
    if search.beam_width > limits.max_beam_width:
        raise ApiError(
            400,
            f"caspo.beam_width = {search.beam_width} is over this server's limit of {limits.max_beam_width}",
            "caspo.beam_width",
        )
    if not 1 <= search.max_tokens <= limits.max_tokens:
        raise ApiError(
            400, f"max_tokens = {search.max_tokens} is out of range: 1 to {limits.max_tokens}", "max_tokens"
        )
    confidence = replace(
        defaults.confidence,
        **{k: v for k, v in {"signal": o.signal, "path_mode": o.path_mode}.items() if v is not None},
    )
    return name, search, confidence


def live_paths(search: SearchSection) -> int:
    """Most paths a strategy keeps alive at once (the engine session it opens holds that many)."""
    if search.strategy == "greedy":
        return 1
    if search.strategy == "cat":
        return min(search.beam_width, search.k)
    return search.k  # sc, bon: k together; deepconf: at most k


def _strategy(
    name: str, search: SearchSection, confidence: ConfidenceSection, steps: StepsSection
) -> Strategy:
    try:
        return get_strategy(name, search, confidence, steps)
    except CaspoError as exc:  # a bad knob: the message names the field and its range
        raise ApiError(400, str(exc), "caspo") from None


def _check_chars(text: str, limits: ServeLimits, param: str) -> None:
    if len(text) > limits.max_prompt_chars:
        raise ApiError(
            400,
            f"the prompt has {len(text)} characters; this server takes at most {limits.max_prompt_chars}",
            param,
            "context_length_exceeded",
        )


def chat_job(req: ChatRequest, defaults: ServeDefaults, limits: ServeLimits) -> SearchJob:
    """A chat request as a search job.

    Default prompt: the last user message as a question in the few-shot completion prompt that
    `solve` uses (small models follow it far better than a chat instruction, docs/design.md §2.5);
    ``caspo.prompt_style = "chat"`` renders all messages through the model's chat template.
    """
    name, search, confidence = _search_of(req, defaults, limits)
    _check_chars("".join(m.text() for m in req.messages), limits, "messages")
    users = [m for m in req.messages if m.role == "user" and m.text().strip()]
    if not users:
        raise ApiError(400, "messages hold no non-empty user message to answer", "messages")
    style = req.caspo.prompt_style or "fewshot"
    extract: ExtractFn
    if style == "chat":
        messages = tuple({"role": m.role, "content": m.text()} for m in req.messages)
        prompt, extract = Prompt(messages=messages, stop=stop_list(req.stop)), extract_numeric_answer
        if req.caspo.task:
            extract = _task(req.caspo.task, get_task).extract_answer
    else:
        try:
            prompt, extract, _ = question_prompt(users[-1].text(), req.caspo.task)
        except CaspoError as exc:
            raise ApiError(400, str(exc), "caspo.task") from None
        if req.stop:
            prompt = replace(prompt, stop=prompt.stop + stop_list(req.stop))
    strategy = _strategy(name, search, confidence, defaults.steps)
    return SearchJob(
        prompt, extract, strategy, name, search.k, search.max_tokens, req.caspo.tree, live_paths(search)
    )


def completion_job(req: CompletionRequest, defaults: ServeDefaults, limits: ServeLimits) -> SearchJob:
    """A completion request as a search job: the prompt text verbatim, numeric answer extraction."""
    name, search, confidence = _search_of(req, defaults, limits)
    if isinstance(req.prompt, list):
        if len(req.prompt) != 1:
            raise ApiError(
                400, "prompt: send one prompt per request (a list of exactly one string)", "prompt"
            )
        text = req.prompt[0]
    else:
        text = req.prompt
    if not text:
        raise ApiError(400, "prompt is empty", "prompt")
    if req.echo:
        raise ApiError(400, "echo is not supported by a searched completion; omit 'echo'", "echo")
    _check_chars(text, limits, "prompt")
    extract: ExtractFn = extract_numeric_answer
    if req.caspo.task:
        extract = _task(req.caspo.task, get_task).extract_answer
    strategy = _strategy(name, search, confidence, defaults.steps)
    prompt = Prompt(text=text, stop=stop_list(req.stop))
    return SearchJob(
        prompt, extract, strategy, name, search.k, search.max_tokens, req.caspo.tree, live_paths(search)
    )


def _task(name: str, get_task: Callable[..., Any]) -> Any:
    try:
        return get_task(name)
    except CaspoError as exc:
        raise ApiError(400, str(exc), "caspo.task") from None


def check_fits(engine: Engine, job: SearchJob) -> list[int]:
    """Render the prompt; a 400 when prompt + max_tokens cannot fit the engine's context."""
    try:
        ids = engine.render(job.prompt)
    except CaspoError as exc:
        raise ApiError(400, str(exc), "messages") from None
    n_ctx = int(getattr(engine, "n_ctx", 0) or 0)
    if n_ctx and len(ids) + job.max_tokens > n_ctx:
        raise ApiError(
            400,
            f"the prompt is {len(ids)} tokens; with max_tokens = {job.max_tokens} it exceeds this "
            f"model's context of {n_ctx} tokens",
            "messages",
            "context_length_exceeded",
        )
    cells = len(ids) + job.slots * job.max_tokens  # the KV cache is shared: prompt once + each live path
    if n_ctx and cells > n_ctx:
        raise ApiError(
            400,
            f"{job.slots} paths alive at once x max_tokens = {job.max_tokens} + a {len(ids)}-token prompt "
            f"can need {cells} KV cells, more than the context of {n_ctx}; lower caspo.k / "
            "caspo.beam_width / max_tokens (or start the server with a larger --ctx)",
            "caspo.k",
            "context_length_exceeded",
        )
    return ids


def execute(engine: Engine, job: SearchJob, accepted: Callable[[], None] | None = None) -> SearchResult:
    """Run one job on ``engine`` (one worker's): check it fits, signal acceptance, search."""
    job.prompt_tokens = len(check_fits(engine, job))
    if accepted is not None:
        accepted()
    try:
        return run_search(
            engine,
            job.prompt,
            job.strategy,
            job.extract_answer,
            on_event=job.on_event,
            should_stop=job.cancel.is_set,
        )
    except CaspoError as exc:  # e.g. a context overflow mid-search: the request's fault, not the server's
        raise ApiError(400, str(exc), None, "search_failed") from None
