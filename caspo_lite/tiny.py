"""The built-in `tiny` model: a few-MB Llama (or Qwen2/Qwen3) we build ourselves, offline, in seconds.

Why: the HF -> GGUF -> llama.cpp round trip, the engines and one-round DPO smoke tests need a
real model, but no weights can be downloaded. So we train a byte-level BPE tokenizer on `arith`
problems, build a small causal LM with a ChatML template, and give it a few hundred SFT steps
on the chat rendering of those problems so its outputs look like arithmetic steps, not noise.

Everything is seeded and trained on one thread, so two builds give the same bytes (tests check
the weights' sha256). `ensure_tiny()` caches the default build under `cache_dir()/"tiny"`
(HF folder + f32 GGUF + a version stamp), built in a temp folder and renamed into place under a
file lock, so concurrent processes never see a half-written model.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from caspo_lite.paths import cache_dir
from caspo_lite.quant.gguf_writer import write_gguf
from caspo_lite.tasks.arith import ArithTask, format_solution, get_level
from caspo_lite.tasks.base import Message

log = logging.getLogger(__name__)

TINY_VERSION = 1  # bump when the recipe changes: cached builds with another stamp are rebuilt
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen2's pre-tokenizer regex (digits split one by one): transformers' Qwen2Tokenizer imposes it on
# any qwen2/qwen3 folder, so tiny Qwen models are trained with it too and the two views agree.
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
ARCHS = {  # name -> (config class, model class) in transformers
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
}


@dataclass(frozen=True)
class TinySpec:
    """The recipe of one tiny build; every field changes the bytes, so all go into the stamp."""

    arch: str = "llama"
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    max_vocab: int = 1024  # BPE stops earlier on our small corpus (~500 tokens)
    n_problems: int = 600  # per level
    levels: tuple[str, ...] = ("easy", "default")  # arith presets, put to the model as chat
    steps: int = 400
    batch: int = 8
    lr: float = 3e-3
    seed: int = 0
    tie_embeddings: bool = False


@dataclass(frozen=True)
class TinyModel:
    """Paths of the cached default build."""

    root: Path
    hf_dir: Path
    gguf: Path  # f32, exact parity with transformers


def render_chatml(messages: Sequence[Message], add_generation_prompt: bool = False) -> str:
    """Pure-Python twin of CHATML_TEMPLATE (tests check they agree), usable before a tokenizer exists."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def training_pairs(n: int, levels: Sequence[str], seed: int) -> list[tuple[str, str]]:
    """(prompt, completion) pairs: the arith task's chat prompt and its gold step-by-step solution.

    n problems per level, from the train split, each level forced to the chat prompt format.
    """
    pairs = []
    for level in levels:
        task = ArithTask(level=replace(get_level(level), prompt="chat"))
        for p in task.load(n, seed=seed, split="train"):
            prompt = render_chatml(task.prompt(p).messages, add_generation_prompt=True)
            pairs.append((prompt, format_solution(p) + "<|im_end|>"))
    return pairs


def train_tokenizer(texts: Sequence[str], spec: TinySpec) -> Any:
    """Byte-level BPE with ChatML specials; GPT-2 regex for llama, Qwen2 regex for qwen archs."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if spec.arch == "llama":  # llama.cpp pre "gpt-2"
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:  # llama.cpp pre "qwen2"
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=spec.max_vocab,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    hf_tok.chat_template = CHATML_TEMPLATE
    return hf_tok


def make_model(spec: TinySpec, tokenizer: Any) -> Any:
    """A randomly initialised (seeded) causal LM of the chosen architecture."""
    import torch
    import transformers

    if spec.arch not in ARCHS:
        raise ValueError(f"arch {spec.arch!r} is not one of {', '.join(ARCHS)}")
    config_cls, model_cls = (getattr(transformers, n) for n in ARCHS[spec.arch])
    extra: dict[str, Any] = {"head_dim": spec.hidden // spec.heads} if spec.arch == "qwen3" else {}
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=3 * spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        tie_word_embeddings=spec.tie_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )
    torch.manual_seed(spec.seed)
    return model_cls(config)


def sft(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], spec: TinySpec) -> list[float]:
    """A plain AdamW loop, loss on completion tokens only; returns the loss per step."""
    import torch

    encoded = []
    for prompt, completion in pairs:
        p_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        c_ids = tokenizer(completion, add_special_tokens=False).input_ids
        encoded.append((p_ids + c_ids, [-100] * len(p_ids) + c_ids))
    rng = random.Random(spec.seed)
    optim = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.0)
    # linear warm-up then linear decay: converges in fewer steps than a constant rate
    warmup = max(1, spec.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda t: min((t + 1) / warmup, max(0.05, (spec.steps - t) / (spec.steps - warmup)))
    )
    model.train()
    losses = []
    for _ in range(spec.steps):
        batch = rng.sample(encoded, spec.batch)
        width = max(len(ids) for ids, _ in batch)
        pad = tokenizer.pad_token_id
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        losses.append(loss.item())
    model.eval()
    return losses


def build_tiny(out_dir: Path, hidden: int = 64, arch: str = "llama", **overrides: Any) -> Path:
    """Build a tiny model into `out_dir` (an HF folder: safetensors, tokenizer, chat template).

    Args:
        out_dir: folder to write (created; existing files are overwritten).
        hidden: hidden size (use 256 where real K-quant blocks are needed).
        arch: "llama", "qwen2" or "qwen3".
        overrides: any other TinySpec field, e.g. steps=0 for an untrained model in <2 s.
    Returns:
        out_dir. A `tiny.json` beside the weights records the spec and the SFT losses.
    """
    import torch

    spec = TinySpec(arch=arch, hidden=hidden, **overrides)
    pairs = training_pairs(spec.n_problems, spec.levels, spec.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # cheap at this size and makes the float sums run in one fixed order
    try:
        tokenizer = train_tokenizer([p + c for p, c in pairs], spec)
        model = make_model(spec, tokenizer)
        losses = sft(model, tokenizer, pairs, spec) if spec.steps else []
    finally:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    record = {"version": TINY_VERSION, "spec": asdict(spec), "losses": [round(x, 4) for x in losses]}
    (out_dir / "tiny.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    log.info(
        "built tiny %s model in %s (loss %s)", arch, out_dir, losses and f"{losses[0]:.2f}->{losses[-1]:.2f}"
    )
    return out_dir


def _stamp() -> dict[str, Any]:
    """What a cached build must match, as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps({"version": TINY_VERSION, "spec": asdict(TinySpec())}))


def _is_fresh(root: Path) -> bool:
    try:
        stamp = json.loads((root / "stamp.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp == _stamp() and (root / "hf" / "config.json").exists() and (root / "tiny-f32.gguf").exists()


def ensure_tiny() -> TinyModel:
    """Return the cached default tiny model, building it first (~10-30 s) if absent or stale."""
    from filelock import FileLock

    base = cache_dir()
    root = base / "tiny"
    result = TinyModel(root=root, hf_dir=root / "hf", gguf=root / "tiny-f32.gguf")
    if _is_fresh(root):
        return result
    with FileLock(str(base / "tiny.lock")):
        if _is_fresh(root):  # another process built it while we waited
            return result
        tmp = base / f".tiny.tmp-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        build_tiny(tmp / "hf")
        write_gguf(tmp / "hf", tmp / "tiny-f32.gguf", dtype="f32")
        (tmp / "stamp.json").write_text(json.dumps(_stamp()), encoding="utf-8")
        if root.exists():  # stale: move aside first, since a folder cannot be replaced in one rename
            old = base / f".tiny.old-{os.getpid()}-{threading.get_ident()}"
            os.replace(root, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, root)
    return result
