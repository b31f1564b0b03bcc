"""llama.cpp engine: batched multi-sequence decoding with KV forks (docs/design.md §1.6, notes §1.4).

Why the low-level API: the high-level `Llama` context holds one sequence and keeps no logits
unless ``logits_all`` (which costs n_ctx x V floats). Here the model is loaded once and one
context with ``n_seq_max`` sequences and a unified KV cache (``kv_unified``: sequences that
share a prompt share its cells) is reused across sessions:
- the prompt is decoded once into one sequence, branches fork it with `llama_memory_seq_cp`;
- every live branch advances in ONE `llama_decode` per token;
- logits rows are read in place with `llama_get_logits_ith` (views, valid until the next
  decode; the search scores and samples them before decoding again, so nothing is copied);
- a pruned branch's cells are freed with `llama_memory_seq_rm`.
llama.cpp's own log output is silenced with a no-op callback kept alive for the process.
"""

from __future__ import annotations

import ctypes
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from caspo_lite.engines.base import EngineStats, checked_prompt
from caspo_lite.errors import BackendUnavailable, EngineError, ModelError
from caspo_lite.models import check_gguf
from caspo_lite.tasks.base import Prompt

log = logging.getLogger(__name__)
_LOG_CB: Any = None  # the no-op log callback; must outlive every llama.cpp call


def _llama() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise BackendUnavailable(
            "llama-cpp-python is not installed; install it with `pip install llama-cpp-python==0.3.36`"
        ) from None
    global _LOG_CB
    if _LOG_CB is None:
        _LOG_CB = llama_cpp.llama_log_callback(lambda level, text, user_data: None)
        llama_cpp.llama_log_set(_LOG_CB, ctypes.c_void_p(0))
    return llama_cpp


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build can offload layers to a GPU (False when not installed)."""
    try:
        return bool(_llama().llama_supports_gpu_offload())
    except BackendUnavailable:
        return False


def render_chat_template(template: str, messages: Sequence[dict[str, str]], bos: str, eos: str) -> str:
    """Render a model's Jinja chat template the way transformers does (sandboxed)."""
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        return env.from_string(template).render(
            messages=list(messages),
            add_generation_prompt=True,
            bos_token=bos,
            eos_token=eos,
            raise_exception=raise_exception,
        )
    except TemplateError as exc:
        raise ModelError(f"the model's chat template failed to render: {exc}") from None


def default_threads() -> int:
    """All cores (llama-cpp-python's own default, half of them, leaves speed unused).

    ``CASPO_LITE_THREADS`` overrides it: on a box shared with other busy processes llama.cpp's
    spinning worker threads slow down sharply once threads outnumber free cores (measured on
    2 busy cores: 1 thread 17.7 tok/s, 2 threads 0.95 tok/s).
    """
    env = os.environ.get("CASPO_LITE_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


class LlamaCppSession:
    """Several sequences over one context (see module doc). One live session per engine."""

    def __init__(self, engine: LlamaCppEngine, n_seqs: int) -> None:
        self.engine = engine
        self.n_seqs = n_seqs
        self.ctx = engine._context(n_seqs)
        self.pos: dict[int, int] = {}  # seq -> next position
        self.closed = False

    def _put(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        batch = self.engine._batch
        batch.n_tokens = len(entries)
        for i, (tok, pos, seq, out) in enumerate(entries):
            batch.token[i] = tok
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = out

    def _decode(self, n: int) -> None:
        rc = self.engine.ll.llama_decode(self.ctx, self.engine._batch)
        self.engine.stats.decode_calls += 1
        if rc == 1:
            raise EngineError(
                f"context overflow: no KV slot for {n} more tokens (n_ctx={self.engine.n_ctx}); "
                "lower --max-tokens / --beam-width or raise n_ctx"
            )
        if rc != 0:
            raise EngineError(f"llama_decode failed with code {rc}")

    def _row(self, i: int) -> np.ndarray:
        ptr = self.engine.ll.llama_get_logits_ith(self.ctx, i)
        if not ptr:
            raise EngineError(f"no logits for batch row {i}")
        return np.ctypeslib.as_array(ptr, shape=(self.engine.n_vocab,))

    def _check_seq(self, seq: int) -> None:
        if not 0 <= seq < self.n_seqs:
            raise EngineError(f"sequence {seq} out of range: this session holds {self.n_seqs} sequences")

    def prefill(self, token_ids: Sequence[int], seq: int = 0) -> np.ndarray:
        self._check_seq(seq)
        ids = checked_prompt(token_ids, self.engine.n_ctx)
        step = self.engine.n_batch
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            last = start + len(chunk) == len(ids)
            self._put([(t, start + j, seq, last and j == len(chunk) - 1) for j, t in enumerate(chunk)])
            self._decode(len(chunk))
        self.pos[seq] = len(ids)
        self.engine.stats.prompt_tokens += len(ids)
        return self._row(-1)  # the one output of the last chunk

    def fork(self, parent: int, child: int) -> None:
        self._check_seq(child)
        if parent not in self.pos:
            raise EngineError(f"cannot fork sequence {parent}: it holds no tokens")
        mem = self.engine.ll.llama_get_memory(self.ctx)
        if child in self.pos:
            self.engine.ll.llama_memory_seq_rm(mem, child, -1, -1)
        self.engine.ll.llama_memory_seq_cp(mem, parent, child, -1, -1)
        self.pos[child] = self.pos[parent]

    def decode(self, tokens: dict[int, int]) -> dict[int, np.ndarray]:
        if not tokens:
            return {}
        entries = []
        for seq, tok in tokens.items():
            pos = self.pos.get(seq)
            if pos is None:
                raise EngineError(f"sequence {seq} was never prefilled or forked")
            if pos >= self.engine.n_ctx:
                raise EngineError(
                    f"context overflow: sequence {seq} reached n_ctx={self.engine.n_ctx}; lower --max-tokens"
                )
            entries.append((int(tok), pos, seq, True))
        self._put(entries)
        self._decode(len(entries))
        for seq in tokens:
            self.pos[seq] += 1
        self.engine.stats.generated_tokens += len(entries)
        return {seq: self._row(i) for i, seq in enumerate(tokens)}

    def free(self, seq: int) -> None:
        if self.pos.pop(seq, None) is not None:
            self.engine.ll.llama_memory_seq_rm(self.engine.ll.llama_get_memory(self.ctx), seq, -1, -1)

    def close(self) -> None:
        if not self.closed and self.engine._ctx is not None:
            self.engine.ll.llama_memory_clear(self.engine.ll.llama_get_memory(self.ctx), True)
        self.pos.clear()
        self.closed = True


class LlamaCppEngine:
    """Engine protocol over a GGUF file through llama.cpp's C API."""

    name = "llama_cpp"

    def __init__(
        self,
        path: str | os.PathLike[str],
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        n_batch: int = 512,
        flash_attn: bool | None = False,
    ) -> None:
        try:
            self.path = check_gguf(Path(path))
        except (struct.error, ValueError, IndexError, EOFError) as exc:  # a header cut mid-field
            raise ModelError(f"{path} is truncated or corrupt ({exc}); re-export or re-download it") from None
        ll = self.ll = _llama()
        ll.llama_backend_init()
        if n_gpu_layers and not ll.llama_supports_gpu_offload():
            log.warning("this llama.cpp build has no GPU offload; running on the CPU (n_gpu_layers ignored)")
            n_gpu_layers = 0
        self.n_gpu_layers = n_gpu_layers
        mp = ll.llama_model_default_params()
        mp.n_gpu_layers = n_gpu_layers
        self.model = ll.llama_model_load_from_file(str(self.path).encode(), mp)
        if not self.model:
            raise ModelError(
                f"{self.path}: llama.cpp could not load this GGUF (truncated or unsupported); re-export it"
            )
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = int(ll.llama_vocab_n_tokens(self.vocab))
        self.eos_ids = frozenset(t for t in range(self.n_vocab) if ll.llama_vocab_is_eog(self.vocab, t))
        self.n_threads = n_threads or default_threads()
        self.n_ctx_requested = n_ctx
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        # llama-cpp-python's Llama turns flash attention off; None leaves llama.cpp's "auto".
        self.flash_attn_type = {None: -1, False: 0, True: 1}[flash_attn]
        self.stats = EngineStats()
        self._ctx: Any = None
        self._ctx_seqs = 0
        self._batch: Any = None
        self._session: LlamaCppSession | None = None
        self._pieces: dict[int, str] = {}
        self.chat_template = self.metadata("tokenizer.chat_template")
        self.add_bos = bool(ll.llama_vocab_get_add_bos(self.vocab))
        self.bos_text = self._piece(int(ll.llama_vocab_bos(self.vocab)), special=True)
        self.eos_text = self._piece(int(ll.llama_vocab_eos(self.vocab)), special=True)

    # -- vocabulary ------------------------------------------------------------------------------

    def metadata(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(256)
        n = self.ll.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        if n < 0:
            return None
        if n >= len(buf):
            buf = ctypes.create_string_buffer(n + 1)
            self.ll.llama_model_meta_val_str(self.model, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    def tokenize(self, text: str, special: bool = True, add_bos: bool | None = None) -> list[int]:
        raw = text.encode("utf-8")
        add = self.add_bos if add_bos is None else add_bos
        cap = len(raw) + 8
        arr = (self.ll.llama_token * cap)()
        n = self.ll.llama_tokenize(self.vocab, raw, len(raw), arr, cap, add, special)
        if n < 0:
            cap = -n
            arr = (self.ll.llama_token * cap)()
            n = self.ll.llama_tokenize(self.vocab, raw, len(raw), arr, cap, add, special)
        return list(arr[:n])

    def _piece(self, token_id: int, special: bool = False) -> str:
        if token_id < 0:
            return ""
        buf = ctypes.create_string_buffer(64)
        n = self.ll.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.ll.llama_token_to_piece(self.vocab, token_id, buf, len(buf), 0, special)
        return buf.raw[:n].decode("utf-8", errors="replace")

    def token_text(self, token_id: int) -> str:
        piece = self._pieces.get(token_id)
        if piece is None:
            piece = self._pieces[token_id] = self._piece(token_id)
        return piece

    def detokenize(self, token_ids: Sequence[int]) -> str:
        ids = list(token_ids)
        arr = (self.ll.llama_token * max(1, len(ids)))(*ids)
        cap = 8 * len(ids) + 16
        buf = ctypes.create_string_buffer(cap)
        n = self.ll.llama_detokenize(self.vocab, arr, len(ids), buf, cap, True, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self.ll.llama_detokenize(self.vocab, arr, len(ids), buf, -n, True, False)
        return buf.raw[:n].decode("utf-8", errors="replace")

    def render(self, prompt: Prompt) -> list[int]:
        """Raw ``prompt.text`` verbatim, else the model's chat template (GGUF metadata)."""
        if prompt.text is not None:
            return self.tokenize(prompt.text, special=True)
        if not prompt.messages:
            raise EngineError("the prompt has neither text nor messages")
        if self.chat_template:
            text = render_chat_template(self.chat_template, prompt.messages, self.bos_text, self.eos_text)
        else:
            log.warning("%s has no chat template; joining the messages as plain text", self.path.name)
            text = "\n".join(m["content"] for m in prompt.messages) + "\n"
        add_bos = self.add_bos and not (self.bos_text and text.startswith(self.bos_text))
        return self.tokenize(text, special=True, add_bos=add_bos)

    # -- contexts and sessions -------------------------------------------------------------------

    def _context(self, n_seqs: int) -> Any:
        """The shared context, recreated only when more sequences are needed than it holds."""
        if self._session is not None and not self._session.closed:
            self._session.close()
        if self._ctx is not None and n_seqs <= self._ctx_seqs:
            self.ll.llama_memory_clear(self.ll.llama_get_memory(self._ctx), True)
            return self._ctx
        self._free_context()
        ll = self.ll
        cp = ll.llama_context_default_params()
        cp.n_ctx = self.n_ctx_requested
        cp.n_batch = cp.n_ubatch = self.n_batch
        cp.n_seq_max = max(n_seqs, 1)
        cp.kv_unified = True
        cp.n_threads = cp.n_threads_batch = self.n_threads
        cp.no_perf = True
        cp.flash_attn_type = self.flash_attn_type
        ctx = ll.llama_init_from_model(self.model, cp)
        if not ctx:
            raise EngineError(f"llama.cpp could not create a context (n_ctx={cp.n_ctx}, sequences={n_seqs})")
        self._ctx, self._ctx_seqs = ctx, cp.n_seq_max
        self.n_ctx = int(ll.llama_n_ctx(ctx))
        self._batch = ll.llama_batch_init(max(self.n_batch, cp.n_seq_max), 0, 1)
        return ctx

    def session(self, n_seqs: int) -> LlamaCppSession:
        if n_seqs > 256:
            raise EngineError(f"{n_seqs} sequences requested; llama.cpp allows at most 256 per context")
        self._session = LlamaCppSession(self, n_seqs)
        return self._session

    def _free_context(self) -> None:
        if self._batch is not None:
            self.ll.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            self.ll.llama_free(self._ctx)
            self._ctx, self._ctx_seqs = None, 0

    def close(self) -> None:
        self._free_context()
        if getattr(self, "model", None):
            self.ll.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> LlamaCppEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
