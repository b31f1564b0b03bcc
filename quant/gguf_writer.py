"""Write an HF causal-LM folder (config.json + safetensors + tokenizer.json) as a GGUF file.

Why our own writer: llama.cpp's `convert_hf_to_gguf.py` ships only in its source tree (not in
the llama-cpp-python wheel) and refuses tokenizers it has not seen (it hashes their output),
which is every tokenizer we train. This module uses the `gguf` package's `GGUFWriter` and
tensor-name maps directly; no code is taken from the converter.

One `ArchSpec` per HF architecture says what differs between them (GGUF arch, whether q/k
need the RoPE permute, the default pre-tokenizer name). Adding an architecture is an entry in
`ARCHS` plus, if it has extra header keys, a branch in `_add_hparams`. f32 and f16 are written
here; quantization is a second step (llama.cpp's C API) on the f32/f16 file.

Example:
    >>> write_gguf(Path("tiny/hf"), Path("tiny/model-f32.gguf"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caspo_lite.errors import ExportError

log = logging.getLogger(__name__)

DTYPES = ("f32", "f16")


@dataclass(frozen=True)
class ArchSpec:
    """What the writer needs to know about one HF architecture."""

    gguf_arch: str  # name in gguf.MODEL_ARCH_NAMES, e.g. "llama"
    permute_qk: bool  # HF rotate-half RoPE layout -> GGML interleaved (llama.cpp's LLAMA uses NORM rope)
    default_pre: str  # tokenizer.ggml.pre when the tokenizer's pre-tokenizer is the GPT-2 regex


# Qwen2/Qwen3 (NEOX rope: no permute; q/k biases or q/k norms) are left to the quant module's extension.
ARCHS: dict[str, ArchSpec] = {
    "LlamaForCausalLM": ArchSpec(gguf_arch="llama", permute_qk=True, default_pre="gpt-2"),
    # NEOX rope in llama.cpp: no permute. Qwen2 adds q/k/v biases, Qwen3 q_norm/k_norm (both map by name).
    # transformers' Qwen2Tokenizer splits digits one by one whatever tokenizer.json says -> pre "qwen2".
    "Qwen2ForCausalLM": ArchSpec(gguf_arch="qwen2", permute_qk=False, default_pre="qwen2"),
    "Qwen3ForCausalLM": ArchSpec(gguf_arch="qwen3", permute_qk=False, default_pre="qwen2"),
}


@dataclass(frozen=True)
class TokenizerMeta:
    """The tokenizer as llama.cpp's "gpt2" (byte-level BPE) vocabulary wants it."""

    tokens: list[str]  # id order
    token_types: list[int]  # gguf.TokenType values
    merges: list[str]  # "a b", rank order
    pre: str
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    chat_template: str | None


def permute_for_rope(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder q/k projection rows from HF's rotate-half RoPE layout to GGML's pairwise layout.

    HF splits each head's rows into two halves [x0..x_{d/2}, y0..y_{d/2}] rotated together;
    GGML rotates adjacent pairs (x0, y0, x1, y1, ...). Same weights, rows interleaved per head.
    weight: (n_head * head_dim, n_in) -> same shape.
    """
    rows, cols = weight.shape[0], weight.shape[1:]
    if rows % (2 * n_head):
        raise ExportError(f"cannot permute a q/k weight of {rows} rows for {n_head} heads (not 2*n_head*k)")
    return weight.reshape(n_head, 2, rows // n_head // 2, *cols).swapaxes(1, 2).reshape(weight.shape)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path} is missing; an HF model folder needs it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path} is not valid JSON ({exc}); re-save the model folder") from None


def _special_id(value: Any, vocab: dict[str, int]) -> int | None:
    """tokenizer_config.json names special tokens as a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return vocab.get(value) if isinstance(value, str) else None


def detect_pre(tokenizer_json: dict[str, Any], spec: ArchSpec) -> str:
    """Name llama.cpp's pre-tokenizer that splits text as the HF tokenizer does.

    We only recognise the GPT-2 regex ByteLevel pre-tokenizer (what our tiny tokenizers use);
    anything else needs an explicit `pre=` so we never write a silently mismatched GGUF.
    """
    pre = tokenizer_json.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return spec.default_pre
    raise ExportError(
        f"unknown pre-tokenizer {pre.get('type')!r} in tokenizer.json; pass pre= (a llama.cpp "
        "tokenizer.ggml.pre name such as 'gpt-2', 'qwen2', 'smollm') that splits text the same way"
    )


def read_tokenizer(hf_dir: Path, vocab_size: int, spec: ArchSpec, pre: str | None = None) -> TokenizerMeta:
    """Collect tokens, types, merges, special ids and chat template from an HF folder."""
    import gguf

    tok = _read_json(hf_dir / "tokenizer.json")
    model = tok.get("model") or {}
    if model.get("type") != "BPE":
        raise ExportError(f"{hf_dir / 'tokenizer.json'}: model type {model.get('type')!r} is not BPE")
    vocab: dict[str, int] = dict(model["vocab"])
    special: dict[int, bool] = {}
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        special[added["id"]] = bool(added.get("special"))
    by_id = {i: t for t, i in vocab.items()}
    n = max(vocab_size, max(by_id) + 1)
    tokens, types = [], []
    for i in range(n):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in special:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if special[i] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    cfg_path = hf_dir / "tokenizer_config.json"
    tcfg = _read_json(cfg_path) if cfg_path.exists() else {}
    template_file = hf_dir / "chat_template.jinja"
    template = (
        template_file.read_text(encoding="utf-8") if template_file.exists() else tcfg.get("chat_template")
    )
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}]
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return TokenizerMeta(
        tokens=tokens,
        token_types=[int(t) for t in types],
        merges=merges,
        pre=pre or detect_pre(tok, spec),
        bos_id=_special_id(tcfg.get("bos_token"), vocab),
        eos_id=_special_id(tcfg.get("eos_token"), vocab),
        pad_id=_special_id(tcfg.get("pad_token"), vocab),
        chat_template=template,
    )


def iter_hf_tensors(hf_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (HF name, float32 array) from every *.safetensors file, in sorted file/name order."""
    from safetensors import safe_open

    files = sorted(hf_dir.glob("*.safetensors"))
    if not files:
        raise ExportError(f"no *.safetensors in {hf_dir}; save the model with safe_serialization=True")
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            for name in sorted(fh.keys()):
                yield name, fh.get_tensor(name).float().numpy()


def _rope_theta(cfg: dict[str, Any]) -> float:
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if kind != "default":
        raise ExportError(f"RoPE type {kind!r} is not supported by the GGUF writer yet (only 'default')")
    return float(params.get("rope_theta") or cfg.get("rope_theta") or 10000.0)


def _add_hparams(writer: Any, cfg: dict[str, Any], dtype: str) -> None:
    import gguf

    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    writer.add_context_length(cfg.get("max_position_embeddings", 2048))
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(cfg.get("num_key_value_heads", n_head))
    writer.add_rope_dimension_count(head_dim)
    if head_dim * n_head != cfg["hidden_size"]:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_freq_base(_rope_theta(cfg))
    writer.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    writer.add_vocab_size(cfg["vocab_size"])
    ftype = gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(ftype)


def _add_tokenizer(writer: Any, meta: TokenizerMeta) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(meta.pre)
    writer.add_token_list(meta.tokens)
    writer.add_token_types(meta.token_types)
    writer.add_token_merges(meta.merges)
    if meta.bos_id is not None:
        writer.add_bos_token_id(meta.bos_id)
    if meta.eos_id is not None:
        writer.add_eos_token_id(meta.eos_id)
    if meta.pad_id is not None:
        writer.add_pad_token_id(meta.pad_id)
    writer.add_add_bos_token(False)  # our chat templates carry their own special tokens
    if meta.chat_template:
        writer.add_chat_template(meta.chat_template)


def _gguf_tensors(
    hf_dir: Path, cfg: dict[str, Any], spec: ArchSpec, dtype: str
) -> Iterator[tuple[str, np.ndarray]]:
    """Map HF tensor names to GGUF names, permute q/k where the arch needs it, cast to dtype."""
    import gguf

    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == spec.gguf_arch)
    names = gguf.get_tensor_name_map(arch, cfg["num_hidden_layers"])
    n_head = cfg["num_attention_heads"]
    n_head_kv = cfg.get("num_key_value_heads", n_head)
    tied = bool(cfg.get("tie_word_embeddings"))
    for hf_name, data in iter_hf_tensors(hf_dir):
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise ExportError(f"{hf_dir}: tensor {hf_name!r} has no GGUF name for arch {spec.gguf_arch!r}")
        if spec.permute_qk and hf_name.endswith("q_proj.weight"):
            data = permute_for_rope(data, n_head)
        elif spec.permute_qk and hf_name.endswith("k_proj.weight"):
            data = permute_for_rope(data, n_head_kv)
        if dtype == "f16" and data.ndim > 1:  # norms and biases stay f32, as llama.cpp expects
            data = data.astype(np.float16)
        yield name, np.ascontiguousarray(data)


def write_gguf(hf_dir: Path, out_path: Path, dtype: str = "f32", pre: str | None = None) -> Path:
    """Write `hf_dir` as a GGUF file at `out_path` (temp file + rename: never half-written).

    Args:
        hf_dir: folder with config.json, *.safetensors, tokenizer.json (+ tokenizer_config.json,
            chat_template.jinja).
        out_path: the .gguf file to create (parents are created).
        dtype: "f32" (exact parity with transformers) or "f16" (half the size; 1-D tensors stay f32).
        pre: llama.cpp pre-tokenizer name; detected from tokenizer.json when None.
    Returns:
        out_path.
    Raises:
        ExportError: unsupported architecture/RoPE/tokenizer, missing files, unknown tensors.
    """
    import gguf

    hf_dir, out_path = Path(hf_dir), Path(out_path)
    if dtype not in DTYPES:
        raise ExportError(
            f"dtype {dtype!r} is not one of {', '.join(DTYPES)} (quantize the f16/f32 file instead)"
        )
    cfg = _read_json(hf_dir / "config.json")
    arch_name = (cfg.get("architectures") or ["?"])[0]
    spec = ARCHS.get(arch_name)
    if spec is None:
        raise ExportError(
            f"{hf_dir}: architecture {arch_name} is not supported (supported: {', '.join(ARCHS)})"
        )
    meta = read_tokenizer(hf_dir, cfg["vocab_size"], spec, pre)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), spec.gguf_arch)
    try:
        writer.add_name(hf_dir.name)
        _add_hparams(writer, cfg, dtype)
        _add_tokenizer(writer, meta)
        for name, data in _gguf_tensors(hf_dir, cfg, spec, dtype):
            writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(tmp, out_path)
    log.info("wrote %s (%s, %d bytes)", out_path, dtype, out_path.stat().st_size)
    return out_path
