"""The DPO stage under `accelerate launch` with 2 CPU processes on the tiny model.

One round of `tiny-ci` with ``dpo.num_processes = 2``: killed at the end of DPO step 3 (every
rank SIGKILLs itself there), then rerun. Checks: the launch really ran 2 ranks (each saved
its RNG state in the checkpoint), only rank 0 wrote the round's files (each step's log line
once), the resumed round completes from checkpoint-2, the adapter loads, the ledger has the
DPO stage once with its result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from caspo_lite.train.dpo_launch import launch_command

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "tiny-ci.toml"
OVERRIDES = [
    "rounds.n=1",
    "task.n_train=8",
    "task.n_dev=2",
    "rounds.dev_eval=false",
    "dpo.max_steps=4",
    "dpo.save_steps=2",
    "dpo.num_processes=2",
    # answer-level pairs: this test is about the launch, and 8 tiny-model problems give too few
    # step pairs under problem-aware labels to train on reliably
    "pairs.mode='answer'",
]


def test_launch_command_names_the_processes_and_the_config(tmp_path: Path) -> None:
    cmd = launch_command(tmp_path / "round-1", tmp_path / "policy", "trl", 4, port=29999)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in cmd
    assert (
        cmd[cmd.index("--num_processes") + 1] == "4" and cmd[cmd.index("--main_process_port") + 1] == "29999"
    )
    assert cmd[cmd.index("-m", 3) + 1] == "caspo_lite.train.dpo_launch"
    zero2 = REPO / "recipes" / "accelerate" / "deepspeed-zero2.yaml"
    cmd = launch_command(tmp_path, tmp_path, "trl", 8, str(zero2))
    assert cmd[cmd.index("--config_file") + 1] == str(zero2) and "--multi_gpu" not in cmd
    from caspo_lite.errors import ConfigError

    with pytest.raises(ConfigError, match="file not found"):
        launch_command(tmp_path, tmp_path, "trl", 2, str(tmp_path / "nope.yaml"))


def test_shipped_accelerate_configs_parse() -> None:
    import yaml

    for name in ("ddp.yaml", "deepspeed-zero2.yaml", "deepspeed-zero3.yaml", "fsdp.yaml"):
        cfg = yaml.safe_load((REPO / "recipes" / "accelerate" / name).read_text())
        assert cfg["compute_environment"] == "LOCAL_MACHINE" and cfg["num_processes"] >= 2, name
    assert (
        yaml.safe_load((REPO / "recipes/accelerate/deepspeed-zero3.yaml").read_text())["deepspeed_config"][
            "zero_stage"
        ]
        == 3
    )


def _cli(out: Path, home: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CASPO_LITE_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("CASPO_LITE_FAULT", None)
    env["OMP_NUM_THREADS"] = "1"
    if fault:
        env["CASPO_LITE_FAULT"] = fault
    sets = [a for o in OVERRIDES for a in ("--set", o)]
    cmd = [sys.executable, "-m", "caspo_lite.cli", "train", "--recipe", str(RECIPE), *sets, "--out", str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=REPO)


@pytest.mark.slow
def test_two_process_dpo_round_kill_and_resume(tiny_model: object, tmp_path: Path) -> None:
    if importlib.util.find_spec("accelerate") is None:
        pytest.skip("accelerate is not installed")
    home = Path(os.environ["CASPO_LITE_HOME"])
    out = tmp_path / "acc"
    rd = out / "round-1"
    p = _cli(out, home, "dpo:3")  # every rank SIGKILLs itself at the end of step 3
    assert p.returncode != 0 and "accelerate launch (2 processes) failed" in p.stderr, p.stderr[-3000:]
    ckpt = rd / "dpo" / "checkpoint-2"
    assert (ckpt / "trainer_state.json").is_file(), p.stderr[-3000:]
    assert (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()  # 2 ranks ran
    before = json.loads((rd / "ledger.json").read_text())["stages"]
    assert "pairs" in before and "dpo" not in before

    p = _cli(out, home, None)
    assert p.returncode == 0, p.stderr[-3000:]
    stages = json.loads((rd / "ledger.json").read_text())["stages"]
    assert stages["dpo"]["resumed_from"] == "checkpoint-2" and stages["dpo"]["steps"] == 4
    assert stages["pairs"]["finished_at"] == before["pairs"]["finished_at"]  # not re-run
    rows = [json.loads(line) for line in (rd / "dpo_log.jsonl").read_text().splitlines()]
    steps = [int(r["step"]) for r in rows if "loss" in r]
    assert steps == [1, 2, 3, 4]  # each step logged once: only rank 0 wrote (and the resume went on at 3)
    result = json.loads((rd / "dpo_result.json").read_text())
    assert result["steps"] == 4 and result["reward_margin"] == result["reward_margin"]  # rank 0's, not NaN
    assert not (rd / "dpo").exists() and (rd / "policy-f32.gguf").is_file()

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_model.hf_dir))  # type: ignore[attr-defined]
    model = PeftModel.from_pretrained(base, str(rd / "adapter"))
    assert any("lora_" in name for name, _ in model.named_parameters())
