"""Prove the gaming-GPU training path on one CUDA card in about 10 minutes (issue #14).

What it does, in order, printing one line per figure and writing ``OUT/gpu_proof.json``:

1. preflight: versions, the card (name, compute capability, native bf16), whether Unsloth
   imports (in a throw-away process: this process samples and must never import it) and
   whether bitsandbytes does.
2. builds a tiny Qwen3 locally (``caspo_lite.tiny.build_tiny``: BPE tokenizer + Qwen3Config +
   a short SFT on `arith`; no download).
3. one CASPO round on it (sample with the batched transformers sampler, verify labels, step
   pairs, DPO in its own process) with Unsloth where it imports and plain TRL otherwise: the DPO
   process is SIGKILLed at step 3 once (``CASPO_LITE_FAULT=dpo:3``) and the rerun must resume
   from ``checkpoint-2``. Then the same round with 4-bit weights (Unsloth only: without it the
   one-line refusal is the expected result).
4. greedy tokens of the new policy sampled in THIS process (after the DPO processes ran) must
   equal those of a fresh process.
5. figures: peak VRAM (``torch.cuda.max_memory_allocated``) of sampling and of each DPO process,
   sampling tokens/s (batch 8) and DPO steps/s.
6. 8B-shaped (and 0.6B-shaped) random Qwen3 models with 2 and 4 layers: VRAM of one DPO step at
   the recipes' settings and of batched sampling, extrapolated per layer to the full depth of
   ``recipes/qwen3-0.6b-gsm8k-8gb.toml`` (28 layers, also measured directly) and
   ``recipes/qwen3-8b-base-math-24gb.toml`` (36 layers, 4-bit when bitsandbytes imports).

Usage::

    python bench/gpu_proof.py --out runs/gpu_proof             # on a CUDA machine, ~10 min
    python bench/gpu_proof.py --cpu-smoke --out runs/gpu_smoke  # everything but the CUDA-only figures

``--cpu-smoke`` runs every step on the CPU with the plain-TRL backend and small shapes (no VRAM
figures; 4-bit is checked to be refused in one line) so the script is known to work before a
GPU is spent on it.

Carrying the wheels to a bare CUDA box
--------------------------------------
The box needs torch (a CUDA build), transformers, peft and accelerate; everything else comes
as wheels, downloaded on a machine with internet for the box's Python and platform, WITHOUT
dependencies (``--no-deps``: Unsloth's own pins would otherwise pull another torch and
transformers)::

    W=wheels; PY=311; PLAT=manylinux2014_x86_64
    pip download --no-deps -d $W --python-version $PY --platform $PLAT --only-binary=:all: \\
        trl datasets pyarrow dill xxhash multiprocess pandas python-dateutil pytz tzdata \\
        platformdirs filelock gguf bitsandbytes \\
        unsloth unsloth_zoo tyro docstring-parser shtab typeguard cut_cross_entropy torchao \\
        msgspec sentencepiece protobuf hf_transfer psutil
    du -sh $W
    # on the box:
    pip install --no-deps --no-index $W/*.whl

Sizes measured here (2026-12-04, CPython 3.11, Linux x86_64): ``pip download --no-deps trl
datasets -d /tmp/wheels`` gave trl-1.16.0 (0.95 MB) + datasets-5.2.0 (0.61 MB) = 1.5 MB
(``du -sh``). datasets' own dependencies were not downloaded here; installed in this venv they
take pyarrow 170 MB, pandas 84 MB, xxhash 2.1 MB, fsspec 2.2 MB, multiprocess 1.6 MB, dill
1.1 MB, gguf 1.4 MB, platformdirs 0.5 MB (wheels are smaller: they are compressed). bitsandbytes,
unsloth and unsloth_zoo were not downloaded (not to be installed here); measure them with
``du`` before the trip. Unsloth-zoo pins ``trl<=1.13`` and ``transformers<=5.17``: carry
``trl==1.13.0`` for a box with transformers <= 5.17; with a newer transformers Unsloth may
refuse to import, and the proof then runs the plain-TRL path and says why.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PACKAGES = (
    "torch", "transformers", "peft", "accelerate", "trl", "datasets", "bitsandbytes", "unsloth",
    "unsloth_zoo", "llama_cpp_python", "gguf",
)  # fmt: skip
# Qwen3 shapes of the two GPU recipes (config.json of Qwen/Qwen3-0.6B and Qwen/Qwen3-8B-Base)
SHAPES = {
    "qwen3-0.6b": dict(
        hidden=1024, inter=3072, heads=16, kv=8, head_dim=128, vocab=151936, layers=28, tied=True
    ),
    "qwen3-8b": dict(
        hidden=4096, inter=12288, heads=32, kv=8, head_dim=128, vocab=151936, layers=36, tied=False
    ),
}
SMOKE_SHAPE = dict(hidden=128, inter=384, heads=4, kv=2, head_dim=32, vocab=2048, layers=4, tied=False)
# the recipes' DPO settings (batch 2 pairs, LoRA targets, lengths, gradient checkpointing)
RECIPE_DPO = {
    "qwen3-0.6b": dict(batch=2, length=1024, r=16, targets=["q_proj", "k_proj", "v_proj", "o_proj"], bits=16),
    "qwen3-8b": dict(batch=2, length=1536, r=32, targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                          "up_proj", "down_proj"], bits=4),
}  # fmt: skip
RESULTS: dict[str, Any] = {}


def say(key: str, value: Any, note: str = "") -> None:
    """One figure: printed as a line and kept for gpu_proof.json."""
    RESULTS[key] = value
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    print(f"[gpu_proof] {key}: {text}{'  (' + note + ')' if note else ''}", flush=True)


def gib(n_bytes: float) -> float:
    return round(n_bytes / 2**30, 3)


# --- 1. preflight ------------------------------------------------------------------------------


def preflight(cuda: bool) -> dict[str, Any]:
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    say("versions", versions)
    if cuda:
        props = torch.cuda.get_device_properties(0)
        say(
            "device",
            f"{props.name}, {gib(props.total_memory)} GiB, compute capability {props.major}.{props.minor}",
        )
    from caspo_lite.backend import cuda_bf16_native

    say("native_bf16", cuda_bf16_native(), "fp16 mixed precision when False")
    missing = [m for m in ("trl", "datasets", "platformdirs") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(f"gpu_proof: missing {', '.join(missing)}; carry their wheels (see the docstring)")
    unsloth = "not installed"
    if importlib.util.find_spec("unsloth") is not None:
        from caspo_lite.backend import probe_unsloth
        from caspo_lite.errors import BackendUnavailable

        try:
            probe_unsloth()
            unsloth = "imports"
        except BackendUnavailable as exc:
            unsloth = f"does not import: {exc}"
    say("unsloth", unsloth)
    bnb = "not installed"
    if importlib.util.find_spec("bitsandbytes") is not None:
        proc = subprocess.run([sys.executable, "-c", "import bitsandbytes"], capture_output=True, text=True)
        bnb = (
            "imports" if proc.returncode == 0 else f"does not import: {proc.stderr.strip().splitlines()[-1:]}"
        )
    say("bitsandbytes", bnb)
    return {"unsloth": unsloth == "imports", "bnb": bnb == "imports"}


# --- 2. the tiny Qwen3 ---------------------------------------------------------------------------


def build_model(out: Path, smoke: bool) -> Path:
    from caspo_lite.tiny import build_tiny

    hf = out / "tiny-qwen3"
    if (hf / "config.json").is_file():
        return hf
    t0 = time.perf_counter()
    build_tiny(hf, hidden=128, arch="qwen3", heads=4, kv_heads=2, steps=200 if smoke else 300)
    say("tiny_build_s", time.perf_counter() - t0, "Qwen3Config + local BPE tokenizer + SFT on arith, CPU")
    return hf


# --- 3-5. one CASPO round, killed and resumed ----------------------------------------------------


def round_overrides(model: Path, backend: str, four_bit: bool) -> list[str]:
    """tiny-ci, one round, on the tiny Qwen3, sampling with the batched transformers sampler."""
    return [
        f"model.name='{model}'",
        "sample.engine='hf'",  # the batched transformers sampler is what is under test here
        "rounds.n=1",
        "task.n_train=12",
        "task.n_dev=4",
        f"dpo.backend='{backend}'",
        f"dpo.load_in_4bit={'true' if four_bit else 'false'}",
        "dpo.max_steps=4",
        "dpo.save_steps=2",
    ]


RECIPE = REPO / "recipes" / "tiny-ci.toml"


def round_config(model: Path, backend: str, four_bit: bool) -> Any:
    from caspo_lite.train.config import load_train_config

    return load_train_config(RECIPE, round_overrides(model, backend, four_bit))


def run_round(model: Path, backend: str, four_bit: bool, out: Path, kill: bool, label: str) -> dict[str, Any]:
    """``caspo-lite train`` SIGKILLed at DPO step 3 (when ``kill``), then resumed here to the end."""
    import torch

    from caspo_lite.train.ledger import FAULT_ENV, read_jsonl
    from caspo_lite.train.rounds import train

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    if kill:  # the whole command, as `kill -9` would: its DPO process goes with it
        sets = [a for o in round_overrides(model, backend, four_bit) for a in ("--set", o)]
        cmd = [
            sys.executable,
            "-m",
            "caspo_lite.cli",
            "train",
            "--recipe",
            str(RECIPE),
            *sets,
            "--out",
            str(out),
        ]
        env = {**os.environ, FAULT_ENV: "dpo:3", "PYTHONPATH": str(REPO)}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        ckpts = sorted(p.name for p in (out / "round-1" / "dpo").glob("checkpoint-*"))
        say(f"{label}/kill", f"exit {proc.returncode} (-9 expected), checkpoints left: {ckpts}")
    t0 = time.perf_counter()
    train(round_config(model, backend, four_bit), out)
    wall = time.perf_counter() - t0
    rd = out / "round-1"
    stages = json.loads((rd / "ledger.json").read_text())["stages"]
    dpo = stages["dpo"]
    tokens = sum(
        s["n_tokens"] for rec in read_jsonl(rd / "samples.jsonl", "problem_id") for s in rec["solutions"]
    )
    logs = [json.loads(line) for line in (rd / "dpo_log.jsonl").read_text().splitlines() if line.strip()]
    sps = next(
        (row["train_steps_per_second"] for row in reversed(logs) if "train_steps_per_second" in row), None
    )
    say(f"{label}/backend", f"{dpo['backend']} ({dpo['reason']})")
    say(
        f"{label}/resumed_from",
        dpo.get("resumed_from"),
        "checkpoint-2 expected after the kill" if kill else "",
    )
    say(f"{label}/dpo_steps", dpo["steps"])
    say(f"{label}/dpo_steps_per_s", sps, "Trainer's own figure for the last (resumed) run")
    say(f"{label}/dpo_peak_vram_gib", dpo.get("peak_gpu_gb"), "of the DPO process")
    say(f"{label}/reward_margin", dpo["reward_margin"])
    say(
        f"{label}/sample_tokens_per_s",
        tokens / stages["sample"]["time_s"],
        f"{tokens} tokens incl. model load",
    )
    say(f"{label}/sample_engine", stages["sample"].get("engine"))
    if torch.cuda.is_available():
        note = "this process: the resumed round's dev stage (batched sampler, greedy)"
        say(f"{label}/parent_peak_vram_gib", gib(torch.cuda.max_memory_allocated()), note)
    say(f"{label}/resume_wall_s", wall)
    return dpo


def greedy_tokens(model_dir: Path, n_tokens: int = 16) -> list[list[int]]:
    """Greedy continuations of four prompts, all four advanced in one batched forward per token."""
    from caspo_lite.engines.hf import HFEngine
    from caspo_lite.tasks.base import Prompt

    engine = HFEngine.load(model_dir)
    prompts = [f"What is {a} + {b}?" for a, b in ((2, 3), (17, 25), (40, 2), (9, 99))]
    s = engine.session(len(prompts))
    rows = {
        i: s.prefill(engine.render(Prompt(messages=({"role": "user", "content": p},))), i)
        for i, p in enumerate(prompts)
    }
    out: dict[int, list[int]] = {i: [] for i in rows}
    for _ in range(n_tokens):
        toks = {i: int(r.argmax()) for i, r in rows.items()}
        for i, t in toks.items():
            out[i].append(t)
        rows = s.decode(toks)
    engine.close()
    return [out[i] for i in sorted(out)]


def same_vs_fresh(model_dir: Path) -> None:
    here = greedy_tokens(model_dir)
    code = (
        f"import json, sys; sys.path.insert(0, {str(REPO)!r}); from bench.gpu_proof import greedy_tokens; "
        f"from pathlib import Path; print(json.dumps(greedy_tokens(Path({str(model_dir)!r}))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        say("same_vs_fresh", f"fresh process failed: {proc.stderr.strip().splitlines()[-1:]}")
        return
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    verdict = "equal" if fresh == here else f"DIFFERENT: {here} vs {fresh}"
    say("same_vs_fresh", verdict, "greedy tokens after DPO, this process vs a fresh one")


def sampling_speed(model_dir: Path, batch: int = 8, steps: int = 64) -> None:
    """Pure decode throughput of the batched sampler: ``batch`` branches of one prompt."""
    import torch

    from caspo_lite.engines.hf import HFEngine

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    engine = HFEngine.load(model_dir)
    s = engine.session(batch)
    row = s.prefill(engine.tokenize("Step 1: 12 + 30 = 42\nStep 2:"), 0)
    for q in range(1, batch):
        s.fork(0, q)
    toks = {q: int(row.argmax()) for q in range(batch)}
    t0 = time.perf_counter()
    for _ in range(steps):
        rows = s.decode(toks)
        toks = {q: int(r.argmax()) for q, r in rows.items()}
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if torch.cuda.is_available():
        say("tiny/sampling_peak_vram_gib", gib(torch.cuda.max_memory_allocated()), "batch 8, 16-bit weights")
    say(
        "tiny/sampling_tokens_per_s_batch8",
        batch * steps / dt,
        f"{steps} steps x {batch} branches, tiny model",
    )
    engine.close()


# --- 6. recipe-shaped random models ---------------------------------------------------------------


class _StubTokenizer:
    eos_token_id = 0


def _qwen3(shape: dict[str, Any], layers: int, dtype: Any, device: str) -> Any:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["inter"],
        num_hidden_layers=layers,
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv"],
        head_dim=shape["head_dim"],
        tie_word_embeddings=shape["tied"],
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(cfg)
    return model.to(dtype)


def _load_4bit(shape: dict[str, Any], layers: int, work: Path) -> Any:
    """Save a random bf16 model and load it back through bitsandbytes NF4 (what QLoRA trains on)."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    folder = work / f"shaped-{shape['hidden']}-{layers}"
    if not (folder / "config.json").is_file():
        _qwen3(shape, layers, torch.bfloat16, "cpu").save_pretrained(folder)
    q = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
    )
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=q, device_map={"": 0})


def dpo_step_memory(model: Any, dpo: dict[str, Any], device: str, vocab: int) -> tuple[float, float]:
    """(peak bytes, seconds) of one DPO step at the recipe's batch/length/LoRA, gradient checkpointing on."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        model, LoraConfig(r=dpo["r"], lora_alpha=2 * dpo["r"], target_modules=dpo["targets"])
    )
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.enable_input_require_grads()
    model.config.use_cache = False
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(0, vocab, (2 * dpo["batch"], dpo["length"]), device=device)  # chosen + rejected rows

    from trl.trainer.utils import selective_log_softmax  # what TRL's DPO loss uses: no full fp32 copy

    def logps(m: Any) -> Any:
        return selective_log_softmax(m(input_ids=ids).logits[:, :-1], ids[:, 1:]).sum(-1)

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model.train()
    with torch.no_grad(), model.disable_adapter():
        ref = logps(model)
    pol = logps(model)
    n = dpo["batch"]
    margin = (pol[:n] - ref[:n]) - (pol[n:] - ref[n:])
    loss = -torch.nn.functional.logsigmoid(0.1 * margin).mean()
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else 0.0
    if device == "cuda":
        torch.cuda.synchronize()
    return float(peak), time.perf_counter() - t0


def decode_memory(
    model: Any, device: str, batch: int = 8, prompt: int = 256, steps: int = 32
) -> tuple[float, float]:
    """(peak bytes, seconds per decode step) of the batched sampler: ``batch`` branches of one prompt."""
    import torch

    from caspo_lite.engines.hf import HFEngine

    engine = HFEngine(model, _StubTokenizer(), device=device, n_ctx=prompt + steps + 8)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    s = engine.session(batch)
    row = s.prefill(list(range(1, prompt + 1)), 0)
    for q in range(1, batch):
        s.fork(0, q)
    toks = {q: int(row.argmax()) for q in range(batch)}
    t0 = time.perf_counter()
    for _ in range(steps):
        toks = {q: int(r.argmax()) for q, r in s.decode(toks).items()}
    if device == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    s.close()
    return (float(torch.cuda.max_memory_allocated()) if device == "cuda" else 0.0), dt


def shaped(name: str, shape: dict[str, Any], dpo: dict[str, Any], device: str, bnb: bool, work: Path) -> None:
    """Measure at 2 and 4 layers, extrapolate linearly per layer to the recipe's depth."""
    import gc

    import torch

    four_bit = dpo["bits"] == 4 and bnb and device == "cuda"
    dtype = torch.float32
    if device == "cuda":
        dtype = torch.bfloat16 if caps_bf16() else torch.float16
    train_peak, decode_peak, decode_dt = {}, {}, {}
    for layers in (2, 4):
        model = _load_4bit(shape, layers, work) if four_bit else _qwen3(shape, layers, dtype, device)
        decode_peak[layers], decode_dt[layers] = decode_memory(model, device)
        train_peak[layers], step_s = dpo_step_memory(model, dpo, device, shape["vocab"])
        say(f"{name}/{layers}L/dpo_step_s", step_s)
        del model
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    full = shape["layers"]
    bits = "4-bit NF4" if four_bit else str(dtype).replace("torch.", "")
    for what, peak in (("dpo_step", train_peak), ("sampling_b8", decode_peak)):
        if device != "cuda":
            say(f"{name}/{what}_peak_vram_gib", None, "no CUDA: code path exercised, no figure")
            continue
        per_layer = (peak[4] - peak[2]) / 2
        total = peak[2] + (full - 2) * per_layer
        say(f"{name}/{what}_vram_per_layer_gib", gib(per_layer), bits)
        say(
            f"{name}/{what}_peak_vram_gib_at_{full}_layers",
            gib(total),
            f"extrapolated from 2 and 4 layers, {bits}",
        )
    step = (decode_dt[4] - decode_dt[2]) / 2
    est = decode_dt[2] + (full - 2) * step
    note = "extrapolated from 2 and 4 layers, batch 8, 256-token prompt"
    say(f"{name}/sampling_tokens_per_s_b8_at_{full}_layers", 8 / est if est > 0 else None, note)


# --- main -------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gpu_proof")
    parser.add_argument(
        "--cpu-smoke",
        "--dry-run",
        action="store_true",
        dest="smoke",
        help="run every step on the CPU with small shapes (no CUDA-only figures)",
    )
    parser.add_argument("--skip-shaped", action="store_true", help="skip step 6 (recipe-shaped models)")
    args = parser.parse_args(argv)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        raise SystemExit("gpu_proof: no CUDA device; run with --cpu-smoke to check the script on a CPU")
    if args.smoke:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # children too: the CPU path end to end
        os.environ.setdefault("CASPO_LITE_BACKEND", "trl")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CASPO_LITE_HOME", str(args.out / "home"))
    args.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    caps = preflight(cuda)
    model = build_model(args.out, args.smoke)

    backend = "auto" if caps["unsloth"] else "trl"
    run16 = args.out / "round-16bit"
    run_round(model, backend, False, run16, kill=True, label="16bit")
    merged = run16 / "round-1" / "merged"
    same_vs_fresh(merged)
    sampling_speed(merged)
    if caps["unsloth"] and cuda:
        run_round(model, "unsloth", True, args.out / "round-4bit", kill=False, label="4bit")
    else:
        from caspo_lite.errors import ConfigError
        from caspo_lite.train.rounds import start_backend

        try:
            start_backend(round_config(model, "auto", True))  # auto resolves to trl here
            say("4bit", "NOT REFUSED without Unsloth")
        except ConfigError as exc:
            say("4bit", f"refused as expected: {exc}")
    if not args.skip_shaped:
        device = "cuda" if cuda else "cpu"
        shapes = SHAPES if cuda else {"smoke-shaped": SMOKE_SHAPE}
        for name, shape in shapes.items():
            dpo = RECIPE_DPO.get(name, dict(batch=2, length=64, r=4, targets=["q_proj", "v_proj"], bits=16))
            shaped(name, shape, dpo, device, caps["bnb"], args.out)
        if cuda:  # the 0.6B model is small enough to measure at full depth too
            m = _qwen3(SHAPES["qwen3-0.6b"], 28, torch.bfloat16 if caps_bf16() else torch.float16, "cuda")
            peak, _ = dpo_step_memory(m, RECIPE_DPO["qwen3-0.6b"], "cuda", SHAPES["qwen3-0.6b"]["vocab"])
            say(
                "qwen3-0.6b/dpo_step_peak_vram_gib_measured_28_layers",
                gib(peak),
                "random weights, full depth",
            )
    say("total_wall_s", time.perf_counter() - t_start)
    (args.out / "gpu_proof.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    return 0


def caps_bf16() -> bool:
    from caspo_lite.backend import cuda_bf16_native

    return cuda_bf16_native()


if __name__ == "__main__":
    sys.exit(main())
