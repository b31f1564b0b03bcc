"""The training config: the shared sections plus sample, labels, pairs, dpo and rounds.

`TrainConfig` is what a recipe in ``recipes/`` describes and what each round folder stores
as ``config.toml`` (fully resolved). Load it with `load_train_config`, which is
``config.load_config(path, overrides, cls=TrainConfig)`` — unknown keys, wrong types and
out-of-range values are one-line `ConfigError`s naming the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite.confidence import PATH_MODES, SIGNALS
from caspo_lite.config import (
    CaspoConfig,
    _f,
    load_config,
    to_dict,
)
from caspo_lite.labeler_registry import LABELERS
from caspo_lite.pairs import MODES, PairRule


def _choice(name: str, value: str, options: tuple[str, ...] | list[str]) -> None:
    if value not in options:
        raise ValueError(f"{name} = {value!r} is not one of {', '.join(options)}")


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass
class SampleSection:
    n: int = _f(8, "Solutions sampled per training problem per round.")
    temperature: float = _f(0.8, "Sampling temperature (> 0: the pairs need diversity).")
    top_p: float = _f(0.95, "Nucleus cut for sampling.")
    max_tokens: int = _f(256, "Max new tokens per solution.")
    engine: str = _f(
        "auto",
        "auto (llama_cpp on CPU and on a GPU build of it, all layers offloaded; else the batched hf "
        "sampler in 16 bit on a GPU), llama_cpp, or hf.",
    )
    gguf_dtype: str = _f("f32", "GGUF export of the policy for llama.cpp sampling: f32 or f16 (never lossy).")
    prompt_style: str = _f(
        "task",
        "Prompt format: task (the task's default), chat, fewshot, or fewshot-train (GSM8K train shots).",
    )
    seed: int = _f(0, "Base seed; problem i of round r uses a seed derived from (seed, r, problem id).")
    threads: int = _f(0, "CPU threads for llama.cpp (0 = all cores).")
    endpoint: str = _f("", "engine = openai: the endpoint's base URL, e.g. http://host:8000/v1.")
    endpoint_model: str = _f(
        "", "engine = openai: the served model name; '{round}' becomes the round number (0 = base)."
    )
    endpoint_vocab: int = _f(0, "engine = openai: vocabulary size V (0 = the policy tokenizer's).")
    entropy_bound: str = _f(
        "lower", "engine = openai: top-k logprobs only bound the entropy; use the lower or upper bound."
    )
    top_logprobs: int = _f(20, "engine = openai: top-k logprobs asked per token (servers cap it at 20).")
    concurrency: int = _f(8, "engine = openai: requests in flight at once.")

    def __post_init__(self) -> None:
        _positive("sample.n", self.n)
        _positive("sample.temperature", self.temperature)
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"sample.top_p must be in (0, 1], got {self.top_p}")
        _positive("sample.max_tokens", self.max_tokens)
        _choice("sample.engine", self.engine, ("auto", "llama_cpp", "hf", "openai"))
        _choice("sample.entropy_bound", self.entropy_bound, ("lower", "upper"))
        _positive("sample.concurrency", self.concurrency)
        _positive("sample.endpoint_vocab", self.endpoint_vocab, allow_zero=True)
        if self.engine == "openai" and not (self.endpoint and self.endpoint_model):
            raise ValueError(
                "sample.engine = 'openai' needs sample.endpoint (e.g. http://host:8000/v1) "
                "and sample.endpoint_model"
            )
        _choice("sample.prompt_style", self.prompt_style, ("task", "chat", "fewshot", "fewshot-train"))
        _choice("sample.gguf_dtype", self.gguf_dtype, ("f32", "f16"))
        _positive("sample.threads", self.threads, allow_zero=True)


@dataclass
class LabelsSection:
    labeler: str = _f(
        "verify",
        "Step labeler: verify (arithmetic, licensed operands, path to gold), rollout, verify+rollout, judge.",
    )
    rollout_k: int = _f(4, "rollout: completions sampled from each step's prefix.")
    rollout_min_frac: float = _f(
        0.5, "rollout: a step is correct if at least this share reaches the gold answer."
    )
    rollout_max_tokens: int = _f(192, "rollout: max new tokens per completion.")
    judge_model: str = _f("", "judge: model reference of the judge (any model the engines load).")
    judge_max_tokens: int = _f(8, "judge: max tokens of the verdict.")

    def __post_init__(self) -> None:
        _choice("labels.labeler", self.labeler, LABELERS.names)
        _positive("labels.rollout_k", self.rollout_k)
        if not 0.0 < self.rollout_min_frac <= 1.0:
            raise ValueError(f"labels.rollout_min_frac must be in (0, 1], got {self.rollout_min_frac}")
        if self.labeler == "judge" and not self.judge_model:
            raise ValueError("labels.labeler = 'judge' needs labels.judge_model (a model reference)")


@dataclass
class PairsSection:
    mode: str = _f(
        "step",
        "step: confidence-filtered step pairs (CASPO); answer: whole right vs wrong solutions; "
        "both: step + answer pairs in one DPO pass; step-nofilter: step pairs at every step.",
    )
    types: list[str] = _f(["A", "B"], "Pair types to build: A (unsure-right), B (sure-wrong).")
    low_percentile: float = _f(
        30.0, "A: a correct step is 'unsure' below this percentile of the round's step confidences."
    )
    high_percentile: float = _f(
        50.0, "B: a first wrong step is 'sure' at or above this percentile (0 = every one)."
    )
    low_abs: float = _f(-1.0, "Absolute 'unsure' threshold; >= 0 replaces low_percentile.")
    high_abs: float = _f(-1.0, "Absolute 'sure' threshold; >= 0 replaces high_percentile.")
    max_per_problem: int = _f(8, "Cap on pairs per problem (confidently-wrong B pairs first).")
    alt_samples: int = _f(
        8,
        "Steps sampled (one batched call) at each A/B prefix that lacks an opposite-label alternative, "
        "then the rank-2 fallback for A (0 = other samples only).",
    )

    def __post_init__(self) -> None:
        _choice("pairs.mode", self.mode, MODES)
        _positive("pairs.alt_samples", self.alt_samples, allow_zero=True)
        self.rule()  # range checks live in PairRule

    def rule(self) -> PairRule:
        return PairRule(
            mode=self.mode,
            low_percentile=self.low_percentile,
            high_percentile=self.high_percentile,
            low_abs=self.low_abs,
            high_abs=self.high_abs,
            max_per_problem=self.max_per_problem,
            types=tuple(self.types),
        )


@dataclass
class DpoSection:
    backend: str = _f(
        "auto",
        "auto (unsloth on a CUDA GPU when installed, else trl), trl, unsloth. Env CASPO_LITE_BACKEND wins.",
    )
    beta: float = _f(0.1, "DPO beta (KL strength towards the previous round's policy).")
    sft_weight: float = _f(
        1.0,
        "Weight of TRL's SFT (NLL) term on the chosen side (the RPO anchor); 0 = pure DPO sigmoid loss.",
    )
    learning_rate: float = _f(5e-5, "LoRA learning rate.")
    epochs: float = _f(1.0, "Epochs over the round's pairs.")
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1 = by epochs).")
    batch_size: int = _f(4, "Pairs per device batch.")
    grad_accum: int = _f(1, "Gradient accumulation steps.")
    max_length: int = _f(512, "Max tokens of prompt + completion (TRL truncates the start... keep_start).")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha.")
    lora_dropout: float = _f(0.0, "LoRA dropout.")
    target_modules: list[str] = _f(
        ["q_proj", "k_proj", "v_proj", "o_proj"],
        "Modules LoRA adapts; add 'gate_proj', 'up_proj', 'down_proj' for the MLP projections too.",
    )
    heldout_frac: float = _f(
        0.1, "Share of the round's pairs never trained on: reward accuracy and margin measured on them."
    )
    precompute_ref: bool = _f(
        True, "Compute the frozen reference's log-probs once before training (TRL precompute_ref_log_probs)."
    )
    load_in_4bit: bool = _f(False, "QLoRA (unsloth backend on a GPU only).")
    gradient_checkpointing: bool = _f(False, "Trade compute for memory (worth it from ~1B parameters).")
    save_steps: int = _f(20, "Checkpoint every N steps so a killed run resumes mid-DPO.")
    logging_steps: int = _f(1, "Log DPO metrics every N steps.")
    seed: int = _f(0, "Trainer seed.")
    num_processes: int = _f(1, "> 1: run the DPO stage under `accelerate launch` with this many processes.")
    accelerate_config: str = _f(
        "", "accelerate config for the launch (recipes/accelerate/*.yaml: DDP, ZeRO-2/3, FSDP); '' = DDP."
    )

    def __post_init__(self) -> None:
        _positive("dpo.num_processes", self.num_processes)
        _choice("dpo.backend", self.backend, ("auto", "trl", "unsloth"))
        _positive("dpo.beta", self.beta)
        _positive("dpo.sft_weight", self.sft_weight, allow_zero=True)
        if not 0.0 <= self.heldout_frac < 0.5:
            raise ValueError(f"dpo.heldout_frac must be in [0, 0.5), got {self.heldout_frac}")
        _positive("dpo.learning_rate", self.learning_rate)
        for name in (
            "batch_size",
            "grad_accum",
            "max_length",
            "lora_r",
            "lora_alpha",
            "save_steps",
            "logging_steps",
        ):
            _positive(f"dpo.{name}", getattr(self, name))
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"dpo.max_steps must be -1 (by epochs) or > 0, got {self.max_steps}")
        if self.max_steps == -1:
            _positive("dpo.epochs", self.epochs)
        if not self.target_modules:
            raise ValueError("dpo.target_modules must name at least one module, e.g. ['q_proj', 'v_proj']")


@dataclass
class RoundsSection:
    n: int = _f(3, "Rounds of sample -> label -> pair -> DPO.")
    early_stop: bool = _f(True, "Stop when pair yield and dev accuracy both stop improving.")
    patience: int = _f(1, "Rounds without improvement tolerated before stopping.")
    dev_eval: bool = _f(True, "Score the new policy on the dev problems after each round (greedy).")
    dev_max_tokens: int = _f(256, "Max new tokens per dev solution.")

    def __post_init__(self) -> None:
        _positive("rounds.n", self.n)
        _positive("rounds.patience", self.patience)


@dataclass
class TrainConfig(CaspoConfig):
    """The run config: the shared sections (model, task, steps, confidence, search) plus training's."""

    sample: SampleSection = field(default_factory=SampleSection)
    labels: LabelsSection = field(default_factory=LabelsSection)
    pairs: PairsSection = field(default_factory=PairsSection)
    dpo: DpoSection = field(default_factory=DpoSection)
    rounds: RoundsSection = field(default_factory=RoundsSection)

    def __post_init__(self) -> None:
        _choice("confidence.signal", self.confidence.signal, SIGNALS)
        _choice("confidence.path_mode", self.confidence.path_mode, PATH_MODES)
        if self.dpo.load_in_4bit and self.dpo.backend == "trl":
            raise ValueError(
                "dpo.load_in_4bit needs the unsloth backend (dpo.backend = 'auto' or 'unsloth') on a GPU"
            )


def load_train_config(path: Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A recipe (or the defaults) plus ``--set`` overrides, validated."""
    return load_config(path, overrides, cls=TrainConfig)


def to_toml(config: TrainConfig) -> str:
    """The fully resolved config as TOML (written into every round folder)."""
    lines: list[str] = []
    for section, values in to_dict(config).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    import json

    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
