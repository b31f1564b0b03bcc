"""quant.gguf_writer: header keys, tensor layout, and logits parity with transformers via llama.cpp."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from caspo_lite.errors import ExportError
from caspo_lite.quant.gguf_header import read_header
from caspo_lite.quant.gguf_writer import permute_for_rope, write_gguf

PROMPT_MESSAGES = [{"role": "user", "content": "What is 12 + 7 - 3?"}]


def test_permute_for_rope_interleaves_the_two_halves_of_each_head() -> None:
    # one head, head_dim 4: HF rows [x0, x1, y0, y1] -> GGML pairs [x0, y0, x1, y1]
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    out = permute_for_rope(w, n_head=1)
    assert out[:, 0].tolist() == [0, 4, 2, 6]
    # two heads: each head is permuted on its own rows
    w2 = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert permute_for_rope(w2, n_head=2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_header_has_the_tokenizer_and_hparams(tiny_hf_dir: Path, tiny_gguf: Path) -> None:
    cfg = json.loads((tiny_hf_dir / "config.json").read_text())
    tok = json.loads((tiny_hf_dir / "tokenizer.json").read_text())
    header = read_header(tiny_gguf)
    meta = header.metadata
    assert meta["general.architecture"] == "llama"
    assert meta["llama.embedding_length"] == cfg["hidden_size"]
    assert meta["llama.attention.head_count_kv"] == cfg["num_key_value_heads"]
    assert meta["tokenizer.ggml.model"] == "gpt2" and meta["tokenizer.ggml.pre"] == "gpt-2"
    assert meta["tokenizer.ggml.tokens"][2] == cfg["vocab_size"]
    assert meta["tokenizer.ggml.merges"][2] == len(tok["model"]["merges"])
    ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
    assert meta["tokenizer.ggml.bos_token_id"] == ids["<|endoftext|>"]
    assert meta["tokenizer.ggml.eos_token_id"] == ids["<|im_end|>"]
    assert meta["tokenizer.ggml.add_bos_token"] is False
    assert "<|im_start|>" in meta["tokenizer.chat_template"]
    assert meta["general.file_type"] == 0  # ALL_F32
    assert len(header.tensors) == 3 + 9 * cfg["num_hidden_layers"]


def test_transformers_reads_our_gguf_back_to_the_same_weights(tiny_hf_dir: Path, tiny_gguf: Path) -> None:
    """transformers' own GGUF loader undoes the q/k permute: a wrong permute or name map fails here."""
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM

    original = load_file(str(tiny_hf_dir / "model.safetensors"))
    back = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    state = {k: v.detach().numpy() for k, v in back.state_dict().items()}
    assert set(original) <= set(state)
    for name, value in original.items():
        np.testing.assert_array_equal(state[name], value, err_msg=name)


def test_f16_keeps_norms_f32_and_halves_the_size(tiny_hf_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    out = write_gguf(tiny_hf_dir, tmp_path / "t-f16.gguf", dtype="f16")
    header = read_header(out)
    types = {name: t for name, (_dims, t, _off) in header.tensors.items()}
    assert types["output_norm.weight"] == 0 and types["blk.0.attn_norm.weight"] == 0  # F32
    assert types["blk.0.attn_q.weight"] == 1 and types["token_embd.weight"] == 1  # F16
    assert header.metadata["general.file_type"] == 1
    assert out.stat().st_size < 0.6 * tiny_gguf.stat().st_size
    assert [p.name for p in tmp_path.iterdir()] == ["t-f16.gguf"]  # no temp file left behind


def test_unsupported_architecture_and_dtype_are_export_errors(tiny_hf_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(tiny_hf_dir, src)
    cfg = json.loads((src / "config.json").read_text())
    cfg["architectures"] = ["MambaForCausalLM"]
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="MambaForCausalLM is not supported"):
        write_gguf(src, tmp_path / "x.gguf")
    with pytest.raises(ExportError, match="dtype 'q4_0'"):
        write_gguf(tiny_hf_dir, tmp_path / "x.gguf", dtype="q4_0")
    assert not (tmp_path / "x.gguf").exists()


def _llama_logits(gguf: Path, ids: list[int], n_new: int) -> tuple[np.ndarray, list[int]]:
    """Greedy continuation in llama.cpp with an f32 KV cache: (logits per step, generated ids)."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(gguf), n_ctx=256, n_threads=2, logits_all=True, verbose=False, type_k=0, type_v=0
    )
    try:
        llm.eval(ids)
        rows, gen = [], []
        for _ in range(n_new):
            row = np.array(llm.scores[llm.n_tokens - 1], copy=True)
            rows.append(row)
            gen.append(int(row.argmax()))
            llm.eval([gen[-1]])
        return np.stack(rows), gen
    finally:
        llm.close()


def test_llama_cpp_logits_match_transformers(tiny_hf_dir: Path, tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    import llama_cpp
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_hf_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir).eval()
    text = tok.apply_chat_template(PROMPT_MESSAGES, tokenize=False, add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False).input_ids

    llm = llama_cpp.Llama(model_path=str(tiny_gguf), n_ctx=64, verbose=False, vocab_only=True)
    try:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
    finally:
        llm.close()

    cpp, gen = _llama_logits(tiny_gguf, ids, n_new=12)
    with torch.no_grad():
        ref = model(torch.tensor([ids + gen])).logits[0, len(ids) - 1 : len(ids) - 1 + len(gen)].numpy()
    assert cpp.shape == ref.shape
    assert np.abs(cpp - ref).max() <= 1e-4
    assert gen == ref.argmax(-1).tolist()
