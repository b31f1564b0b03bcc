"""Backend choice: once, with a reason, overridable; Unsloth imported before TRL."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from caspo_lite.backend import ENV_VAR, choose_backend
from caspo_lite.errors import BackendUnavailable, ConfigError


def test_cpu_gets_plain_trl_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    b = choose_backend("auto", device="cpu", has_unsloth=True)
    assert (b.name, b.device, b.use_cpu, b.bf16) == ("trl", "cpu", True, False)
    assert "no CUDA GPU" in b.reason


def test_gpu_with_extra_gets_unsloth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    b = choose_backend("auto", device="cuda", has_unsloth=True)
    assert b.name == "unsloth" and "installed" in b.reason


def test_gpu_without_extra_notes_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    with caplog.at_level(logging.INFO, logger="caspo_lite.backend"):
        b = choose_backend("auto", device="cuda", has_unsloth=False)
    assert b.name == "trl" and "caspo-lite[unsloth]" in b.note
    assert any("caspo-lite[unsloth]" in r.getMessage() for r in caplog.records)
    assert any("training backend: trl on cuda" in r.getMessage() for r in caplog.records)


def test_env_overrides_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "trl")
    b = choose_backend("unsloth", device="cuda", has_unsloth=True)
    assert b.name == "trl" and ENV_VAR in b.reason
    monkeypatch.setenv(ENV_VAR, "fast")
    with pytest.raises(ConfigError, match=ENV_VAR):
        choose_backend("auto", device="cpu", has_unsloth=False)


def test_forced_unsloth_without_gpu_or_extra_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(BackendUnavailable, match=r"pip install 'caspo-lite\[unsloth\]'"):
        choose_backend("unsloth", device="cuda", has_unsloth=False)
    with pytest.raises(BackendUnavailable, match="needs a CUDA GPU"):
        choose_backend("unsloth", device="cpu", has_unsloth=True)


def test_unsloth_is_imported_before_trl(tmp_path: Path) -> None:
    """A stand-in `unsloth` package records what was imported before it; detection is mocked."""
    pkg = tmp_path / "unsloth"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import sys\nTRL_BEFORE = 'trl' in sys.modules\nTRANSFORMERS_BEFORE = 'transformers' in sys.modules\n"
        "class FastLanguageModel:\n    pass\n",
        encoding="utf-8",
    )
    script = textwrap.dedent(
        """
        import json, sys
        from caspo_lite.backend import choose_backend, import_training_stack
        b = choose_backend("auto", device="cuda", has_unsloth=True)   # detection mocked: a GPU + the extra
        mods = import_training_stack(b)
        import unsloth
        print(json.dumps({"backend": b.name, "trl_before": unsloth.TRL_BEFORE,
                          "trl_after": "trl" in sys.modules, "fast": "FastLanguageModel" in mods}))
        """
    )
    env = {"PYTHONPATH": f"{tmp_path}:{Path(__file__).resolve().parents[1]}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"backend": "unsloth", "trl_before": False, "trl_after": True, "fast": True}


def test_a_chosen_backend_says_who_chose_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASPO_LITE_BACKEND", raising=False)
    b = choose_backend("trl", device="cpu", has_unsloth=False)
    assert b.reason == "dpo.backend = 'trl' (set in the recipe or --set)"
    monkeypatch.setenv("CASPO_LITE_BACKEND", "trl")
    b = choose_backend("auto", device="cpu", has_unsloth=False)
    assert b.reason == "$CASPO_LITE_BACKEND = 'trl' (set in the environment)"


def _card(monkeypatch: pytest.MonkeyPatch, major: int) -> None:
    """A mocked CUDA device of compute capability ``major``.x; torch's own is_bf16_supported runs."""
    import types

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    props = types.SimpleNamespace(major=major)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _d=None: props)
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda _d: True)  # emulation works


@pytest.mark.parametrize(("major", "bf16", "fp16"), [(7, False, True), (8, True, False), (9, True, False)])
def test_mixed_precision_follows_native_bf16(
    monkeypatch: pytest.MonkeyPatch, major: int, bf16: bool, fp16: bool
) -> None:
    """Turing (7.x: RTX 20xx, GTX 16xx, T4) gets fp16 although torch says bf16 'is supported'
    (emulated); Ampere and later get bf16."""
    import torch

    from caspo_lite.backend import half_dtype

    monkeypatch.delenv(ENV_VAR, raising=False)
    _card(monkeypatch, major)
    assert torch.cuda.is_bf16_supported()  # emulation counts here: the trap the old check fell into
    b = choose_backend("trl", device="cuda", has_unsloth=False)
    assert (b.bf16, b.fp16) == (bf16, fp16)
    assert half_dtype() == (torch.bfloat16 if bf16 else torch.float16)


def test_dpo_config_carries_the_mixed_precision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import dataclasses
    import types

    from caspo_lite.backend import Backend
    from caspo_lite.train.config import DpoSection
    from caspo_lite.train.dpo import _dpo_config

    _card(monkeypatch, 7)
    b = Backend("trl", "cuda", "mocked Turing card")
    # TrainingArguments checks fp16 against the real device; read the flags we pass instead
    seen: dict = {}

    @dataclasses.dataclass(init=False)
    class FakeDPOConfig:
        def __init__(self, **kw: object) -> None:
            seen.update(kw)

    _dpo_config(DpoSection(), b, tmp_path, 8, types.SimpleNamespace(DPOConfig=FakeDPOConfig))
    assert (seen["bf16"], seen["fp16"], seen["use_cpu"]) == (False, True, False)


def test_4bit_without_unsloth_is_one_line_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from caspo_lite.backend import check_4bit

    monkeypatch.delenv(ENV_VAR, raising=False)
    b = choose_backend("auto", device="cuda", has_unsloth=False)
    with pytest.raises(ConfigError, match=r"dpo.load_in_4bit = true needs the unsloth backend") as info:
        check_4bit(b, True)
    assert "\n" not in str(info.value) and "dpo.load_in_4bit = false" in str(info.value)
    check_4bit(b, False)
    check_4bit(choose_backend("auto", device="cuda", has_unsloth=True), True)


def test_train_refuses_4bit_without_unsloth_before_sampling(tmp_path: Path) -> None:
    """`train` with load_in_4bit on a machine without Unsloth: one line, exit 2, nothing sampled."""
    from typer.testing import CliRunner

    from caspo_lite.cli import app

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny-ci.toml"
    out = tmp_path / "run"
    args = ["train", "--recipe", str(recipe), "--set", "dpo.backend='auto'", "--set", "dpo.load_in_4bit=true"]
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "load_in_4bit" in lines[0], res.output
    assert not (out / "round-1" / "samples.jsonl").exists()


def test_missing_unsloth_fails_at_train_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """backend = 'unsloth' without the extra: the error comes before round 1 samples anything."""
    from caspo_lite.train import rounds
    from caspo_lite.train.config import load_train_config

    monkeypatch.delenv(ENV_VAR, raising=False)
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "tiny-ci.toml"
    cfg = load_train_config(recipe, ["dpo.backend='unsloth'"])
    sampled: list = []
    monkeypatch.setattr(rounds, "run_round", lambda *a, **k: sampled.append(a))
    with pytest.raises(BackendUnavailable):
        rounds.train(cfg, tmp_path / "run")
    assert sampled == []


def test_unsloth_probe_reports_a_broken_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from caspo_lite.backend import probe_unsloth

    pkg = tmp_path / "unsloth"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('Unsloth: no NVIDIA GPU found')\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(BackendUnavailable, match="no NVIDIA GPU found") as info:
        probe_unsloth()
    assert "\n" not in str(info.value)


def test_unsloth_is_probed_in_another_process_never_imported_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampling process must stay unpatched: `train` start imports Unsloth only in a probe."""
    import os

    from caspo_lite import backend
    from caspo_lite.train import rounds
    from caspo_lite.train.config import load_train_config

    pkg = tmp_path / "unsloth"
    pkg.mkdir()
    marker = tmp_path / "imported-by"
    (pkg / "__init__.py").write_text(
        f"import os\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\n", encoding="utf-8"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    forced = backend.Backend("unsloth", "cuda", "mocked: a GPU and the extra")
    monkeypatch.setattr(rounds, "choose_backend", lambda *a, **k: forced)
    cfg = load_train_config(Path(__file__).resolve().parents[1] / "recipes" / "tiny-ci.toml")
    assert rounds.start_backend(cfg).name == "unsloth"
    assert "unsloth" not in sys.modules
    assert marker.read_text() != str(os.getpid())  # imported, but by the probe process
