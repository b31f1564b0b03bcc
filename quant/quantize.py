"""Quantize a GGUF file through llama.cpp's C API, and report which type each tensor really got.

Why the C API: the K-quants (q4_k_m, q5_k_m, q6_k) exist only in llama.cpp's C code, and
llama-cpp-python's wheel ships it (`llama_model_quantize`), so no `llama-quantize` binary or
llama.cpp checkout is needed. K-quant blocks are 256 values wide: a tensor whose rows are not a
multiple of 256 (SmolLM2's hidden size is 576) silently falls back to another type, so after
quantizing we read the output's tensor table and summarise the types per tensor group.

Example:
    >>> quantize_file(Path("m-f32.gguf"), Path("m-q4_k_m.gguf"), "q4_k_m")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from caspo_lite.errors import ExportError
from caspo_lite.quant.gguf_header import read_header

log = logging.getLogger(__name__)

# quant name -> llama_cpp ftype constant name; f32/f16 are written by our own writer
FTYPES: dict[str, str] = {
    "f32": "LLAMA_FTYPE_ALL_F32",
    "f16": "LLAMA_FTYPE_MOSTLY_F16",
    "bf16": "LLAMA_FTYPE_MOSTLY_BF16",
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
}
QUANTS = tuple(FTYPES)
WRITTEN_DIRECTLY = ("f32", "f16")


def parse_quants(values: list[str] | tuple[str, ...] | str) -> list[str]:
    """Accept repeated options and comma lists ("f16,q4_k_m"); keep order, drop repeats.

    Raises:
        ExportError: an unknown quant name (the message lists the known ones).
    """
    items = [values] if isinstance(values, str) else list(values)
    out: list[str] = []
    for item in items:
        for name in (p.strip().lower().replace("-", "_") for p in item.split(",")):
            if not name:
                continue
            if name not in FTYPES:
                raise ExportError(f"unknown quant {name!r}; choose from {', '.join(QUANTS)}")
            if name not in out:
                out.append(name)
    if not out:
        raise ExportError(f"no quant given; choose from {', '.join(QUANTS)}")
    return out


def ftype_of(quant: str) -> int:
    """The llama_ftype number of a quant name (from llama_cpp's constants, not hard-coded)."""
    import llama_cpp

    return int(getattr(llama_cpp, FTYPES[quant]))


@contextlib.contextmanager
def quiet_llama() -> Iterator[None]:
    """llama.cpp logs every tensor while quantizing, partly straight to fd 2 (fallback warnings);
    keep that out of the user's terminal unless this module logs at DEBUG. We report the types
    each tensor got ourselves (`types_by_group`)."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    logger = logging.getLogger("llama-cpp-python")
    old = logger.level
    logger.setLevel(logging.ERROR)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        logger.setLevel(old)


def quantize_file(src: Path, dst: Path, quant: str, threads: int | None = None) -> Path:
    """Quantize `src` (an f32/f16 GGUF) into `dst` via a temp file; nothing is left on failure.

    Raises:
        ExportError: llama.cpp returned an error code (the message names both files).
    """
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_of(quant)
    params.nthread = threads or max(1, min(os.cpu_count() or 1, 8))
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    try:
        with quiet_llama():
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), llama_cpp.byref(params))
        if rc != 0 or not tmp.is_file():
            raise ExportError(
                f"llama.cpp could not quantize {src} to {quant} (code {rc}); try another --quant"
            )
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


_BLOCK = re.compile(r"^blk\.\d+\.")


def tensor_group(name: str) -> str:
    """`blk.7.attn_q.weight` -> `attn_q`; `token_embd.weight` -> `token_embd`; biases keep `.bias`."""
    base = _BLOCK.sub("", name)
    return base[: -len(".weight")] if base.endswith(".weight") else base


def types_by_group(path: Path) -> dict[str, dict[str, int]]:
    """{group: {ggml type name: tensor count}} from the file's tensor table (read in milliseconds)."""
    from gguf import GGMLQuantizationType

    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for name, (_, ttype, _) in read_header(path).tensors.items():
        groups[tensor_group(name)][GGMLQuantizationType(ttype).name] += 1
    return {g: dict(c) for g, c in sorted(groups.items())}


def format_groups(groups: dict[str, dict[str, int]]) -> str:
    """`attn_q: Q5_0 x30; ffn_down: Q6_K x15, Q4_K x15; ...` on one line."""
    parts = []
    for group, counts in groups.items():
        kinds = ", ".join(f"{t} x{n}" for t, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        parts.append(f"{group}: {kinds}")
    return "; ".join(parts)
