"""Inference engines (llama.cpp batched multi-sequence; transformers for parity/GPU).

`load_engine(ref)` is the one entry point: a model reference (built-in name, .gguf path, HF
dir) becomes an `Engine`. Model references are resolved by `caspo_lite.models` when present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from caspo_lite.engines.base import DecodeSession, Engine, EngineStats
from caspo_lite.errors import ModelError

ENGINE_KINDS = ("llama_cpp", "hf")


def resolve_gguf(ref: str | Path) -> Path:
    """A model reference -> a GGUF file llama.cpp can load (via `caspo_lite.models`).

    An HF folder or hub id that cannot be turned into a GGUF gets the export command in its
    error message.
    """
    from caspo_lite.models import gguf_path, resolve_model

    mref = resolve_model(ref)
    try:
        return Path(gguf_path(mref))
    except ModelError as exc:
        if mref.kind in ("hf", "hub"):
            raise ModelError(
                f"{exc}; or export a GGUF yourself: caspo-lite export {ref} --quant f16"
            ) from None
        raise
    except ImportError as exc:
        raise ModelError(
            f"{ref} has no GGUF and the exporter is unavailable ({exc}); "
            f"export one with: caspo-lite export {ref} --quant f16"
        ) from None


def load_engine(
    ref: str | Path,
    kind: str = "llama_cpp",
    n_threads: int | None = None,
    n_gpu_layers: int = 0,
    n_ctx: int = 4096,
    **kwargs: Any,
) -> Engine:
    """Load a model reference into an engine of ``kind`` (llama_cpp or hf)."""
    if kind == "llama_cpp":
        from caspo_lite.engines.llama_cpp import LlamaCppEngine

        return LlamaCppEngine(resolve_gguf(ref), n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers)
    if kind == "hf":
        from caspo_lite.engines.hf import HFEngine

        return HFEngine.load(ref, n_threads=n_threads, **kwargs)
    raise ModelError(f"unknown engine kind {kind!r}; choose one of {', '.join(ENGINE_KINDS)}")


__all__ = ["ENGINE_KINDS", "DecodeSession", "Engine", "EngineStats", "load_engine", "resolve_gguf"]
