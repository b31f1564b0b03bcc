"""The run folder as a format: where a training run keeps everything, and how to read it.

Why a low-floor module: the trainer writes these folders, and the model resolver, the
exporter and the TUI read them. Putting the names and the readers here (not in `train/`)
means nobody imports the trainer to find a file, and nobody spells ``ledger.json`` twice.

::

    runs/NAME/                      the run (``caspo-lite train --out runs/NAME``)
      config.toml                   the fully resolved config of the run (recipe + --set)
      metrics.jsonl                 one JSON object per round summary (and per stage), appended
      early_stop.json               why the trainer stopped before rounds.n (absent otherwise)
      round-0/                      the starting policy (only when it has to be materialised)
        merged/                     HF folder of the base model (a GGUF-only model is dequantized here)
        policy-f32.gguf             its lossless GGUF for llama.cpp sampling (f32 or f16)
      round-1/
        config.toml                 the resolved config again, next to the weights (nanoGPT habit)
        ledger.json                 stage ledger: {"stages": {"sample": {"done": true, ...}, ...}}
        samples.jsonl               one line per problem: prompt, N solutions, steps, per-token confidences
        labels.jsonl                one line per problem: a label per step per solution
        alternatives.jsonl          steps resampled (or rank-2 forced) at the A/B prefixes, per problem
        pairs.jsonl                 the round's preference pairs = a step-wise dataset with confidences
        pairs_report.json           the A/B mix and what each filter dropped
        dpo/checkpoint-N/           Trainer checkpoints (resume mid-DPO); deleted once the stage is done
        dpo_job.json                what the round's DPO process trains (policy, dpo section, backend)
        dpo_worker.log              that process's output; dpo_result.json / dpo_error.json its outcome
        dpo_log.jsonl               every Trainer log line (loss, reward margin) of the round
        adapter/                    the LoRA adapter trained this round (PEFT format)
        merged/                     adapter merged into the weights: THIS ROUND'S POLICY (HF folder)
        policy-f32.gguf             merged/ exported losslessly: what round r+1 samples from
        dev.jsonl                   dev-set answers of the new policy (when rounds.dev_eval)
        summary.json                the round summary (also the last line written to metrics.jsonl)
      round-2/ ...

Stages of a round, in order: ``sample``, ``label``, ``pairs``, ``dpo``, ``export``, ``dev``.
A stage is finished when the ledger says so; its outputs are written before the ledger entry
(atomically, or append-only with per-line fsync), so a kill at any moment leaves either a
finished stage or one that the next run redoes or continues.

A round folder is a model reference: ``merged/`` is its HF weights, ``policy-*.gguf`` its
llama.cpp file (`round_policy_files`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caspo_lite.paths import atomic_write_text

STAGES = ("sample", "label", "pairs", "dpo", "export", "dev")
LEDGER_FILE = "ledger.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
EARLY_STOP_FILE = "early_stop.json"


@dataclass(frozen=True)
class RoundDir:
    root: Path

    @property
    def index(self) -> int:
        return int(self.root.name.split("-")[-1])

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER_FILE

    @property
    def samples(self) -> Path:
        return self.root / "samples.jsonl"

    @property
    def labels(self) -> Path:
        return self.root / "labels.jsonl"

    @property
    def alternatives(self) -> Path:
        return self.root / "alternatives.jsonl"

    @property
    def pairs(self) -> Path:
        return self.root / "pairs.jsonl"

    @property
    def pairs_report(self) -> Path:
        return self.root / "pairs_report.json"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def dev(self) -> Path:
        return self.root / "dev.jsonl"

    @property
    def summary(self) -> Path:
        return self.root / SUMMARY_FILE

    def gguf(self, dtype: str = "f32") -> Path:
        return self.root / f"policy-{dtype}.gguf"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def early_stop(self) -> Path:
        return self.root / EARLY_STOP_FILE

    def round(self, r: int) -> RoundDir:
        return RoundDir(self.root / f"round-{r}")


def is_round_dir(path: Path) -> bool:
    """A finished round folder: it has merged weights or a policy GGUF."""
    path = Path(path)
    return (
        path.is_dir()
        and path.name.startswith("round-")
        and ((path / "merged" / "config.json").exists() or any(path.glob("policy-*.gguf")))
    )


def round_policy_files(path: Path) -> tuple[Path | None, Path | None]:
    """(HF folder, GGUF file) of a round folder's policy; either may be None.

    For ``caspo_lite.models._resolve_round``: a GGUF is preferred for llama.cpp (f32 over f16),
    the HF folder for transformers/training. A run folder resolves to its last finished round.
    """
    path = Path(path)
    if not path.name.startswith("round-"):
        rounds = sorted(
            (p for p in path.glob("round-*") if is_round_dir(p)), key=lambda p: int(p.name.split("-")[-1])
        )
        if not rounds:
            return None, None
        path = rounds[-1]
    hf = path / "merged" if (path / "merged" / "config.json").exists() else None
    gguf = next(
        (path / f"policy-{d}.gguf" for d in ("f32", "f16") if (path / f"policy-{d}.gguf").exists()), None
    )
    return hf, gguf


# -- readers: every one tolerates a file that is absent or being written (the TUI polls live runs)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, or None when absent or mid-write (a poll may race the trainer)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_stages(round_dir: Path) -> dict[str, dict[str, Any]]:
    """The round's ledger as ``{stage: {"done": bool, "time_s": ..., ...}}`` ({} before it exists)."""
    stages = (read_json(RoundDir(Path(round_dir)).ledger) or {}).get("stages", {})
    return {k: v for k, v in stages.items() if isinstance(v, dict)} if isinstance(stages, dict) else {}


def read_summary(round_dir: Path) -> dict[str, Any] | None:
    """The round summary the trainer writes when a round finishes (None before)."""
    return read_json(RoundDir(Path(round_dir)).summary)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Round summaries from ``metrics.jsonl``; a partial last line is skipped, not fatal."""
    try:
        lines = RunDir(Path(run_dir)).metrics.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and "round" in rec:
            out.append(rec)
    return out


def write_early_stop(run_dir: Path, after_round: int, reason: str) -> None:
    """Record that the trainer stopped on purpose (readers need not parse its log)."""
    record = {"after_round": int(after_round), "reason": reason}
    atomic_write_text(RunDir(Path(run_dir)).early_stop, json.dumps(record) + "\n")


def read_early_stop(run_dir: Path) -> dict[str, Any] | None:
    """``{"after_round": N, "reason": ...}`` when the run stopped early, else None."""
    record = read_json(RunDir(Path(run_dir)).early_stop)
    return record if record and isinstance(record.get("after_round"), int) else None
