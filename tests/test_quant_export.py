"""quant.export on tiny Llama / Qwen2 / Qwen3 models: logits parity with transformers, token ids,
provenance, quantized types, Modelfile, inspect, and one-line failures that leave no file behind.

The models are built here in a second or two each: caspo_lite.tiny's tokenizer and config
builders, untrained but with every weight (norms, biases, q/k norms too) perturbed so the logits
spread over several units and a wrong permute, a missing bias or a swapped norm shows at once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from caspo_lite.cli import app
from caspo_lite.errors import ExportError

PROMPT = "<|im_start|>user\nWhat is 12 + 345 - 6?<|im_end|>\n<|im_start|>assistant\nStep 1: 12 + 345 = 357\n"
runner = CliRunner()


def build(arch: str, out: Path, tie: bool) -> Path:
    import torch

    from caspo_lite.tiny import TinySpec, make_model, train_tokenizer, training_pairs

    spec = TinySpec(arch=arch, n_problems=40, steps=0, tie_embeddings=tie)
    pairs = training_pairs(spec.n_problems, spec.levels, spec.seed)
    tokenizer = train_tokenizer([p + c for p, c in pairs], spec)
    model = make_model(spec, tokenizer)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=[("llama", False), ("qwen2", True), ("qwen3", False)], ids=str)
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    arch, tie = request.param
    return build(arch, tmp_path_factory.mktemp(arch) / "hf", tie)


@pytest.fixture(scope="module")
def exported(tiny: Path) -> object:
    from caspo_lite.quant.export import export

    return export(tiny, tiny.parent / "gguf", ["f32", "q8_0", "q4_k_m"], ollama=True)


def test_f32_logits_and_token_ids_match_transformers(tiny: Path, exported: object) -> None:
    import llama_cpp
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    ids = tok(PROMPT, add_special_tokens=False).input_ids
    f32 = exported.files[0]  # type: ignore[attr-defined]
    assert f32.quant == "f32"
    llm = llama_cpp.Llama(
        model_path=str(f32.path), n_ctx=128, n_threads=2, logits_all=True, type_k=0, type_v=0, verbose=False
    )
    try:
        assert llm.tokenize(PROMPT.encode(), add_bos=False, special=True) == ids
        llm.eval(ids)
        ours = np.array(llm.scores[: llm.n_tokens])
    finally:
        llm.close()
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(ref).max() > 1.0  # the comparison means something
    assert np.abs(ours - ref).max() <= 1e-4


def test_tied_embeddings_omit_output_and_arch_tensors_are_present(tiny: Path, exported: object) -> None:
    from caspo_lite.quant.gguf_header import read_header

    cfg = json.loads((tiny / "config.json").read_text())
    header = read_header(exported.files[0].path)  # type: ignore[attr-defined]
    names = set(header.tensors)
    assert ("output.weight" in names) != bool(cfg.get("tie_word_embeddings"))
    arch = header.metadata["general.architecture"]
    assert arch == cfg["model_type"]
    assert ("blk.0.attn_q.bias" in names) == (arch == "qwen2")
    assert ("blk.0.attn_q_norm.weight" in names) == (arch == "qwen3")
    assert header.metadata["tokenizer.ggml.pre"] == ("gpt-2" if arch == "llama" else "qwen2")


def test_quantized_files_have_types_provenance_and_modelfile(tiny: Path, exported: object) -> None:
    from caspo_lite.quant.inspect import inspect_gguf
    from caspo_lite.quant.sources import sha256_files

    files = {f.quant: f for f in exported.files}  # type: ignore[attr-defined]
    assert list(files) == ["f32", "q8_0", "q4_k_m"]
    assert files["q8_0"].groups["attn_q"] == {"Q8_0": 2}
    # hidden 64 is not a multiple of 256: llama.cpp falls back from Q4_K, and we report it
    assert "Q4_K" not in files["q4_k_m"].groups["attn_q"] and files["q4_k_m"].groups["attn_norm"] == {
        "F32": 2
    }
    assert files["f32"].size > files["q8_0"].size > files["q4_k_m"].size
    info = inspect_gguf(files["q4_k_m"].path)
    assert info["file_type"] == "MOSTLY_Q4_K_M" and info["chat_template"] is True
    assert info["context_length"] == 512
    prov = info["provenance"]
    assert prov["caspo_lite.source_sha256"] == sha256_files(sorted(tiny.glob("*.safetensors")))
    assert prov["caspo_lite.source"] == str(tiny.resolve()) and prov["general.quantized_by"].startswith(
        "caspo"
    )
    modelfile = files["q4_k_m"].path.with_suffix(".Modelfile").read_text()
    assert modelfile.startswith(f"FROM ./{files['q4_k_m'].path.name}\n")
    assert "{{ .Content }}<|im_end|>" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert not list(files["f32"].path.parent.glob(".*"))  # no temp files left


def test_cli_export_and_inspect(tiny: Path, tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["export", str(tiny), "--out", str(tmp_path / "m.gguf"), "--quant", "q8_0", "--json"]
    )
    assert res.exit_code == 0, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]  # JSON lines, nothing else
    assert [e["event"] for e in events] == ["started", "file", "finished"]
    assert events[1]["path"] == str(tmp_path / "m.gguf") and events[1]["quant"] == "q8_0"
    data = events[-1]["result"]
    assert data["files"][0]["path"] == str(tmp_path / "m.gguf") and (tmp_path / "m.gguf").is_file()
    res = runner.invoke(app, ["inspect", str(tmp_path / "m.gguf")])
    assert res.exit_code == 0, res.output
    assert "MOSTLY_Q8_0" in res.output and "caspo_lite.source_sha256" in res.output


def test_parse_quants_accepts_lists_and_rejects_unknown() -> None:
    from caspo_lite.quant.quantize import parse_quants

    assert parse_quants(["f16,Q4_K_M", "f16", "q8-0"]) == ["f16", "q4_k_m", "q8_0"]
    with pytest.raises(ExportError, match="q3_x"):
        parse_quants(["q3_x"])


def test_failed_quantization_leaves_nothing(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import caspo_lite.quant.quantize
    from caspo_lite.quant.export import export

    monkeypatch.setattr(caspo_lite.quant.quantize, "ftype_of", lambda q: 9999)  # llama.cpp rejects this ftype
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="could not quantize"):
        export(tiny, out, ["f16", "q8_0"])
    assert list(out.iterdir()) == []


# --- bad sources: one line, non-zero exit, no output file ---------------------------------------


def test_training_round_folder_exports_its_merged_policy(llama_tiny: Path, tmp_path: Path) -> None:
    from caspo_lite.quant.export import export

    shutil.copytree(llama_tiny, tmp_path / "run" / "round-1" / "merged")
    (tmp_path / "run" / "round-1" / "ledger.json").write_text('{"stages": {}}')
    result = export(tmp_path / "run", tmp_path / "out", "q8_0", verify=False)
    assert [f.path.name for f in result.files] == ["run-round-1-q8_0.gguf"]
    assert result.sha256 == export(llama_tiny, tmp_path / "out2", "q8_0", verify=False).sha256


@pytest.fixture(scope="module")
def llama_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("llama", tmp_path_factory.mktemp("bad") / "hf", tie=False)


def _bad_source(kind: str, tiny: Path, root: Path) -> Path:
    src = root / kind
    if kind == "missing-config":
        src.mkdir()
        shutil.copy(tiny / "model.safetensors", src)
    elif kind == "truncated":
        shutil.copytree(tiny, src)
        data = (src / "model.safetensors").read_bytes()
        (src / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif kind == "unsupported":
        shutil.copytree(tiny, src)
        cfg = json.loads((src / "config.json").read_text())
        cfg["architectures"] = ["GPT2LMHeadModel"]
        (src / "config.json").write_text(json.dumps(cfg))
    elif kind == "adapter-no-base":
        src.mkdir()
        cfg = {"peft_type": "LORA", "base_model_name_or_path": str(root / "gone"), "r": 8}
        (src / "adapter_config.json").write_text(json.dumps(cfg))
    return src


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("missing-config", "config.json"),
        ("truncated", "truncated"),
        ("unsupported", "convert_hf_to_gguf.py"),
        ("adapter-no-base", "base model"),
    ],
)
def test_bad_sources_fail_in_one_line(kind: str, needle: str, llama_tiny: Path, tmp_path: Path) -> None:
    src = _bad_source(kind, llama_tiny, tmp_path)
    out = tmp_path / "out"
    res = runner.invoke(app, ["export", str(src), "--out", str(out), "--quant", "f16,q4_k_m"])
    assert res.exit_code != 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.output
    assert not out.exists() or list(out.iterdir()) == []


def test_lora_adapter_is_merged_with_base_override(llama_tiny: Path, tmp_path: Path) -> None:
    """A PEFT adapter whose recorded base is gone exports with --base; logits match the merged model."""
    import llama_cpp
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from caspo_lite.quant.export import export

    model = AutoModelForCausalLM.from_pretrained(llama_tiny, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(tmp_path / "moved-away")
    cfg_path.write_text(json.dumps(cfg))
    merged = peft_model.merge_and_unload().eval()
    ids = AutoTokenizer.from_pretrained(llama_tiny)(PROMPT, add_special_tokens=False).input_ids
    with torch.no_grad():
        ref = merged(torch.tensor([ids])).logits[0].numpy()
        base_logits = AutoModelForCausalLM.from_pretrained(llama_tiny)(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(ref - base_logits).max() > 0.1  # the adapter matters

    res = runner.invoke(
        app, ["export", str(tmp_path / "adapter"), "--out", str(tmp_path / "x.gguf"), "-q", "f32"]
    )
    assert res.exit_code != 0 and "--base" in res.output  # recorded base is gone: say how to fix it
    out = export(tmp_path / "adapter", tmp_path / "a.gguf", "f32", base=str(llama_tiny)).files[0].path
    llm = llama_cpp.Llama(model_path=str(out), n_ctx=128, logits_all=True, type_k=0, type_v=0, verbose=False)
    try:
        llm.eval(ids)
        ours = np.array(llm.scores[: llm.n_tokens])
    finally:
        llm.close()
    assert np.abs(ours - ref).max() <= 1e-4


def test_modelfile_converts_a_chatml_template_with_a_default_system_prompt() -> None:
    from caspo_lite.quant.ollama import modelfile_text

    smol = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM<|im_end|>\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    )
    text = modelfile_text("m.gguf", smol, "<|im_end|>")
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM"""' in text
    assert text.count("PARAMETER stop") == 2 and "{{- range .Messages }}" in text
    other = modelfile_text("m.gguf", "{{ bos_token }}[INST] {{ m }} [/INST]", "</s>")
    assert 'TEMPLATE """' not in other and "not ChatML" in other  # no wrong template: a note instead
    assert 'PARAMETER stop "</s>"' in other and "SYSTEM" not in other


def test_merge_dtype_is_16_bit_unless_f32_is_asked_for() -> None:
    from caspo_lite.quant.sources import merge_dtype

    assert merge_dtype({"dtype": "bfloat16"}, keep_f32=False) == "bfloat16"
    assert merge_dtype({"torch_dtype": "float16"}, keep_f32=False) == "float16"
    assert merge_dtype({"dtype": "float32"}, keep_f32=False) == "float16"
    assert merge_dtype({"dtype": "bfloat16"}, keep_f32=True) == "float32"


def test_adapter_merges_in_16_bit_for_f16_and_q8_0(
    llama_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adapter exported to f16 + q8_0 is merged in fp16 (not fp32: ~33 GB of RAM for 8B), and the
    f16 GGUF's logits still match the fp32-merged model within f16 rounding."""
    import llama_cpp
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    from caspo_lite.quant.export import export

    model = transformers.AutoModelForCausalLM.from_pretrained(llama_tiny, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = transformers.AutoTokenizer.from_pretrained(llama_tiny)(PROMPT, add_special_tokens=False).input_ids
    with torch.no_grad():
        ref = peft_model.merge_and_unload().eval()(torch.tensor([ids])).logits[0].numpy()

    dtypes: list = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(path, **kw):  # noqa: ANN001, ANN003, ANN202
        dtypes.append(kw.get("dtype"))
        return real(path, **kw)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    result = export(tmp_path / "adapter", tmp_path / "out", ["f16", "q8_0"], base=str(llama_tiny))
    assert dtypes == [torch.float16]
    assert [f.quant for f in result.files] == ["f16", "q8_0"]
    f16 = result.files[0].path
    llm = llama_cpp.Llama(model_path=str(f16), n_ctx=128, logits_all=True, type_k=0, type_v=0, verbose=False)
    try:
        llm.eval(ids)
        ours = np.array(llm.scores[: llm.n_tokens])
    finally:
        llm.close()
    assert np.abs(ours - ref).max() <= 0.05 * max(1.0, float(np.abs(ref).max()))
