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
