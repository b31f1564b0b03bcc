"""DPO on the tiny model: one adapter after the trainer is built, resume equals an uninterrupted
run, the per-round child process reports progress, errors and kills in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

from caspo_lite.backend import Backend  # noqa: E402
from caspo_lite.pairs import Pair  # noqa: E402
from caspo_lite.train.config import DpoSection  # noqa: E402

CPU = Backend("trl", "cpu", "test: no CUDA GPU")
CFG = DpoSection(
    max_steps=4, save_steps=2, batch_size=2, learning_rate=5e-3, lora_r=4, lora_alpha=8, max_length=128
)
REPO = Path(__file__).resolve().parents[1]


def _pairs(n: int = 8) -> list[Pair]:
    out = []
    for i in range(n):
        a, b = 2 + i, 3 + 2 * i
        prompt = f"<|im_start|>user\nWhat is {a} + {b}?<|im_end|>\n<|im_start|>assistant\n"
        out.append(
            Pair(
                problem_id=f"p{i}",
                type="B",
                step_index=0,
                prompt=prompt,
                prefix_steps=(),
                chosen=f"Step 1: {a} + {b} = {a + b}\n",
                rejected=f"Step 1: {a} + {b} = {a + b + 1}\n",
                chosen_label="correct",
                rejected_label="wrong",
                chosen_confidence=0.5,
                rejected_confidence=0.9,
                chosen_token_confidences=(0.5,),
                rejected_token_confidences=(0.9,),
                chosen_source="sample:0",
                rejected_source="sample:1",
            )
        )
    return out


def _round_dir(root: Path) -> Path:
    rd = root / "round-1"
    rd.mkdir(parents=True)
    (rd / "pairs.jsonl").write_text("".join(json.dumps(p.to_record()) + "\n" for p in _pairs()))
    return rd


def test_trainer_holds_only_the_default_adapter(
    tiny_hf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRL adds a 'ref' adapter to an already-wrapped model (the defect); build_trainer removes it."""
    from caspo_lite.train import dpo

    built = dpo.build_trainer(tiny_hf_dir, _pairs(), tmp_path, CFG, CPU)
    assert list(built.trainer.model.peft_config) == ["default"]
    assert built.trainer.model.active_adapters == ["default"]
    monkeypatch.setattr(dpo, "drop_ref_adapter", lambda trainer: None)
    unfixed = dpo.build_trainer(tiny_hf_dir, _pairs(), tmp_path / "b", CFG, CPU)
    assert "ref" in unfixed.trainer.model.peft_config  # what TRL does on its own


def test_dpo_child_imports_nothing_heavy_before_the_training_stack() -> None:
    """Importing the child's module must not import transformers/torch (Unsloth has to come first)."""
    code = (
        "import sys, caspo_lite.train.dpo_process as m; "
        "print(sorted(k for k in ('torch', 'transformers', 'trl') if k in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _adapter(rd: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(rd / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
def test_resumed_dpo_equals_uninterrupted_run(tiny_hf_dir: Path, tmp_path: Path) -> None:
    """Kill the DPO child at step 3 (checkpoint at 2), rerun: the adapter at step 4 equals an
    uninterrupted run's, tensor for tensor; no checkpoint carries a 'ref/' adapter."""
    import torch

    from caspo_lite.errors import TrainingFailed
    from caspo_lite.train.dpo_process import run_dpo_process

    whole = _round_dir(tmp_path / "whole")
    seen: list[tuple[int, int]] = []
    res = run_dpo_process(whole, tiny_hf_dir, CFG, CPU, on_progress=lambda s, t, _l: seen.append((s, t)))
    assert res["steps"] == 4 and res["resumed_from"] is None
    assert seen[-1] == (4, 4)  # progress came back over the pipe

    rd = _round_dir(tmp_path / "killed")
    with pytest.raises(TrainingFailed, match="killed by SIGKILL.*rerun the same command"):
        run_dpo_process(rd, tiny_hf_dir, CFG, CPU, env={**os.environ, "CASPO_LITE_FAULT": "dpo:3"})
    ckpt = rd / "dpo" / "checkpoint-2"
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "ref").exists()
    res = run_dpo_process(rd, tiny_hf_dir, CFG, CPU)
    assert res["resumed_from"] == "checkpoint-2" and res["steps"] == 4
    assert not (rd / "adapter" / "ref").exists()
    a, b = _adapter(whole), _adapter(rd)
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
    assert any(float(t.abs().max()) > 0 for n, t in a.items() if "lora_B" in n)  # it trained


@pytest.mark.slow
def test_dpo_child_crash_is_one_line_with_its_log(tmp_path: Path) -> None:
    from caspo_lite.errors import TrainingFailed
    from caspo_lite.train.dpo_process import run_dpo_process

    rd = _round_dir(tmp_path)
    with pytest.raises(TrainingFailed, match=r"failed with exit code 1: .*dpo_worker.log") as info:
        run_dpo_process(rd, tmp_path / "no-such-model", CFG, CPU)
    assert "\n" not in str(info.value)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_killing_train_kills_its_dpo_process(tiny_hf_dir: Path, tmp_path: Path) -> None:
    """kill -9 of the parent must not leave an orphan DPO process training on the card (the child
    asks for PR_SET_PDEATHSIG; failing that, its next progress write hits a broken pipe)."""
    import signal
    import time

    rd = _round_dir(tmp_path)
    code = (
        "import sys; from pathlib import Path; from caspo_lite.train.dpo_process import run_dpo_process; "
        "from caspo_lite.train.config import DpoSection; from caspo_lite.backend import Backend; "
        f"run_dpo_process(Path({str(rd)!r}), Path({str(tiny_hf_dir)!r}), "
        "DpoSection(max_steps=400, save_steps=400, batch_size=2, lora_r=4, lora_alpha=8, max_length=128), "
        "Backend('trl', 'cpu', 'test'))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        child = None
        for _ in range(600):  # wait until the child has started training (its log has lines)
            pids = subprocess.run(
                ["pgrep", "-P", str(parent.pid)], capture_output=True, text=True
            ).stdout.split()
            if pids and (rd / "dpo_log.jsonl").is_file():
                child = int(pids[0])
                break
            time.sleep(0.1)
        assert child is not None, (
            (rd / "dpo_worker.log").read_text() if (rd / "dpo_worker.log").exists() else ""
        )
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        for _ in range(100):
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            status = Path(f"/proc/{child}/stat")
            if status.exists() and status.read_text().split()[2] == "Z":
                break  # a zombie (dead, not yet reaped by init)
            time.sleep(0.1)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the DPO process outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_dpo_process_uses_the_card_and_frees_it(tiny_hf_dir: Path, tmp_path: Path) -> None:
    """On a CUDA card: DPO in its own process with the card's mixed precision; the parent holds
    no training memory afterwards."""
    import torch

    from caspo_lite.backend import choose_backend
    from caspo_lite.train.dpo_process import run_dpo_process

    backend = choose_backend("trl", device="cuda")
    assert backend.bf16 != backend.fp16
    before = torch.cuda.memory_allocated()
    res = run_dpo_process(_round_dir(tmp_path), tiny_hf_dir, CFG, backend)
    assert res["steps"] == 4 and res["peak_gpu_gb"] and res["peak_gpu_gb"] > 0
    assert torch.cuda.memory_allocated() == before


def test_heldout_split_is_stable_disjoint_and_sized() -> None:
    from caspo_lite.train.dpo import split_heldout

    pairs = _pairs(20)
    train, held = split_heldout(pairs, 0.1)
    assert len(held) == 2 and len(train) == 18
    keys = {(p.prompt, p.chosen, p.rejected) for p in held}
    assert not keys & {(p.prompt, p.chosen, p.rejected) for p in train}
    assert split_heldout(list(reversed(pairs)), 0.1)[1] == list(reversed(held))  # order-free
    assert split_heldout(_pairs(4), 0.1) == (_pairs(4), [])
    assert split_heldout(pairs, 0.0) == (pairs, [])


def test_heldout_pairs_never_reach_the_trainer(tiny_hf_dir: Path, tmp_path: Path) -> None:
    from caspo_lite.train import dpo

    pairs = _pairs(10)
    built = dpo.build_trainer(tiny_hf_dir, pairs, tmp_path, CFG, CPU)
    _, held = dpo.split_heldout(pairs, CFG.heldout_frac)
    assert held and built.heldout_rows == dpo.tokenize_pairs(held, built.tokenizer, CFG.max_length)
    trained = {
        (tuple(r["prompt_ids"]), tuple(r["chosen_ids"]), tuple(r["rejected_ids"]))
        for r in built.trainer.train_dataset
    }
    assert len(trained) == len(pairs) - len(held) == len(built.rows)
    for r in built.heldout_rows:
        assert (tuple(r["prompt_ids"]), tuple(r["chosen_ids"]), tuple(r["rejected_ids"])) not in trained
    assert "ref_chosen_logps" in built.trainer.train_dataset.column_names  # the reference, precomputed once


def test_the_sampled_ids_are_trained_not_a_retokenization(tiny_hf_dir: Path) -> None:
    """A step sampled one character a token re-tokenizes into merged tokens (a shifted boundary):
    the trained ids must be the sampled ones, and the difference is counted."""
    import dataclasses

    from transformers import AutoTokenizer

    from caspo_lite.train.dpo import tokenize_pairs

    tok = AutoTokenizer.from_pretrained(str(tiny_hf_dir))
    pair = _pairs(1)[0]
    sampled = [i for ch in pair.chosen for i in tok(ch, add_special_tokens=False)["input_ids"]]
    whole = tok(pair.chosen, add_special_tokens=False)["input_ids"]
    assert sampled != whole and tok.decode(sampled) == pair.chosen  # the case under test exists
    pair = dataclasses.replace(pair, chosen_token_ids=tuple(sampled), rejected_token_ids=(1, 2, 3))
    differ = [0]
    (row,) = tokenize_pairs([pair], tok, 128, differ)
    assert row["chosen_ids"] == sampled
    # ids that do not decode to the text (another vocabulary): the text is tokenized instead
    assert row["rejected_ids"] == tok(pair.rejected, add_special_tokens=False)["input_ids"]
    assert differ == [1]


def test_lora_on_the_mlp_projections_trains_them(tiny_hf_dir: Path, tmp_path: Path) -> None:
    """`dpo.target_modules` with the MLP projections (issue 13's option) puts adapters there and
    one DPO step moves them (LoRA's B matrices start at zero)."""
    from dataclasses import replace

    from caspo_lite.train import dpo

    cfg = replace(CFG, max_steps=1, target_modules=["q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"])
    built = dpo.build_trainer(tiny_hf_dir, _pairs(), tmp_path, cfg, CPU)
    model = built.trainer.model
    mlp_b = {n: p for n, p in model.named_parameters() if "lora_B" in n and ".mlp." in n}
    assert {n.split(".mlp.")[1].split(".")[0] for n in mlp_b} == {"gate_proj", "up_proj", "down_proj"}
    assert all(p.requires_grad and float(p.abs().sum()) == 0.0 for p in mlp_b.values())
    built.trainer.train()
    assert any(float(p.abs().sum()) > 0.0 for p in mlp_b.values())
