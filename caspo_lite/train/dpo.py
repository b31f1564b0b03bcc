"""One round of DPO on the round's pairs, with the previous round's policy as reference (docs/design.md §1.5).

The policy entering round r is a plain HF folder (the base model, or round r-1's merged
weights). A fresh LoRA goes on top (`wrap_lora`, the same call for both backends), and
TRL's ``ref_model=None`` makes the reference "the same model with adapters disabled" = the
round r-1 policy, at no extra memory. Handed an already-wrapped model, TRL adds a second
adapter ``ref`` (a copy of the fresh, zero-effect LoRA); `drop_ref_adapter` removes it right
after the trainer is built, so checkpoints and ``adapter/`` hold the trained ``default``
adapter only (with ``ref/`` beside it, a resume loaded the wrong one and the trained adapter
restarted from zero). After training the adapter is saved, then merged into the weights: that
folder is round r's policy (and the next round's reference).

This runs in its own process per round (`caspo_lite.train.dpo_process`): Unsloth patches
model classes process-wide, and a process exit is the one sure way to free the card.

Pairs are tokenized here, not by TRL: prompt and step are tokenized separately and
concatenated, and **no EOS is appended** (TRL appends one to every standard-format
completion, which for a *step* would teach the model to stop after it). `StepDPOTrainer`
accepts such pre-tokenized rows; its `_prepare_dataset` is the same in trl 1.15 and 1.16.

The chosen/rejected ids are the ids the sampler generated when the pair stored them
(``Pair.chosen_token_ids``) and they decode to the step's text: re-tokenizing a step's text can
merge tokens across what were two sampled tokens and shift the step boundary; the count of
such differences is reported (``ids_retokenized_differ``).

A share ``dpo.heldout_frac`` of the pairs (chosen by a hash of the pair, so the same pairs on
every rerun) never trains: the reward accuracy and margin on them (``heldout_*``) say whether
DPO generalises beyond the pairs it saw, which the training-pair figures cannot.

Resumable: checkpoints every ``dpo.save_steps`` under ``<round>/dpo/``; a rerun continues
from the last one (``resume_from_checkpoint``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caspo_lite.backend import Backend, import_training_stack
from caspo_lite.errors import DataError
from caspo_lite.pairs import Pair
from caspo_lite.paths import atomic_write_text
from caspo_lite.train.config import DpoSection
from caspo_lite.train.distributed import barrier, is_main_process, world_size
from caspo_lite.train.ledger import fault_point

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, dict[str, float]], None]  # (step, total, last logs)


@dataclass
class DpoResult:
    steps: int
    train_loss: float
    reward_margin: float  # mean beta * (log-ratio chosen - log-ratio rejected) over the pairs, after training
    reward_accuracy: float  # share of pairs with a positive margin
    logs: list[dict[str, float]]
    resumed_from: str | None = None  # the checkpoint this run continued from
    peak_gpu_gb: float | None = None  # torch.cuda.max_memory_allocated of the DPO process (CUDA only)
    n_train: int = 0  # pairs trained on
    n_heldout: int = 0  # pairs held out (never trained)
    heldout_margin: float | None = None  # mean margin on the held-out pairs (None: none held out)
    heldout_reward_accuracy: float | None = None
    ids_retokenized_differ: int = 0  # sides whose stored ids differ from re-tokenizing the text


def split_heldout(pairs: Sequence[Pair], frac: float) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): the ``frac`` share of pairs with the smallest hash, never trained on.

    By hash of (prompt, chosen, rejected), not position, so the split is the same on a rerun
    and does not depend on the order pairs were built in. Fewer than 5 pairs: none held out
    (one or two held-out pairs measure nothing and cost a training pair).
    """
    import hashlib

    n_held = max(1, round(len(pairs) * frac)) if frac > 0 and len(pairs) >= 5 else 0

    def key(p: Pair) -> str:
        return hashlib.sha256(f"{p.prompt}\0{p.chosen}\0{p.rejected}".encode()).hexdigest()

    held_keys = {key(p) for p in sorted(pairs, key=key)[:n_held]}
    train = [p for p in pairs if key(p) not in held_keys]
    held = [p for p in pairs if key(p) in held_keys]
    return train, held


def completion_ids(text: str, stored: Sequence[int], tokenizer: Any) -> tuple[list[int], bool]:
    """(ids of a step, whether re-tokenizing its text gives other ids than the stored ones).

    The stored ids win when they decode back to the text (they are what the policy emitted);
    otherwise (none stored, or another vocabulary) the text is tokenized.
    """
    fresh = tokenizer(text, add_special_tokens=False)["input_ids"]
    if stored and tokenizer.decode(list(stored)) == text:
        return list(stored), list(stored) != fresh
    return fresh, False


def tokenize_pairs(
    pairs: Sequence[Pair], tokenizer: Any, max_length: int, differ: list[int] | None = None
) -> list[dict[str, list[int]]]:
    """prompt/chosen/rejected ids; the prompt is cut from the left so the step always fits.

    ``differ`` (a one-item list) counts the sides whose stored ids re-tokenize differently.
    """
    rows = []
    for p in pairs:
        prompt = tokenizer(p.prompt, add_special_tokens=False)["input_ids"]
        chosen, c_diff = completion_ids(p.chosen, p.chosen_token_ids, tokenizer)
        rejected, r_diff = completion_ids(p.rejected, p.rejected_token_ids, tokenizer)
        if differ is not None:
            differ[0] += int(c_diff) + int(r_diff)
        room = max_length - max(len(chosen), len(rejected))
        if room < 1:
            chosen, rejected = chosen[: max_length // 2], rejected[: max_length // 2]
            room = max_length - max(len(chosen), len(rejected))
        rows.append({"prompt_ids": prompt[-room:], "chosen_ids": chosen, "rejected_ids": rejected})
    return rows


def _trainer_class(trl: Any) -> type:
    class StepDPOTrainer(trl.DPOTrainer):
        """DPOTrainer that takes pre-tokenized rows as they are (no EOS appended)."""

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            if "prompt_ids" in dataset.column_names:
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return StepDPOTrainer


def _progress_callback(
    transformers: Any, on_progress: ProgressFn | None, store: list[dict[str, float]], log_path: Path
) -> Any:
    """Report progress and append every Trainer log line to ``dpo_log.jsonl``.

    Why a file: checkpoints are deleted once DPO is done, so the loss / reward-margin curve
    would otherwise be lost to anyone (the TUI's train screen) who was not watching live.
    """

    class Progress(transformers.TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            if logs:
                row = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
                row["step"] = float(state.global_step)
                row["max_steps"] = float(state.max_steps)
                store.append(row)
                if is_main_process():  # under accelerate launch every rank logs; one writes
                    with open(log_path, "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(row) + "\n")

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            fault_point("dpo", state.global_step)
            if on_progress:
                on_progress(state.global_step, state.max_steps, store[-1] if store else {})

    return Progress()


def load_policy(policy_dir: Path, cfg: DpoSection, backend: Backend, mods: dict[str, Any]) -> tuple[Any, Any]:
    """(model, tokenizer) of the policy entering this round, with a fresh LoRA on top."""
    if backend.name == "unsloth":
        model, tokenizer = mods["FastLanguageModel"].from_pretrained(
            model_name=str(policy_dir),
            max_seq_length=cfg.max_length,
            load_in_4bit=cfg.load_in_4bit,
            dtype=None,
        )
        model = mods["FastLanguageModel"].get_peft_model(
            model,
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules),
            use_gradient_checkpointing="unsloth" if cfg.gradient_checkpointing else False,
            random_state=cfg.seed,
        )
        return model, tokenizer
    import torch

    transformers = mods["transformers"]
    # frozen base weights in the card's 16-bit type (fp16 before Ampere: the LoRA stays fp32 for
    # the grad scaler); fp32 on CPU/MPS
    dtype = torch.bfloat16 if backend.bf16 else torch.float16 if backend.fp16 else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(str(policy_dir), dtype=dtype)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(policy_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return wrap_lora(model, cfg, mods["peft"]), tokenizer


def wrap_lora(model: Any, cfg: DpoSection, peft: Any) -> Any:
    """The plain-TRL twin of Unsloth's ``get_peft_model``: both backends hand TRL a PeftModel."""
    config = peft.LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(model, config)


def drop_ref_adapter(trainer: Any) -> None:
    """Remove the ``ref`` adapter TRL adds to an already-wrapped model (see the module docstring).

    Safe: ``ref`` is a copy of the freshly initialised LoRA, whose B matrices are zero, so it
    computes exactly what the model computes with adapters disabled, which is what TRL uses for
    the reference once ``ref`` is gone.
    """
    model = trainer.model
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
        model.set_adapter("default")


def _dpo_config(cfg: DpoSection, backend: Backend, out_dir: Path, n_pairs: int, trl: Any) -> Any:
    losses, weights = ["sigmoid"], [1.0]
    if cfg.sft_weight > 0:
        losses.append("sft")
        weights.append(cfg.sft_weight)
    # transformers >= 5.2x renamed gradient_checkpointing (a FutureWarning on every run);
    # Unsloth's pinned transformers (<= 5.17) only knows the old name.
    fields = {f.name for f in dataclasses.fields(trl.DPOConfig)}
    checkpointing = (
        "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"
    )
    return trl.DPOConfig(
        output_dir=str(out_dir),
        **{checkpointing: cfg.gradient_checkpointing},
        beta=cfg.beta,
        loss_type=losses,
        loss_weights=weights,
        max_length=cfg.max_length,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to="none",
        use_cpu=backend.use_cpu,
        bf16=backend.bf16,
        fp16=backend.fp16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        # the frozen reference's log-probs once, before training, instead of a forward per step
        precompute_ref_log_probs=cfg.precompute_ref,
        dataloader_num_workers=0,
        disable_tqdm=True,
        remove_unused_columns=False,
    )


def sequence_logps(model: Any, rows: Sequence[dict[str, list[int]]], side: str) -> list[float]:
    """Sum of log p(completion tokens | prompt) for each row's ``side`` ('chosen'/'rejected')."""
    import torch

    out = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for row in rows:
            ids = row["prompt_ids"] + row[f"{side}_ids"]
            n_prompt = len(row["prompt_ids"])
            logits = model(torch.tensor([ids], device=device)).logits[0].float()
            logp = torch.log_softmax(logits[:-1], dim=-1)
            target = torch.tensor(ids[1:], device=device)
            token_logp = logp.gather(1, target[:, None])[:, 0]
            out.append(float(token_logp[n_prompt - 1 :].sum()))
    return out


def reward_margins(model: Any, rows: Sequence[dict[str, list[int]]], beta: float) -> list[float]:
    """DPO's implicit reward margin per pair: policy = adapter on, reference = adapter off."""
    model.eval()
    pc, pr = sequence_logps(model, rows, "chosen"), sequence_logps(model, rows, "rejected")
    with model.disable_adapter():
        rc, rr = sequence_logps(model, rows, "chosen"), sequence_logps(model, rows, "rejected")
    return [beta * ((a - b) - (c - d)) for a, c, b, d in zip(pc, pr, rc, rr, strict=True)]


def last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest complete ``checkpoint-N`` folder (trainer_state.json written last)."""
    if not ckpt_dir.is_dir():
        return None
    done = [p for p in ckpt_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    if not done:
        return None
    return str(max(done, key=lambda p: int(p.name.split("-")[-1])))


def training_dataset(rows: list[dict[str, list[int]]], dpo_dir: Path) -> Any:
    """The pairs as a `datasets.Dataset` every rank reads from the same files.

    Why a folder under more than one process: TRL caches the precomputed reference log-probs
    next to the dataset's own files. An in-memory dataset lives in a per-process temp folder,
    so rank 0 would write the cache where rank 1 never looks (FileNotFoundError under
    `accelerate launch`). Rank 0 writes the rows once, named by their hash (a resume with the
    same pairs reuses it and its cache), and every rank loads that folder.
    """
    from datasets import Dataset, load_from_disk

    if world_size() == 1:
        return Dataset.from_list(rows)
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    path = dpo_dir / f"train-dataset-{digest}"
    if is_main_process() and not path.is_dir():
        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        Dataset.from_list(rows).save_to_disk(str(tmp))
        tmp.rename(path)
    barrier()
    return load_from_disk(str(path))


@dataclass
class Built:
    """A trainer ready to `train`, with what `train_dpo` needs after training."""

    trainer: Any
    tokenizer: Any
    rows: list[dict[str, list[int]]]
    logs: list[dict[str, float]]
    heldout_rows: list[dict[str, list[int]]] = dataclasses.field(default_factory=list)
    ids_retokenized_differ: int = 0


def build_trainer(
    policy_dir: Path,
    pairs: Sequence[Pair],
    round_dir: Path,
    cfg: DpoSection,
    backend: Backend,
    on_progress: ProgressFn | None = None,
) -> Built:
    """Load the policy with a fresh LoRA and build the DPO trainer (only the ``default`` adapter).

    Raises:
        DataError: no pairs to train on.
    """
    if not pairs:
        raise DataError(f"{round_dir}: no pairs to train on (loosen pairs.low_percentile / high_percentile)")
    mods = import_training_stack(backend)
    trl, transformers = mods["trl"], mods["transformers"]

    transformers.set_seed(cfg.seed)
    model, tokenizer = load_policy(policy_dir, cfg, backend, mods)
    train_pairs, held_pairs = split_heldout(pairs, cfg.heldout_frac)
    differ = [0]
    rows = tokenize_pairs(train_pairs, tokenizer, cfg.max_length, differ)
    heldout_rows = tokenize_pairs(held_pairs, tokenizer, cfg.max_length, differ)
    args = _dpo_config(cfg, backend, round_dir / "dpo", len(rows), trl)
    logs: list[dict[str, float]] = []
    trainer = _trainer_class(trl)(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=training_dataset(rows, round_dir / "dpo"),
        processing_class=tokenizer,
        peft_config=None,  # the model arrives with its LoRA (wrap_lora / Unsloth)
        callbacks=[_progress_callback(transformers, on_progress, logs, round_dir / "dpo_log.jsonl")],
    )
    drop_ref_adapter(trainer)
    # the library never prints: drop the Trainer's stdout logger (our callback reports progress)
    trainer.remove_callback(transformers.PrinterCallback)
    return Built(trainer, tokenizer, rows, logs, heldout_rows, differ[0])


def train_dpo(
    policy_dir: Path,
    pairs: Sequence[Pair],
    round_dir: Path,
    cfg: DpoSection,
    backend: Backend,
    on_progress: ProgressFn | None = None,
) -> DpoResult:
    """Train one round (continuing from its last checkpoint); write ``adapter/`` and ``merged/``.

    Raises:
        DataError: no pairs to train on.
    """
    built = build_trainer(policy_dir, pairs, round_dir, cfg, backend, on_progress)
    resume = last_checkpoint(round_dir / "dpo")
    if resume:
        log.info("resuming DPO from %s", resume)
    output = built.trainer.train(resume_from_checkpoint=resume)
    if not is_main_process():  # under accelerate launch the other ranks only train; rank 0 writes
        return DpoResult(int(output.global_step), float("nan"), float("nan"), float("nan"), built.logs)
    policy = built.trainer.model
    policy.save_pretrained(str(round_dir / "adapter"))
    margins = reward_margins(policy, built.rows, cfg.beta)
    held = reward_margins(policy, built.heldout_rows, cfg.beta) if built.heldout_rows else []
    merge_policy(policy, built.tokenizer, round_dir / "merged", backend, cfg)
    result = DpoResult(
        steps=int(output.global_step),
        train_loss=float(output.training_loss) if not math.isnan(output.training_loss) else float("nan"),
        reward_margin=sum(margins) / len(margins),
        reward_accuracy=sum(m > 0 for m in margins) / len(margins),
        logs=built.logs,
        resumed_from=Path(resume).name if resume else None,
        peak_gpu_gb=_peak_gpu_gb(),
        n_train=len(built.rows),
        n_heldout=len(held),
        heldout_margin=sum(held) / len(held) if held else None,
        heldout_reward_accuracy=sum(m > 0 for m in held) / len(held) if held else None,
        ids_retokenized_differ=built.ids_retokenized_differ,
    )
    atomic_write_text(round_dir / "dpo_result.json", json.dumps(result.__dict__, indent=1))
    return result


def _peak_gpu_gb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def merge_policy(policy: Any, tokenizer: Any, out_dir: Path, backend: Backend, cfg: DpoSection) -> Path:
    """Merge the LoRA into the weights: the next round's policy and reference."""
    if backend.name == "unsloth" and cfg.load_in_4bit:
        policy.save_pretrained_merged(str(out_dir), tokenizer, save_method="merged_16bit")
        return out_dir
    merged = policy.merge_and_unload()
    merged.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
