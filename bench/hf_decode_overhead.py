"""Framework time per decode step of the batched transformers sampler, at the recipes' depths.

Why: on a GPU a decode step of a small model is bound by the host (Python, module calls, kernel
launches), not by the card, and that host time barely depends on the width of the layers. So a
Qwen3 with the *depth* of Qwen3-0.6B (28 layers) or Qwen3-8B (36 layers) but a tiny width,
decoded on one CPU thread, measures the floor of the GPU step time of `HFEngine` (the recipes'
cost lines use it, labelled as estimates). The weights' read time (size / memory bandwidth) is
the other floor; a step costs about the larger of the two.

Usage: python bench/hf_decode_overhead.py [--layers 28 36] [--batch 8] [--steps 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class _Tok:
    eos_token_id = 0


def step_seconds(layers: int, batch: int, steps: int, prompt: int = 64) -> float:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from caspo_lite.engines.hf import HFEngine

    cfg = Qwen3Config(
        vocab_size=1024,
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
    )
    torch.manual_seed(0)
    engine = HFEngine(Qwen3ForCausalLM(cfg), _Tok(), n_ctx=prompt + steps + 8)
    s = engine.session(batch)
    row = s.prefill(list(range(1, prompt + 1)), 0)
    for q in range(1, batch):
        s.fork(0, q)
    toks = {q: int(row.argmax()) for q in range(batch)}
    toks = {q: int(r.argmax()) for q, r in s.decode(toks).items()}  # first call packs the batch
    t0 = time.perf_counter()
    for _ in range(steps):
        toks = {q: int(r.argmax()) for q, r in s.decode(toks).items()}
    return (time.perf_counter() - t0) / steps


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[28, 36])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"| layers | batch | ms per decode step (1 CPU thread, width 64) | torch {torch.__version__} |")
    print("| --- | --- | --- | --- |")
    for layers in args.layers:
        ms = 1000 * step_seconds(layers, args.batch, args.steps)
        print(f"| {layers} | {args.batch} | {ms:.1f} | |")


if __name__ == "__main__":
    main()
