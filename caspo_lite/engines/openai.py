"""The `openai` engine: whole sampled completions, with top-k logprobs, from a remote endpoint.

Why: a fleet of inference servers (vLLM, llama.cpp's server, SGLang) samples far faster than
one in-process engine. They all speak OpenAI's ``/v1/completions`` and return, per generated
token, the log-probs of the top k tokens — but not the whole next-token distribution. So:

- This engine cannot fork or prune branches mid-path: the `Engine` protocol's session,
  tokenizer and rendering methods raise an `EngineError` saying so. CaT and the other search
  strategies need an in-process engine; what a remote endpoint serves is *sampling*
  (training's sampling stage: N independent solutions per problem).
- Token entropy is only bounded. With the top-k probabilities p_1..p_k and the residual mass
  r = 1 - sum p_i spread over the other V - k tokens:
  lower bound  H_lo = -sum p_i log p_i - r log r       (all of r on one token),
  upper bound  H_hi = H_lo + r log(V - k)              (r spread evenly over V - k tokens).
  The config names which bound the confidence uses (``sample.entropy_bound``); both are kept.
  ``maxprob`` and ``margin`` are exact from the top 2; ``deepconf`` is exact when k >= 20.

Requests run concurrently (``concurrency`` threads), each sample its own request with its own
seed, so N samples of one problem are N parallel requests. Stdlib HTTP only (urllib): no
client dependency, and the same code talks to every server.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from caspo_lite.engines.base import EngineStats
from caspo_lite.errors import ConfigError, EngineError
from caspo_lite.tasks.base import Prompt

ENTROPY_BOUNDS = ("lower", "upper")
_RETRIES = 2


def entropy_bounds(top_logprobs: Sequence[float], n_vocab: int) -> tuple[float, float]:
    """(lower, upper) bounds in nats on the entropy of a distribution known only by its top k.

    ``top_logprobs`` are the log-probs of k distinct tokens; ``n_vocab`` the vocabulary size.
    When the top k already hold all the mass (r = 0) both bounds are the exact entropy.
    """
    probs = [math.exp(lp) for lp in top_logprobs if lp > -math.inf]
    known = -sum(p * math.log(p) for p in probs if p > 0.0)
    r = max(0.0, 1.0 - sum(probs))
    lower = known - r * math.log(r) if r > 0.0 else known
    rest = n_vocab - len(probs)
    upper = lower + r * math.log(rest) if r > 0.0 and rest > 1 else lower
    return lower, upper


def topk_confidence(
    top_logprobs: Sequence[float], signal: str, bound: str, n_vocab: int, deepconf_k: int = 20
) -> float:
    """A token confidence (caspo_lite.confidence's signals) from top-k log-probs only."""
    top = sorted(top_logprobs, reverse=True)
    if not top:
        raise EngineError("a token came back without top logprobs; ask the endpoint for logprobs")
    if signal == "entropy":
        lo, hi = entropy_bounds(top, n_vocab)
        return math.exp(-(lo if bound == "lower" else hi))
    if signal == "maxprob":
        return math.exp(top[0])
    if signal == "margin":
        return math.exp(top[0]) - (math.exp(top[1]) if len(top) > 1 else 0.0)
    if signal == "deepconf":
        if len(top) < deepconf_k:
            raise EngineError(
                f"the deepconf signal needs the top {deepconf_k} logprobs; the endpoint returned {len(top)}"
            )
        return -sum(top[:deepconf_k]) / deepconf_k
    raise ConfigError(f"unknown confidence signal {signal!r}")


@dataclass(frozen=True)
class RemoteToken:
    text: str
    logprob: float
    top_logprobs: tuple[float, ...]  # the endpoint's top-k (the chosen token included when it sent it)
    entropy_lower: float
    entropy_upper: float


@dataclass(frozen=True)
class RemoteCompletion:
    text: str
    tokens: tuple[RemoteToken, ...]
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    engine: str  # which endpoint and model produced it


def parse_completion(choice: dict, n_vocab: int, engine: str) -> RemoteCompletion:
    """One ``choices[i]`` of a /v1/completions response with ``logprobs`` -> a RemoteCompletion."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict) or "tokens" not in lp or "top_logprobs" not in lp:
        raise EngineError(
            f"{engine}: the completion carries no logprobs; the endpoint must support 'logprobs' "
            "on /v1/completions (vLLM, llama.cpp's server and SGLang do)"
        )
    tokens = []
    for text, chosen, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"], strict=False):
        values = tuple(float(v) for v in (top or {}).values())
        if chosen is not None and not values:
            values = (float(chosen),)
        lo, hi = entropy_bounds(values, n_vocab)
        tokens.append(RemoteToken(str(text), float(chosen or 0.0), values, lo, hi))
    finish = choice.get("finish_reason") or "stop"
    return RemoteCompletion(str(choice.get("text", "")), tuple(tokens), finish, engine)


class OpenAIEngine:
    """Samples whole completions from ``base_url``/completions (see module doc)."""

    name = "openai"
    remote = True  # the sampling stage asks for whole completions instead of a decode session

    def __init__(
        self,
        base_url: str,
        model: str,
        n_vocab: int,
        api_key: str | None = None,
        top_logprobs: int = 20,
        concurrency: int = 8,
        timeout_s: float = 300.0,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"sample.endpoint = {base_url!r}: expected an http(s) URL like http://host:8000/v1"
            )
        if n_vocab < 2:
            raise ConfigError(f"openai engine: n_vocab = {n_vocab}; give the served model's vocabulary size")
        if not 1 <= top_logprobs <= 100:
            raise ConfigError(
                f"sample.top_logprobs = {top_logprobs}: must be within 1-100 (servers cap it at 20)"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.n_vocab = n_vocab
        self.api_key = api_key
        self.top_logprobs = top_logprobs
        self.timeout_s = timeout_s
        self.eos_ids: frozenset[int] = frozenset()
        self.stats = EngineStats()
        self.label = f"openai:{model}@{self.base_url}"
        self._pool = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="caspo-openai")

    # -- HTTP --------------------------------------------------------------------------------------

    def _post(self, path: str, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.base_url + path
        data = json.dumps(body).encode()
        for attempt in range(_RETRIES + 1):
            req = urllib.request.Request(url, data=data, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", errors="replace")
                try:
                    detail = json.loads(detail)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    detail = detail[:300]
                if exc.code >= 500 and attempt < _RETRIES:
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise EngineError(f"{url}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt < _RETRIES:
                    time.sleep(0.5 * 2**attempt)
                    continue
                reason = getattr(exc, "reason", exc)
                raise EngineError(
                    f"{url}: cannot reach the endpoint ({reason}); is the server running?"
                ) from None
        raise AssertionError("unreachable")

    # -- sampling ----------------------------------------------------------------------------------

    def complete(
        self,
        prompt: str,
        max_tokens: int,
        temperature: float,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] = (),
    ) -> RemoteCompletion:
        """One sampled completion of ``prompt`` (raw text) with per-token top-k logprobs."""
        body: dict = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "logprobs": self.top_logprobs,
        }
        if seed is not None:
            body["seed"] = int(seed) % (2**31)
        if stop:
            body["stop"] = list(stop)[:4]  # OpenAI's API takes at most 4 stop strings
        out = self._post("/completions", body)
        choices = out.get("choices") or []
        if not choices:
            raise EngineError(f"{self.base_url}/completions answered without choices")
        completion = parse_completion(choices[0], self.n_vocab, self.label)
        self.stats.generated_tokens += len(completion.tokens)
        self.stats.decode_calls += 1
        return completion

    def sample(
        self,
        prompt: str,
        n: int,
        max_tokens: int,
        temperature: float,
        top_p: float = 1.0,
        seed: int = 0,
        stop: Sequence[str] = (),
    ) -> list[RemoteCompletion]:
        """``n`` completions as ``n`` concurrent requests, sample i with seed ``seed + i``."""
        futures = [
            self._pool.submit(self.complete, prompt, max_tokens, temperature, top_p, seed + i, stop)
            for i in range(n)
        ]
        return [f.result() for f in futures]

    # -- the parts of the Engine protocol a remote endpoint cannot serve -------------------------------

    def _local_only(self, what: str) -> EngineError:
        return EngineError(
            f"the openai engine samples whole completions from {self.base_url}; {what} needs an "
            "in-process engine (llama_cpp or hf): search strategies, rollout labels and dev eval run locally"
        )

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        raise self._local_only("tokenizing")

    def token_text(self, token_id: int) -> str:
        raise self._local_only("token ids")

    def detokenize(self, token_ids: Sequence[int]) -> str:
        raise self._local_only("token ids")

    def render(self, prompt: Prompt) -> list[int]:
        raise self._local_only("rendering a prompt to token ids")

    def session(self, n_seqs: int) -> object:
        raise self._local_only("a decode session (forking branches)")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
