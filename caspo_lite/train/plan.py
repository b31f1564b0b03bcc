"""``caspo-lite train --dry-run``: validate everything that can be checked without training, and say
what the run will do and roughly how much memory it needs.

The memory figure is a rule of thumb, not a measurement: weights (fp32 on CPU, bf16 on a GPU,
~0.5 byte/param in 4-bit) counted once — the reference is the same weights with the adapter
off — plus LoRA parameters with Adam state, plus activations for a batch of chosen+rejected
sequences at ``dpo.max_length`` (the policy pass; the reference pass keeps no activations),
plus the logits, which dominate for 150k-token vocabularies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from caspo_lite.backend import check_4bit, choose_backend
from caspo_lite.models import resolve_model
from caspo_lite.paths import cache_dir
from caspo_lite.runs import STAGES, RunDir
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.problems import build_task, split_problems


def _model_shape(hf_dir: Path | None) -> dict[str, int] | None:
    if hf_dir is None or not (hf_dir / "config.json").is_file():
        return None
    cfg = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    cfg = cfg.get("text_config", cfg)
    h, layers, vocab = cfg.get("hidden_size"), cfg.get("num_hidden_layers"), cfg.get("vocab_size")
    inter = cfg.get("intermediate_size", 4 * (h or 0))
    if not (h and layers and vocab):
        return None
    params = layers * (4 * h * h + 3 * h * inter) + 2 * vocab * h
    return {"hidden": h, "layers": layers, "vocab": vocab, "params": params}


def memory_estimate_gb(shape: dict[str, int], cfg: TrainConfig, device: str) -> float:
    bytes_w = 0.5 if cfg.dpo.load_in_4bit else (2 if device == "cuda" else 4)
    weights = shape["params"] * bytes_w
    n_mod = len(cfg.dpo.target_modules)
    lora = shape["layers"] * n_mod * 2 * cfg.dpo.lora_r * shape["hidden"] * 4 * 4  # fp32 + grad + Adam m, v
    act_b = 2 if device == "cuda" else 4  # activations are bf16 on a GPU (also under 4-bit weights)
    tokens = 2 * cfg.dpo.batch_size * cfg.dpo.max_length  # chosen + rejected
    # ~34 bytes per hidden unit per layer at 16 bit without recomputation (Korthikanti et al. 2022);
    # with gradient checkpointing only each layer's input is kept.
    per_layer = 2 * act_b if cfg.dpo.gradient_checkpointing else 17 * act_b
    per_token = shape["hidden"] * shape["layers"] * per_layer
    logits = tokens * shape["vocab"] * (act_b + 4)  # logits + an fp32 log-softmax
    return (weights + lora + tokens * per_token + logits) / 2**30


def plan(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """What `train` would do, after resolving the task, its problems and (when local) the model."""
    task = build_task(cfg)
    train, dev = split_problems(task, cfg)
    backend = choose_backend(cfg.dpo.backend)
    check_4bit(backend, cfg.dpo.load_in_4bit)
    hf_dir = None
    try:
        ref = resolve_model(cfg.model.name)
        hf_dir = ref.path if ref.kind == "hf" else None
        if ref.kind == "builtin" and cfg.model.name == "tiny":  # only if built: a dry run builds nothing
            hf_dir = cache_dir() / "tiny" / "hf"
    except Exception:  # noqa: BLE001 - the plan reports what it could not resolve instead of failing
        hf_dir = None
    shape = _model_shape(hf_dir)
    run = RunDir(Path(out))
    finished = []
    for r in range(1, cfg.rounds.n + 1):
        ledger = run.round(r).ledger
        if ledger.is_file():
            stages = json.loads(ledger.read_text(encoding="utf-8")).get("stages", {})
            finished.append({"round": r, "done": [s for s in STAGES if stages.get(s, {}).get("done")]})
    return {
        "out": str(out),
        "model": cfg.model.name,
        "task": f"{cfg.task.name} (level {cfg.task.level})" if cfg.task.name == "arith" else cfg.task.name,
        "train_problems": len(train),
        "dev_problems": len(dev),
        "rounds": cfg.rounds.n,
        "samples_per_round": len(train) * cfg.sample.n,
        "sampling_engine": cfg.sample.engine,
        "labeler": cfg.labels.labeler,
        "pairs": f"{cfg.pairs.mode} mode, types {'/'.join(cfg.pairs.types)}, "
        f"<= {cfg.pairs.max_per_problem} per problem, {cfg.pairs.alt_samples} steps resampled per "
        "candidate prefix lacking an alternative",
        "backend": f"{backend.name} on {backend.device} ({backend.reason})",
        "model_params_m": round(shape["params"] / 1e6, 1) if shape else None,
        "memory_estimate_gb": round(memory_estimate_gb(shape, cfg, backend.device), 2) if shape else None,
        "resume": finished,
    }
