"""transformers engine: the same session protocol, for parity checks and GPU sampling.

Simple and correct over fast: each sequence keeps its own KV cache (``past_key_values``);
a fork deep-copies the parent's cache; ``decode`` runs one forward per sequence. The
llama.cpp engine is the fast path on CPU; this one proves it computes the same thing and
samples on a GPU when the model is not exported.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from caspo_lite.engines.base import EngineStats, checked_prompt
from caspo_lite.errors import BackendUnavailable, EngineError, ModelError
from caspo_lite.tasks.base import Prompt

log = logging.getLogger(__name__)


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise BackendUnavailable(
            "the hf engine needs torch and transformers: pip install 'caspo-lite[train]'"
        ) from None
    return torch


class HFSession:
    def __init__(self, engine: HFEngine, n_seqs: int) -> None:
        self.engine = engine
        self.n_seqs = n_seqs
        self.caches: dict[int, Any] = {}
        self.lengths: dict[int, int] = {}

    def _forward(self, ids: list[int], cache: Any) -> tuple[np.ndarray, Any]:
        torch = _torch()
        e = self.engine
        with torch.inference_mode():
            inp = torch.tensor([ids], dtype=torch.long, device=e.device)
            kw = {e.cache_arg: cache} if cache is not None else {}
            out = e.model(input_ids=inp, use_cache=True, logits_to_keep=1, **kw)
        row = out.logits[0, -1].float().cpu().numpy()
        return row, getattr(out, e.cache_arg)

    def prefill(self, token_ids: Sequence[int], seq: int = 0) -> np.ndarray:
        ids = checked_prompt(token_ids, self.engine.n_ctx)
        row, cache = self._forward(ids, None)
        self.caches[seq], self.lengths[seq] = cache, len(ids)
        self.engine.stats.prompt_tokens += len(ids)
        self.engine.stats.decode_calls += 1
        return row

    def fork(self, parent: int, child: int) -> None:
        if parent not in self.caches:
            raise EngineError(f"cannot fork sequence {parent}: it holds no tokens")
        self.caches[child] = copy.deepcopy(self.caches[parent])
        self.lengths[child] = self.lengths[parent]

    def decode(self, tokens: dict[int, int]) -> dict[int, np.ndarray]:
        out: dict[int, np.ndarray] = {}
        for seq, tok in tokens.items():
            if seq not in self.caches:
                raise EngineError(f"sequence {seq} was never prefilled or forked")
            if self.lengths[seq] >= self.engine.n_ctx:
                raise EngineError(f"context overflow: sequence {seq} reached n_ctx={self.engine.n_ctx}")
            out[seq], self.caches[seq] = self._forward([int(tok)], self.caches[seq])
            self.lengths[seq] += 1
        self.engine.stats.generated_tokens += len(tokens)
        self.engine.stats.decode_calls += 1
        return out

    def free(self, seq: int) -> None:
        self.caches.pop(seq, None)
        self.lengths.pop(seq, None)

    def close(self) -> None:
        self.caches.clear()
        self.lengths.clear()


class HFEngine:
    """Engine protocol over a transformers causal LM and its tokenizer."""

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu", n_ctx: int = 4096) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self.n_ctx = n_ctx
        self.n_vocab = int(model.get_output_embeddings().weight.shape[0])
        eos = tokenizer.eos_token_id
        eos_list = eos if isinstance(eos, list) else [eos]
        gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if gen_eos is not None:
            eos_list += gen_eos if isinstance(gen_eos, list) else [gen_eos]
        self.eos_ids = frozenset(int(t) for t in eos_list if t is not None)
        self.stats = EngineStats()
        self._pieces: dict[int, str] = {}
        # transformers 5.x renamed past_key_values to cache (the old name warns); use what exists.
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    @classmethod
    def load(
        cls,
        ref: str | Path,
        n_threads: int | None = None,
        device: str | None = None,
        gguf_file: str | None = None,
    ) -> HFEngine:
        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if n_threads:
            torch.set_num_threads(n_threads)
        path = Path(str(ref)).expanduser()
        if path.suffix == ".gguf":
            path, gguf_file = path.parent, path.name
        if not path.exists():
            raise ModelError(
                f"{ref}: not a local model directory or .gguf file (the hf engine works offline)"
            )
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            tok = AutoTokenizer.from_pretrained(path, **kw)
            model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, **kw).to(device)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{ref}: transformers could not load it ({str(exc).splitlines()[0]})") from None
        return cls(model, tok, device)

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def token_text(self, token_id: int) -> str:
        piece = self._pieces.get(token_id)
        if piece is None:
            piece = self._pieces[token_id] = self.tokenizer.decode([token_id])
        return piece

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=True)

    def render(self, prompt: Prompt) -> list[int]:
        if prompt.text is not None:
            return self.tokenize(prompt.text)
        if not prompt.messages:
            raise EngineError("the prompt has neither text nor messages")
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                list(prompt.messages), tokenize=False, add_generation_prompt=True
            )
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self.tokenize("\n".join(m["content"] for m in prompt.messages) + "\n")

    def session(self, n_seqs: int) -> HFSession:
        return HFSession(self, n_seqs)

    def close(self) -> None:
        pass
