"""`caspo-lite inspect FILE.gguf`: what a GGUF file holds, read from its header in milliseconds.

Architecture, parameter count, tensor types (counts by type and by tensor group), file size,
context length, whether a chat template is present, the quant type (general.file_type), and the
provenance keys `caspo-lite export` writes (`caspo_lite.*`, general.name / quantized_by).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from caspo_lite.errors import ExportError
from caspo_lite.quant.gguf_header import GGUFFormatError, read_header
from caspo_lite.quant.quantize import types_by_group

PROVENANCE_PREFIXES = ("caspo_lite.",)
PROVENANCE_KEYS = ("general.name", "general.quantized_by", "general.source.url")


def file_type_name(value: int | None) -> str | None:
    """general.file_type number -> name such as MOSTLY_Q4_K_M (gguf's LlamaFileType)."""
    if value is None:
        return None
    from gguf import LlamaFileType

    try:
        return LlamaFileType(int(value)).name
    except ValueError:
        return str(value)


def inspect_gguf(path: str | Path) -> dict[str, Any]:
    """A JSON-ready summary of a GGUF file.

    Raises:
        ExportError: missing, not a GGUF, or truncated (one line naming the file).
    """
    from gguf import GGMLQuantizationType

    path = Path(path).expanduser()
    if not path.is_file():
        raise ExportError(f"GGUF file not found: {path}")
    try:
        header = read_header(path)
    except GGUFFormatError as exc:
        raise ExportError(f"{path} is not a readable GGUF file ({exc})") from None
    meta = header.metadata
    arch = meta.get("general.architecture")
    n_params = 0
    types: Counter[str] = Counter()
    for dims, ttype, _ in header.tensors.values():
        n = 1
        for d in dims:
            n *= d
        n_params += n
        types[GGMLQuantizationType(ttype).name] += 1
    tokens = meta.get("tokenizer.ggml.tokens")
    return {
        "file": str(path),
        "size_bytes": header.file_size,
        "architecture": arch,
        "parameters": n_params,
        "tensors": len(header.tensors),
        "tensor_types": dict(types.most_common()),
        "tensor_groups": types_by_group(path),
        "file_type": file_type_name(meta.get("general.file_type")),
        "context_length": meta.get(f"{arch}.context_length"),
        "embedding_length": meta.get(f"{arch}.embedding_length"),
        "block_count": meta.get(f"{arch}.block_count"),
        "vocab_size": tokens[2] if isinstance(tokens, tuple) else meta.get(f"{arch}.vocab_size"),
        "tokenizer_pre": meta.get("tokenizer.ggml.pre"),
        "chat_template": "tokenizer.chat_template" in meta,
        "provenance": {
            k: v for k, v in meta.items() if k.startswith(PROVENANCE_PREFIXES) or k in PROVENANCE_KEYS
        },
    }


def format_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def format_params(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"
