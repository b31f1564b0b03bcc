"""transformers engine: the same session protocol, for parity checks and GPU sampling.

Batched: all sequences a `decode` call advances go through ONE forward, over one left-padded
KV cache (the same layout ``generate`` uses for a padded batch: a 2-D attention mask with
zeros on the padding, explicit per-row ``position_ids``). A fork shares the parent's KV
tensors (transformers' dynamic cache appends by concatenation, never in place, so a shared
tensor is never written); the batch is re-packed only when the set of sequences a call
advances changes (a fork, a free, a finished branch). On a GPU the weights load in bf16
(fp16 on cards without native bf16) with ``device_map``; on CPU in fp32, which keeps exact
parity with llama.cpp on an f32 GGUF.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from caspo_lite.backend import free_accelerator_memory, half_dtype
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


Kv = list[tuple[Any, Any]]  # per layer (keys, values), each [1, kv_heads, length, head_dim]


class HFSession:
    """Sequences of one prompt; those a `decode` call advances form one padded batch.

    ``store`` holds the KV of sequences outside the current batch; ``batch`` (seq ids in row
    order) with ``cache`` and ``mask`` the packed ones.
    """

    def __init__(self, engine: HFEngine, n_seqs: int) -> None:
        self.engine = engine
        self.n_seqs = n_seqs
        self.store: dict[int, Kv] = {}
        self.lengths: dict[int, int] = {}
        self.batch: list[int] = []
        self.cache: Any = None
        self.mask: Any = None  # [B, T] long, 0 on left padding; None when no row is padded

    @property
    def caches(self) -> dict[int, int]:
        """Sequences that hold tokens, with their lengths (what tests and callers inspect)."""
        return dict(self.lengths)

    def prefill(self, token_ids: Sequence[int], seq: int = 0) -> np.ndarray:
        torch = _torch()
        ids = checked_prompt(token_ids, self.engine.n_ctx)
        self.free(seq)
        e = self.engine
        with torch.inference_mode():
            inp = torch.tensor([ids], dtype=torch.long, device=e.device)
            out = e.model(input_ids=inp, use_cache=True, logits_to_keep=1)
        cache = getattr(out, e.cache_arg)
        self.store[seq] = [(layer.keys, layer.values) for layer in cache.layers]
        self.lengths[seq] = len(ids)
        e.stats.prompt_tokens += len(ids)
        e.stats.decode_calls += 1
        return out.logits[0, -1].float().cpu().numpy()

    def fork(self, parent: int, child: int) -> None:
        if parent not in self.lengths:
            raise EngineError(f"cannot fork sequence {parent}: it holds no tokens")
        self.free(child)
        self.store[child] = self._kv_of(parent)  # shared tensors: nothing is written in place
        self.lengths[child] = self.lengths[parent]

    def decode(self, tokens: dict[int, int]) -> dict[int, np.ndarray]:
        torch = _torch()
        e = self.engine
        if not tokens:
            return {}
        for seq in tokens:
            if seq not in self.lengths:
                raise EngineError(f"sequence {seq} was never prefilled or forked")
            if self.lengths[seq] >= e.n_ctx:
                raise EngineError(f"context overflow: sequence {seq} reached n_ctx={e.n_ctx}")
        if set(tokens) != set(self.batch):
            self._pack(list(tokens))
        with torch.inference_mode():
            inp = torch.tensor([[int(tokens[s])] for s in self.batch], dtype=torch.long, device=e.device)
            pos = torch.tensor([[self.lengths[s]] for s in self.batch], dtype=torch.long, device=e.device)
            kw: dict[str, Any] = {"position_ids": pos, e.cache_arg: self.cache}
            if self.mask is not None:
                self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.batch), 1))], dim=1)
                kw["attention_mask"] = self.mask
            out = e.model(input_ids=inp, use_cache=True, logits_to_keep=1, **kw)
            rows = out.logits[:, -1].float().cpu().numpy()
        self.cache = getattr(out, e.cache_arg)
        for s in self.batch:
            self.lengths[s] += 1
        e.stats.generated_tokens += len(tokens)
        e.stats.decode_calls += 1
        return {s: rows[i] for i, s in enumerate(self.batch)}

    def free(self, seq: int) -> None:
        if seq in self.batch:
            self._unpack()
        self.store.pop(seq, None)
        self.lengths.pop(seq, None)

    def close(self) -> None:
        self.store.clear()
        self.lengths.clear()
        self.batch, self.cache, self.mask = [], None, None

    # --- packing ---------------------------------------------------------------------------------

    def _kv_of(self, seq: int) -> Kv:
        """One sequence's KV without padding (a view into the batch when it is packed)."""
        if seq in self.store:
            return self.store[seq]
        row, length = self.batch.index(seq), self.lengths[seq]
        return [
            (layer.keys[row : row + 1, :, -length:], layer.values[row : row + 1, :, -length:])
            for layer in self.cache.layers
        ]

    def _unpack(self) -> None:
        """Move every packed sequence back to ``store`` (copies: the batch tensors can go)."""
        for seq in self.batch:
            self.store[seq] = [(k.clone(), v.clone()) for k, v in self._kv_of(seq)]
        self.batch, self.cache, self.mask = [], None, None

    def _pack(self, seqs: list[int]) -> None:
        """Left-pad the KV of ``seqs`` to a common length and stack it into one batch cache."""
        torch = _torch()
        from transformers import DynamicCache

        self._unpack()
        kvs = [self.store.pop(s) for s in seqs]
        lengths = [self.lengths[s] for s in seqs]
        width = max(lengths)
        layers = []
        for li in range(len(kvs[0])):
            k0, v0 = kvs[0][li]
            keys = k0.new_zeros((len(seqs), k0.shape[1], width, k0.shape[3]))
            values = v0.new_zeros((len(seqs), v0.shape[1], width, v0.shape[3]))
            for row, (kv, n) in enumerate(zip(kvs, lengths, strict=True)):
                keys[row, :, width - n :] = kv[li][0][0]
                values[row, :, width - n :] = kv[li][1][0]
            layers.append((keys, values))
        self.cache = DynamicCache(ddp_cache_data=layers)
        self.batch = seqs
        self.mask = None
        if min(lengths) < width:
            pad = torch.tensor([[width - n] for n in lengths], device=self.engine.device)
            self.mask = (torch.arange(width, device=self.engine.device)[None, :] >= pad).long()


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
        text_cfg = model.config.get_text_config()
        kinds = set(getattr(text_cfg, "layer_types", None) or ["full_attention"])
        if kinds != {"full_attention"} or getattr(text_cfg, "use_sliding_window", False):
            raise EngineError(
                f"the hf engine packs full-attention KV caches only, and this model has {sorted(kinds)} "
                "layers (sliding window); sample with llama.cpp: --set sample.engine=llama_cpp"
            )

    @classmethod
    def load(
        cls,
        ref: str | Path,
        n_threads: int | None = None,
        device: str | None = None,
        gguf_file: str | None = None,
        dtype: Any = None,
    ) -> HFEngine:
        """Load an HF folder (or a .gguf through transformers' reader).

        ``dtype`` defaults to fp32 on CPU/MPS and to the card's 16-bit type on CUDA (bf16 where
        native, else fp16): fp32 would put Qwen3-8B at 32.8 GB, over a 24 GB card.
        """
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
        if dtype is None:
            dtype = half_dtype() if device.startswith("cuda") else torch.float32
        kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        placement = {"device_map": device} if device.startswith("cuda") else {}
        try:
            tok = AutoTokenizer.from_pretrained(path, **kw)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **placement, **kw)
            if not placement:
                model = model.to(device)
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
        """Drop the weights and hand their memory back (the DPO process needs the card next)."""
        self.model = None
        free_accelerator_memory()
