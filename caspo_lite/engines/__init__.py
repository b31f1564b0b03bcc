"""Inference engines (llama.cpp batched multi-sequence; transformers for parity/GPU).

`load_engine(ref)` is the one entry point: a model reference (built-in name, .gguf path, HF
dir) becomes an `Engine`; `ENGINES` names the kinds. Model references are resolved by
`caspo_lite.models`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from caspo_lite.engines.base import DecodeSession, Engine, EngineStats
from caspo_lite.engines.hf import HFEngine
from caspo_lite.engines.llama_cpp import LlamaCppEngine
from caspo_lite.errors import ModelError
from caspo_lite.models import gguf_path, resolve_model
from caspo_lite.registry import Registry


def resolve_gguf(ref: str | Path) -> Path:
    """A model reference -> a GGUF file llama.cpp can load (via `caspo_lite.models`).

    An HF folder or hub id that cannot be turned into a GGUF gets the export command in its
    error message.
    """
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


def _llama_cpp(ref: str | Path, n_threads: int | None, n_gpu_layers: int, n_ctx: int, **_: Any) -> Engine:
    return LlamaCppEngine(resolve_gguf(ref), n_ctx=n_ctx, n_threads=n_threads, n_gpu_layers=n_gpu_layers)


def _hf(ref: str | Path, n_threads: int | None, n_gpu_layers: int, n_ctx: int, **kwargs: Any) -> Engine:
    return HFEngine.load(ref, n_threads=n_threads, **kwargs)


ENGINES: Registry[Callable[..., Engine]] = Registry(
    "engine kind", {"llama_cpp": _llama_cpp, "hf": _hf}, ModelError
)
ENGINE_KINDS = ENGINES.names


def load_engine(
    ref: str | Path,
    kind: str = "llama_cpp",
    n_threads: int | None = None,
    n_gpu_layers: int = 0,
    n_ctx: int = 4096,
    **kwargs: Any,
) -> Engine:
    """Load a model reference into an engine of ``kind`` (llama_cpp or hf)."""
    return ENGINES[kind](ref, n_threads=n_threads, n_gpu_layers=n_gpu_layers, n_ctx=n_ctx, **kwargs)


__all__ = ["ENGINES", "ENGINE_KINDS", "DecodeSession", "Engine", "EngineStats", "load_engine", "resolve_gguf"]
