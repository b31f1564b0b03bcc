"""caspo_lite.tiny: deterministic, trained enough to write arithmetic steps, cached safely."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from caspo_lite import tiny


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_render_chatml_matches_the_saved_jinja_template(tiny_hf_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_hf_dir)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 3?"}]
    for gen in (False, True):
        assert tiny.render_chatml(messages, gen) == tok.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=gen
        )
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_the_build_is_deterministic_and_the_seed_matters(tmp_path: Path) -> None:
    small = {"steps": 8, "n_problems": 40, "batch": 4}
    a = tiny.build_tiny(tmp_path / "a", **small)
    b = tiny.build_tiny(tmp_path / "b", **small)
    c = tiny.build_tiny(tmp_path / "c", seed=1, **small)
    assert _sha(a / "model.safetensors") == _sha(b / "model.safetensors")
    assert _sha(a / "tokenizer.json") == _sha(b / "tokenizer.json")
    assert _sha(a / "model.safetensors") != _sha(c / "model.safetensors")


def test_the_default_model_learned_the_solution_format(tiny_hf_dir: Path) -> None:
    """Greedy output on unseen problems is step lines + an answer line, not noise."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from caspo_lite.tasks.arith import ArithTask, get_level

    record = json.loads((tiny_hf_dir / "tiny.json").read_text())
    assert record["losses"][-1] < record["losses"][0] / 4
    tok = AutoTokenizer.from_pretrained(tiny_hf_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir).eval()
    task = ArithTask(level=replace(get_level("easy"), prompt="chat"))
    shaped = 0
    for problem in task.load(4, seed=0, split="test"):
        text = tiny.render_chatml(task.prompt(problem).messages, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=40, do_sample=False, eos_token_id=tok.eos_token_id)
        reply = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        shaped += reply.startswith("Step 1: ") and "=" in reply and "Answer: " in reply
    assert shaped >= 3


def test_qwen_variants_load_and_keep_their_tokenization(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    for arch, cls in (("qwen2", "Qwen2ForCausalLM"), ("qwen3", "Qwen3ForCausalLM")):
        out = tiny.build_tiny(tmp_path / arch, hidden=32, arch=arch, steps=0, n_problems=30)
        model = AutoModelForCausalLM.from_pretrained(out)
        assert type(model).__name__ == cls
        text = "<|im_start|>user\nWhat is 123 + 45?<|im_end|>\n"
        auto = AutoTokenizer.from_pretrained(out)
        plain = PreTrainedTokenizerFast.from_pretrained(out)
        assert auto(text).input_ids == plain(text).input_ids
        assert "1" in plain.convert_ids_to_tokens(plain(" 123").input_ids)  # Qwen2 regex: digits one by one


def test_unknown_arch_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="arch 'mamba'"):
        tiny.build_tiny(tmp_path / "m", arch="mamba", steps=0, n_problems=10)


def test_concurrent_ensure_tiny_builds_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASPO_LITE_HOME", str(tmp_path / "home"))
    calls = []
    real_build = tiny.build_tiny

    def fast_build(out_dir: Path, **kw: object) -> Path:
        calls.append(out_dir)
        return real_build(out_dir, steps=0, n_problems=20)

    monkeypatch.setattr(tiny, "build_tiny", fast_build)
    results: list[tiny.TinyModel] = []
    threads = [threading.Thread(target=lambda: results.append(tiny.ensure_tiny())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 2 and results[0] == results[1]
    assert results[0].gguf.is_file() and (results[0].hf_dir / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "home" / "cache").iterdir()) == ["tiny", "tiny.lock"]
    tiny.ensure_tiny()  # fresh stamp: no rebuild
    assert len(calls) == 1
