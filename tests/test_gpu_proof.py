"""bench/gpu_proof.py in its CPU smoke mode (~30 s): every step of the CUDA proof but the CUDA-only
figures, so the script is known to work before a GPU is spent on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_smoke_runs_every_step(tmp_path: Path) -> None:
    out = tmp_path / "proof"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CASPO_LITE_HOME": str(tmp_path / "home")}
    env.pop("CASPO_LITE_FAULT", None)
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_proof.py"), "--cpu-smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "gpu_proof.json").read_text())
    assert res["16bit/kill"] == "exit -9 (-9 expected), checkpoints left: ['checkpoint-2']"
    assert res["16bit/resumed_from"] == "checkpoint-2" and res["16bit/dpo_steps"] == 4
    assert res["16bit/sample_engine"] == "hf" and res["tiny/sampling_tokens_per_s_batch8"] > 0
    assert res["same_vs_fresh"] == "equal"
    assert res["4bit"].startswith("refused as expected: dpo.load_in_4bit = true needs the unsloth backend")
    assert res["smoke-shaped/sampling_tokens_per_s_b8_at_4_layers"] > 0
