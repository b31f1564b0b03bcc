"""List the built-in models and prove they run offline: one next token from each of their two forms.

`caspo-lite models --check` is the first command a new user runs, so each row says plainly what
worked: the llama.cpp GGUF and the transformers HF view are both loaded and asked for the next
token after the same chat prompt (same token ids on both sides). Agreement is reported, not
required: SmolLM2's GGUF is Q4_1 while its HF view is the fp32 dequantization of it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from caspo_lite.errors import CaspoError
from caspo_lite.models import BUILTINS, gguf_path, hf_path, load_hf, smollm2_gguf
from caspo_lite.paths import cache_dir

log = logging.getLogger(__name__)

PROBE = ({"role": "user", "content": "What is 2 + 3?"},)


def _short(path: Path | str) -> str:
    text, home = str(path), str(Path.home())
    return "~" + text[len(home) :] if text.startswith(home + os.sep) else text


def list_builtin_models() -> list[dict[str, Any]]:
    """One row per built-in: name, what it is, and whether its files are ready or made on first use."""
    rows = []
    for name, description in BUILTINS.items():
        if name == "tiny":
            ready = (cache_dir() / "tiny" / "stamp.json").is_file()
            status = "cached" if ready else "built on first use (~30 s)"
        else:
            try:
                smollm2_gguf()
                ready = (cache_dir() / "smollm2-135m-hf" / "caspo_view.json").is_file()
                status = "installed" + ("" if ready else " (HF view made on first use, ~520 MB)")
            except CaspoError as exc:
                status = str(exc)
        rows.append({"name": name, "description": description, "status": status})
    return rows


def prompt_ids(tokenizer: Any) -> list[int]:
    """Token ids of PROBE rendered with the model's own chat template, ready for generation."""
    text = tokenizer.apply_chat_template(list(PROBE), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False).input_ids


def llama_next_token(gguf: Path, ids: list[int]) -> tuple[int, list[int]]:
    """(greedy next-token id, llama.cpp's own tokenization of the same text) for a GGUF."""
    import llama_cpp
    import numpy as np

    llm = llama_cpp.Llama(
        model_path=str(gguf),
        n_ctx=max(64, len(ids) + 8),
        n_threads=min(2, os.cpu_count() or 1),
        verbose=False,
    )
    try:
        text = llm.detokenize(ids, special=True)
        own_ids = llm.tokenize(text, add_bos=False, special=True)
        llm.eval(ids)
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
        return int(logits.argmax()), own_ids
    finally:
        llm.close()


def hf_next_token(model: Any, ids: list[int]) -> int:
    import torch

    with torch.no_grad():
        return int(model(torch.tensor([ids])).logits[0, -1].argmax())


def check_model(name: str) -> dict[str, Any]:
    """Load both forms of one model and run one token each; failures become the row's detail."""
    start = time.perf_counter()
    row: dict[str, Any] = {
        "name": name,
        "status": "failed",
        "llama.cpp": "",
        "transformers": "",
        "agree": False,
    }
    row |= {"seconds": 0.0, "gguf": "", "hf": "", "detail": ""}
    try:
        gguf = gguf_path(name)
        row["gguf"] = _short(gguf)
        model, tokenizer = load_hf(name)
        row["hf"] = _short(hf_path(name))
        ids = prompt_ids(tokenizer)
        llama_id, llama_ids = llama_next_token(gguf, ids)
        hf_id = hf_next_token(model, ids)
        row["llama.cpp"] = repr(tokenizer.decode([llama_id]))
        row["transformers"] = repr(tokenizer.decode([hf_id]))
        row["agree"] = llama_id == hf_id
        row["status"] = "ok"
        if llama_ids != ids:
            row["detail"] = "llama.cpp tokenizes the prompt differently from transformers"
    except CaspoError as exc:
        row["status"] = "missing" if "pip install" in str(exc) else "failed"
        row["detail"] = str(exc)
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


def check_builtin_models() -> list[dict[str, Any]]:
    """check_model for every built-in, in BUILTINS order."""
    return [check_model(name) for name in BUILTINS]
