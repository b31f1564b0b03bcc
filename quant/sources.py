"""Turn an export SOURCE into one HF folder to write, plus what provenance needs.

A SOURCE is a built-in name, an HF folder, a hub id (through `caspo_lite.models`), a PEFT/LoRA
adapter folder (merged into its base, here, into a temp folder), or a training round/run folder
(its `merged/` weights, or its `adapter/` when it has not been merged). The weights are checked
before anything is written (a truncated safetensors file fails here, in one line), and their
sha256 is recorded so a GGUF can be traced back to the exact bytes it came from.

Example:
    >>> with open_source("tiny") as src:  # doctest: +SKIP
    ...     print(src.hf_dir, src.sha256[:12])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite.errors import ExportError, ModelError
from caspo_lite.models import hf_path, resolve_model, smollm2_gguf
from caspo_lite.runs import is_round_dir

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)


@dataclass
class Source:
    """A resolved export source. `hf_dir` may be a temp folder that lives while the context is open."""

    reference: str  # what the user typed
    kind: str  # "builtin", "hf", "hub", "round", "adapter"
    hf_dir: Path
    name: str
    weight_files: list[Path] = field(default_factory=list)  # hashed, in this order
    base: str | None = None  # adapters: the base model reference
    tokenizer_gguf: Path | None = None  # GGUF-born models: copy tokenizer.* from this file
    sha256: str = ""


def sha256_files(files: list[Path], chunk: int = 1 << 20) -> str:
    """One streaming sha256 over the files' bytes in the given order (a single file: its plain sha256)."""
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def check_safetensors(path: Path) -> None:
    """Fail in one line when a safetensors file is cut short or its header is not valid.

    Layout: 8-byte little-endian header length, JSON header with each tensor's data_offsets,
    then the data; the file must hold every tensor's bytes.
    """
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > size - 8:
                raise ValueError(f"header of {n} bytes in a {size}-byte file")
            header = json.loads(fh.read(n))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        raise ExportError(f"{path} is not a valid safetensors file ({exc}); re-save the model") from None
    if 8 + n + end > size:
        raise ExportError(
            f"{path} is truncated: {size} bytes, but its tensors end at byte {8 + n + end}; re-save the model"
        )


def _weights(hf_dir: Path) -> list[Path]:
    files = sorted(hf_dir.glob("*.safetensors"))
    if not (hf_dir / "config.json").is_file():
        raise ExportError(f"{hf_dir} has no config.json; point SOURCE at an HF model folder")
    if not files:
        raise ExportError(f"no *.safetensors in {hf_dir}; save the model with safe_serialization=True")
    for f in files:
        check_safetensors(f)
    return files


def origin_gguf(hf_dir: Path) -> Path | None:
    """The GGUF an HF folder was dequantized from (the SmolLM2 view), whose tokenizer we copy verbatim."""
    try:
        stamp = json.loads((hf_dir / "caspo_view.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

    try:
        gguf = smollm2_gguf()
    except ModelError:
        return None
    return gguf if stamp.get("source") == gguf.name else None


def _source_name(reference: str, kind: str, hf_dir: Path) -> str:
    """File-name stem: the built-in/hub name, the folder name, or RUN-round-N for a round's merged/."""
    if kind in ("builtin", "hub"):
        return reference.replace("/", "-")
    if hf_dir.name == "merged" and hf_dir.parent.name.startswith("round-"):
        return f"{hf_dir.parent.parent.name}-{hf_dir.parent.name}"
    return hf_dir.name


def _hf_source(reference: str, kind: str, hf_dir: Path) -> Source:
    return Source(
        reference=reference,
        kind=kind,
        hf_dir=hf_dir,
        name=_source_name(reference, kind, hf_dir),
        weight_files=_weights(hf_dir),
        tokenizer_gguf=origin_gguf(hf_dir),
    )


def _round_adapter(path: Path) -> Path | None:
    """A round (or run) folder whose adapter was never merged: its adapter folder."""

    rounds = [path] if path.name.startswith("round-") else sorted(path.glob("round-*"), key=lambda p: p.name)
    for r in reversed(rounds):
        if (r / "adapter" / ADAPTER_CONFIG).is_file() and not is_round_dir(r):
            return r / "adapter"
    return None


def merge_dtype(base_cfg: dict[str, Any], keep_f32: bool) -> str:
    """The dtype an adapter is merged in: 16 bit unless an f32 GGUF was asked for.

    Why: an fp32 merge of an 8B base needs ~33 GB of host RAM; 16 bit halves it and loses
    nothing an f16/bf16/quantized GGUF keeps. bf16 when the base is stored in bf16 (its own
    precision, and bf16's range), fp16 otherwise (f16 GGUFs are the usual lossless target, and
    fp16 keeps 3 more mantissa bits than bf16 for an fp32-stored base).
    """
    if keep_f32:
        return "float32"
    stored = str(base_cfg.get("dtype") or base_cfg.get("torch_dtype") or "float32")
    return "bfloat16" if stored == "bfloat16" else "float16"


def _merge_adapter(
    adapter_dir: Path, base_ref: str, out_dir: Path, keep_f32: bool = False
) -> tuple[Path, list[Path]]:
    """Merge a LoRA adapter into an unquantized 16-bit (or fp32) copy of its base; save it as an HF folder.

    A QLoRA adapter was trained on a 4-bit base, but its LoRA weights apply to the same linear
    layers; merging into the unquantized base is the intended export path. A base that is
    itself stored quantized (bitsandbytes) cannot be dequantized here, so it is refused.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        base_dir = hf_path(base_ref)
    except ModelError as exc:
        raise ExportError(
            f"adapter {adapter_dir}: cannot resolve its base model {base_ref!r} ({exc}); pass --base"
        ) from None
    base_files = _weights(base_dir)
    base_cfg = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    if base_cfg.get("quantization_config"):
        raise ExportError(
            f"the adapter's base {base_dir} is stored quantized; pass --base with the unquantized base model"
        )
    adapter_files = [adapter_dir / n for n in ADAPTER_WEIGHTS if (adapter_dir / n).is_file()]
    if not adapter_files:
        raise ExportError(f"adapter {adapter_dir} has no {' or '.join(ADAPTER_WEIGHTS)}")
    for f in adapter_files:
        if f.suffix == ".safetensors":
            check_safetensors(f)
    from peft import PeftModel

    dtype = merge_dtype(base_cfg, keep_f32)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=getattr(torch, dtype))
    try:
        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except (ValueError, RuntimeError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"cannot apply adapter {adapter_dir} to {base_dir}: {first}") from None
    model.save_pretrained(out_dir)
    tok_dir = adapter_dir if (adapter_dir / "tokenizer.json").is_file() else base_dir
    AutoTokenizer.from_pretrained(tok_dir).save_pretrained(out_dir)
    for name in TOKENIZER_FILES:  # keep the source's own files (chat template) where it has them
        if (tok_dir / name).is_file():
            shutil.copyfile(tok_dir / name, out_dir / name)
    return base_dir, adapter_files + base_files


def _adapter_source(
    reference: str, adapter_dir: Path, base: str | None, work: Path, keep_f32: bool = False
) -> Source:
    try:
        cfg = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ExportError(f"{adapter_dir / ADAPTER_CONFIG} is not valid JSON ({exc})") from None
    base_ref = base or cfg.get("base_model_name_or_path")
    if not base_ref:
        raise ExportError(
            f"adapter {adapter_dir} does not name its base model (base_model_name_or_path); pass --base"
        )
    merged = work / "merged"
    base_dir, files = _merge_adapter(adapter_dir, str(base_ref), merged, keep_f32)
    log.info("merged adapter %s into %s", adapter_dir, base_dir)
    return Source(
        reference=reference,
        kind="adapter",
        hf_dir=merged,
        name=adapter_dir.parent.name if adapter_dir.name == "adapter" else adapter_dir.name,
        weight_files=files,
        base=str(base_ref),
        tokenizer_gguf=origin_gguf(base_dir),
    )


@contextlib.contextmanager
def open_source(reference: str | Path, base: str | None = None, keep_f32: bool = False) -> Iterator[Source]:
    """Resolve `reference` to an HF folder (merging an adapter into a temp folder if needed).

    ``keep_f32``: merge an adapter in fp32 (an f32 GGUF was asked for); otherwise in 16 bit.

    Raises:
        ExportError / ModelError: one line naming the file and the fix.
    """
    text = str(reference)
    path = Path(text).expanduser()
    if path.exists():  # provenance names folders absolutely
        text = str(path.resolve())
    if path.suffix.lower() == ".gguf":
        raise ExportError(f"{path} is already a GGUF file; export an HF folder, adapter or built-in name")
    with tempfile.TemporaryDirectory(prefix="caspo-export-") as tmp:
        adapter = None
        if path.is_dir() and (path / ADAPTER_CONFIG).is_file():
            adapter = path
        elif path.is_dir() and not (path / "config.json").is_file():
            adapter = _round_adapter(path)
        if adapter is not None:
            src = _adapter_source(text, adapter, base, Path(tmp), keep_f32)
        else:
            ref = resolve_model(text)
            if ref.kind == "gguf":
                raise ExportError(f"{path} is already a GGUF file")
            src = _hf_source(text, ref.kind, hf_path(ref))
        src.sha256 = sha256_files(src.weight_files)
        yield src


def read_config(hf_dir: Path) -> dict[str, Any]:
    """config.json as a dict (one-line ExportError when missing or not JSON)."""
    try:
        return json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{hf_dir / 'config.json'} is missing; an HF model folder needs it") from None
    except ValueError as exc:
        raise ExportError(f"{hf_dir / 'config.json'} is not valid JSON ({exc})") from None
