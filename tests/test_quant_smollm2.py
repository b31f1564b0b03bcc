"""quant.export on the real SmolLM2-135M: a LoRA adapter merged into the built-in's HF view, exported
to f16 / q8_0 / q4_k_m once for the module, checked against transformers; plus the unmodified
model, whose tokenizer metadata must come out identical to the original GGUF's.

Slow-ish (the fp32 HF view is built once per session, ~1-2 min on 2 cores; the exports ~1 min).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

TEXT = (
    "<|im_start|>user\nA baker makes 24 muffins in the morning and 18 in the afternoon. She sells 30 "
    "of them and gives 5 to her neighbour. How many muffins does she have "
    "left?<|im_end|>\n<|im_start|>assistant\nStep 1: In the morning and the afternoon she makes 24 + "
    "18 = 42 muffins.\nStep 2: She sells 30 of them, so 42 - 30 = 12 muffins remain.\nStep 3: She "
    "gives 5 to her neighbour, so 12 - 5 = 7 muffins are left.\nThe answer is "
    "7.<|im_end|>\n<|im_start|>user\nNow a harder one. A train travels 120 kilometres in 2 hours, then "
    "180 kilometres in 3 hours. What is its average speed over the whole trip, in kilometres per hour? "
    "Explain every step carefully.<|im_end|>\n<|im_start|>assistant\nStep 1: The total distance is 120 "
    "+ 180 = 300 kilometres.\nStep 2: The total time is 2 + 3 = 5 hours.\nStep 3: The average speed is "
    "the total distance divided by the total time, 300 / 5 = 60 kilometres per hour.\nThe answer is "
    "60.<|im_end|>\n"
)
N_TOKENS = 200


def _home(factory: pytest.TempPathFactory) -> Path:
    fixed = os.environ.get("CASPO_LITE_TEST_HOME")  # same rule as conftest._isolated_home
    return Path(fixed) if fixed else factory.getbasetemp() / "home"


@pytest.fixture(scope="module")
def smol(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Adapter on SmolLM2 (lora_B randomised), its merged reference logits, and one export of it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from caspo_lite.models import hf_path
    from caspo_lite.quant.export import export

    root = tmp_path_factory.mktemp("smol")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CASPO_LITE_HOME", str(_home(tmp_path_factory)))
        mp.setenv("HF_HUB_OFFLINE", "1")
        view = hf_path("smollm2-135m")
        tok = AutoTokenizer.from_pretrained(view)
        ids = tok(TEXT, add_special_tokens=False).input_ids[:N_TOKENS]
        assert len(ids) == N_TOKENS
        model = AutoModelForCausalLM.from_pretrained(view, dtype=torch.float32)
        torch.manual_seed(0)  # lora_A's init: the same adapter every run
        peft_model = get_peft_model(
            model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
        )
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        adapter = root / "adapter"
        peft_model.save_pretrained(adapter)
        cfg = json.loads((adapter / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = "smollm2-135m"  # resolved through caspo_lite.models
        (adapter / "adapter_config.json").write_text(json.dumps(cfg))
        merged = peft_model.merge_and_unload().eval()
        with torch.no_grad():
            ref = merged(torch.tensor([ids])).logits[0].numpy()
        del merged, peft_model, model
        t0 = time.perf_counter()
        result = export(adapter, root / "gguf", ["f16", "q8_0", "q4_k_m"])
        seconds = time.perf_counter() - t0
        yield {"result": result, "ids": ids, "ref": ref, "adapter": adapter,
               "view": view, "seconds": seconds, "root": root}  # fmt: skip


def _llama_logits(path: Path, ids: list[int]) -> np.ndarray:
    """Logits of every position; f32 KV cache so the weights' f16 rounding is the only difference."""
    import llama_cpp

    llm = llama_cpp.Llama(
        model_path=str(path), n_ctx=512, n_threads=2, logits_all=True, type_k=0, type_v=0, verbose=False
    )
    try:
        llm.eval(ids)
        return np.array(llm.scores[: llm.n_tokens])
    finally:
        llm.close()


def test_f16_argmax_agrees_with_transformers_merged(smol: dict) -> None:
    f16 = smol["result"].files[0]
    assert f16.quant == "f16"
    ours = _llama_logits(f16.path, smol["ids"])
    ref = smol["ref"]
    agree = float((ours.argmax(-1) == ref.argmax(-1)).mean())
    print(f"f16 vs transformers: argmax agreement {agree:.3f}, max abs diff {np.abs(ours - ref).max():.4f}")
    assert agree >= 0.99


def test_adapter_changed_the_weights(smol: dict) -> None:
    """The LoRA delta reaches the GGUF: the export differs from the unmodified model's logits."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(smol["view"], dtype=torch.float32).eval()
    with torch.no_grad():
        base = model(torch.tensor([smol["ids"][:40]])).logits[0].numpy()
    assert np.abs(base - smol["ref"][:40]).max() > 0.05


def test_q4_k_m_loads_generates_and_reports_fallbacks(smol: dict) -> None:
    import llama_cpp

    files = {f.quant: f for f in smol["result"].files}
    q4 = files["q4_k_m"]
    print("sizes:", {q: f.size for q, f in files.items()}, f"export {smol['seconds']:.1f} s")
    print("q4_k_m types:", q4.groups)
    assert files["f16"].size > files["q8_0"].size > q4.size
    # 576 columns are not a multiple of 256: llama.cpp cannot use Q4_K there and falls back
    assert "Q4_K" not in q4.groups["attn_q"]
    assert set(q4.groups["ffn_down"]) & {"Q4_K", "Q6_K"}  # 1536 columns: real K-quants
    llm = llama_cpp.Llama(model_path=str(q4.path), n_ctx=256, n_threads=2, verbose=False)
    try:
        prompt = "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
        out = llm.create_completion(prompt, max_tokens=8, temperature=0.0)
    finally:
        llm.close()
    assert out["usage"]["completion_tokens"] >= 1 and out["choices"][0]["text"].strip()


def test_adapter_provenance(smol: dict) -> None:
    from caspo_lite.quant.inspect import inspect_gguf
    from caspo_lite.quant.sources import sha256_files

    prov = inspect_gguf(smol["result"].files[-1].path)["provenance"]
    assert prov["caspo_lite.source_kind"] == "adapter" and prov["caspo_lite.base"] == "smollm2-135m"
    files = [smol["adapter"] / "adapter_model.safetensors", *sorted(smol["view"].glob("*.safetensors"))]
    assert prov["caspo_lite.source_sha256"] == smol["result"].sha256 == sha256_files(files)


def test_unmodified_export_keeps_the_original_tokenizer_metadata(
    smol: dict, smollm2_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from caspo_lite.quant.export import export
    from caspo_lite.quant.gguf_meta import tokenizer_metadata

    monkeypatch.setenv("CASPO_LITE_HOME", str(smol["view"].parent.parent))  # the home holding the view
    out = export("smollm2-135m", tmp_path / "m.gguf", "f16").files[0].path
    original, ours = tokenizer_metadata(smollm2_gguf), tokenizer_metadata(out)
    assert len(original) >= 10 and "tokenizer.chat_template" in original
    assert original == ours  # same keys, value types and values (tokens, merges, ids, template)
