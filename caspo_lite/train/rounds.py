"""The iterative CASPO loop (docs/design.md §1.5): per round sample -> label -> pairs -> DPO -> export -> dev.

This is the one top-level loop of ``caspo-lite train`` and reads top to bottom. Every stage
checks the round's ledger first, so a rerun of the same command after Ctrl-C or ``kill -9``
continues at the first unfinished stage (sampling and labelling continue mid-file, DPO from
its last checkpoint). Progress goes to an ``on_event`` callback (the CLI draws Rich bars);
per-round summaries go to ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite.backend import (
    Backend,
    check_4bit,
    choose_backend,
    detect_device,
    free_accelerator_memory,
    probe_unsloth,
)
from caspo_lite.engines import load_engine
from caspo_lite.errors import ConfigError, DataError, ExportError
from caspo_lite.labeler_registry import get_labeler
from caspo_lite.models import hf_path
from caspo_lite.pairs import STEP_MODES, Pair, build_pairs
from caspo_lite.paths import atomic_write_text
from caspo_lite.quant.gguf_writer import write_gguf
from caspo_lite.runs import RoundDir, RunDir, write_early_stop
from caspo_lite.steps import StepRule
from caspo_lite.tiny import ensure_tiny
from caspo_lite.train.alternatives import AltStats, add_alternatives
from caspo_lite.train.config import TrainConfig, to_toml
from caspo_lite.train.devset import evaluate_dev, fit_dev_calibration
from caspo_lite.train.dpo_launch import launch_dpo
from caspo_lite.train.dpo_process import run_dpo_process
from caspo_lite.train.labeling import label_round, step_confidence_by_label, to_problem_samples
from caspo_lite.train.ledger import JsonlAppender, Ledger, dumps, read_jsonl
from caspo_lite.train.problems import build_task, split_problems
from caspo_lite.train.remote_sampling import open_remote_engine
from caspo_lite.train.sampling import sample_round

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainEvent:
    """One progress report: ``kind`` is 'stage' (started), 'progress', 'done', 'skip', 'round' or 'stop'."""

    kind: str
    round: int
    stage: str = ""
    done: int = 0
    total: int = 0
    info: dict[str, Any] = field(default_factory=dict)


EventFn = Callable[[TrainEvent], None]


def _noop(_: TrainEvent) -> None:
    pass


@dataclass
class Policy:
    """The policy entering a round: HF folder (training) and a lossless GGUF (sampling) or None."""

    hf_dir: Path
    gguf: Path | None


def base_policy(cfg: TrainConfig, run: RunDir) -> Policy:
    """Round 0: the configured model as an HF folder plus an f32/f16 GGUF export of it."""
    hf = Path(hf_path(cfg.model.name))
    if cfg.model.name == "tiny" and cfg.sample.gguf_dtype == "f32":
        return Policy(hf, ensure_tiny().gguf)
    return Policy(hf, export_gguf(hf, run.round(0).gguf(cfg.sample.gguf_dtype), cfg.sample.gguf_dtype))


def export_gguf(hf_dir: Path, out: Path, dtype: str) -> Path | None:
    """Lossless GGUF for llama.cpp sampling, or None (then sampling runs through transformers)."""
    if out.is_file():
        return out
    try:
        return write_gguf(hf_dir, out, dtype=dtype)
    except ImportError as exc:  # the gguf package is absent (a GPU box sampling with transformers)
        log.warning("cannot export %s to GGUF (%s); sampling will use transformers", hf_dir, exc)
        return None
    except ExportError as exc:
        log.warning("cannot export %s to GGUF (%s); sampling will use transformers", hf_dir, exc)
        return None


@dataclass(frozen=True)
class EngineChoice:
    """How a round samples: ``kind`` (llama_cpp or hf), GPU layers for llama.cpp, and why (logged)."""

    kind: str
    reason: str
    n_gpu_layers: int = 0


ALL_LAYERS = 999  # llama.cpp clamps to the model's layer count (its CLI's `-ngl 999`)


def _llama_cpp_gpu() -> bool | None:
    """None: llama-cpp-python missing; else whether this build offloads to a GPU (CUDA/Metal)."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return None
    try:
        import llama_cpp
    except (ImportError, OSError):
        return None
    return bool(llama_cpp.llama_supports_gpu_offload())


def choose_engine(cfg: TrainConfig, policy: Policy, device: str | None = None) -> EngineChoice:
    """Pick the sampler once per engine load and say why (docs/design.md §1.5; issue #14).

    - CUDA (or Apple) GPU + a GPU build of llama-cpp-python + a GGUF of the policy: llama.cpp
      with every layer offloaded (the same lossless per-round GGUF the CPU path uses).
    - CUDA GPU otherwise: the batched transformers sampler, 16-bit.
    - CPU: llama.cpp when installed and the policy has a GGUF, else transformers (fp32).
    """
    requested = cfg.sample.engine
    device = device or detect_device()
    if requested == "hf":
        return EngineChoice("hf", f"sample.engine = 'hf' (forced): transformers on {device}")
    if policy.gguf is None:
        return EngineChoice("hf", f"no GGUF of the policy: transformers on {device}")
    gpu_llama = _llama_cpp_gpu()
    if gpu_llama is None:
        return EngineChoice("hf", f"llama-cpp-python is not installed: transformers on {device}")
    if device == "cpu":
        return EngineChoice("llama_cpp", f"no GPU: llama.cpp on the {cfg.sample.gguf_dtype} GGUF")
    if gpu_llama:
        return EngineChoice(
            "llama_cpp", f"{device} GPU + a GPU build of llama.cpp: all layers offloaded", ALL_LAYERS
        )
    if requested == "llama_cpp":
        return EngineChoice(
            "llama_cpp", f"sample.engine = 'llama_cpp' (forced): CPU-only llama.cpp build on {device}"
        )
    return EngineChoice(
        "hf",
        f"{device} GPU but llama-cpp-python is a CPU-only build: batched transformers sampler "
        "(reinstall it with CMAKE_ARGS=-DGGML_CUDA=on for the faster path)",
    )


def open_engine(cfg: TrainConfig, policy: Policy) -> Any:
    choice = choose_engine(cfg, policy)
    log.info("sampling engine: %s (%s)", choice.kind, choice.reason)
    threads = cfg.sample.threads or None
    if choice.kind == "llama_cpp":
        # the KV cache is unified: the prompt once, plus every branch's own tokens
        lc = cfg.labels
        per_problem = max(cfg.sample.n * cfg.sample.max_tokens, lc.rollout_k * (lc.rollout_max_tokens + 256))
        n_ctx = 1024 + max(
            per_problem, cfg.pairs.alt_samples * cfg.steps.max_step_tokens, cfg.rounds.dev_max_tokens
        )
        return load_engine(
            policy.gguf,
            kind="llama_cpp",
            n_threads=threads,
            n_ctx=max(n_ctx, 2048),
            n_gpu_layers=choice.n_gpu_layers,
        )
    return load_engine(policy.hf_dir, kind="hf", n_threads=threads)


def _stage(ledger: Ledger, rd: RoundDir, name: str, on_event: EventFn) -> bool:
    """True when ``name`` must run (reports the skip otherwise)."""
    if ledger.done(name):
        on_event(TrainEvent("skip", rd.index, name, info=ledger.info(name)))
        return False
    on_event(TrainEvent("stage", rd.index, name))
    return True


def _progress(on_event: EventFn, r: int, stage: str) -> Callable[[int, int], None]:
    return lambda done, total: on_event(TrainEvent("progress", r, stage, done, total))


def run_round(
    cfg: TrainConfig,
    run: RunDir,
    r: int,
    policy: Policy,
    task: Any,
    train: list,
    dev: list,
    on_event: EventFn,
    backend: Backend | None = None,
) -> tuple[Policy, dict[str, Any]]:
    """One round; returns the new policy and the round summary (``backend``: chosen by `train`)."""
    backend = backend or start_backend(cfg)

    rd = run.round(r)
    rd.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rd.config, to_toml(cfg))
    ledger = Ledger(rd.ledger)
    engine = None
    timings: dict[str, float] = {}

    def engine_() -> Any:
        nonlocal engine
        if engine is None:
            engine = open_engine(cfg, policy)
        return engine

    try:
        # 1. sample ---------------------------------------------------------------------------
        if _stage(ledger, rd, "sample", on_event):
            t0 = time.perf_counter()
            tokenizer = _tokenizer(policy.hf_dir)

            sampler = open_remote_engine(cfg, r, tokenizer) if cfg.sample.engine == "openai" else engine_()
            with JsonlAppender(rd.samples, "problem_id") as out:
                sample_round(sampler, task, train, cfg, r, out, tokenizer, _progress(on_event, r, "sample"))
            timings["sample"] = time.perf_counter() - t0
            ledger.mark("sample", time_s=timings["sample"], engine=getattr(sampler, "label", sampler.name))
            if sampler is not engine:
                sampler.close()
            on_event(TrainEvent("done", r, "sample", info={"time_s": timings["sample"]}))
        samples = read_jsonl(rd.samples, "problem_id")

        # 2. label ----------------------------------------------------------------------------
        if _stage(ledger, rd, "label", on_event):
            t0 = time.perf_counter()
            labeler = _labeler(cfg, engine_, get_labeler)
            with JsonlAppender(rd.labels, "problem_id") as out:
                by_id = {p.id: p for p in train}
                label_round(samples, labeler, task, out, _progress(on_event, r, "label"), by_id)
            ledger.mark("label", time_s=time.perf_counter() - t0, labeler=cfg.labels.labeler)
            on_event(TrainEvent("done", r, "label"))
        labels = {rec["problem_id"]: rec for rec in read_jsonl(rd.labels, "problem_id")}
        problems = [to_problem_samples(s, labels[s["problem_id"]], str(rd.labels)) for s in samples]

        # 3. pairs ----------------------------------------------------------------------------
        if _stage(ledger, rd, "pairs", on_event):
            alt_stats = AltStats()
            if cfg.pairs.alt_samples > 0 and cfg.pairs.mode in STEP_MODES:
                problems = add_alternatives(
                    engine_(),
                    task,
                    problems,
                    samples,
                    cfg,
                    r,
                    _labeler(cfg, engine_, get_labeler),
                    store=rd.alternatives,
                    sources={p.id: p for p in train},
                    stats=alt_stats,
                )
            pairs, report = build_pairs(problems, cfg.pairs.rule())
            text = "".join(dumps(p.to_record()) + "\n" for p in pairs)
            atomic_write_text(rd.pairs, text)
            full_report = {"pairs/mode": cfg.pairs.mode, **report.summary(), **alt_stats.summary()}
            atomic_write_text(rd.pairs_report, json.dumps(full_report, indent=1))
            ledger.mark("pairs", **{k: v for k, v in report.summary().items() if k in ("pairs/A", "pairs/B")})
            on_event(TrainEvent("done", r, "pairs", info=report.summary()))
        pairs = (
            [Pair.from_record(rec) for rec in read_jsonl(rd.pairs, "chosen")]
            if rd.pairs.stat().st_size
            else []
        )
        pair_summary = json.loads(rd.pairs_report.read_text(encoding="utf-8"))
        if engine is not None:  # free the sampler's memory before training
            engine.close()
            engine = None
        free_accelerator_memory()

        # 4. dpo ------------------------------------------------------------------------------
        if _stage(ledger, rd, "dpo", on_event):
            if not pairs:
                raise DataError(
                    f"{rd.root}: no pairs to train on (loosen pairs.low_percentile / high_percentile)"
                )
            t0 = time.perf_counter()
            if cfg.dpo.num_processes > 1:  # accelerate launch; rank 0 writes the round's files
                res = launch_dpo(
                    rd.root, policy.hf_dir, backend.name, cfg.dpo.num_processes, cfg.dpo.accelerate_config
                )
            else:
                res = run_dpo_process(  # its own process: see dpo_process.py for why
                    rd.root,
                    policy.hf_dir,
                    cfg.dpo,
                    backend,
                    on_progress=lambda s, t, _logs: on_event(TrainEvent("progress", r, "dpo", s, t)),
                )
            shutil.rmtree(rd.root / "dpo", ignore_errors=True)  # checkpoints are only for resuming
            ledger.mark(
                "dpo",
                time_s=time.perf_counter() - t0,
                backend=backend.name,
                reason=backend.reason,
                steps=res["steps"],
                reward_margin=res["reward_margin"],
                reward_accuracy=res["reward_accuracy"],
                resumed_from=res["resumed_from"],
                peak_gpu_gb=res.get("peak_gpu_gb"),
                n_heldout=res.get("n_heldout"),
                heldout_margin=res.get("heldout_margin"),
                heldout_reward_accuracy=res.get("heldout_reward_accuracy"),
                ids_retokenized_differ=res.get("ids_retokenized_differ"),
            )
            on_event(TrainEvent("done", r, "dpo", info={"reward_margin": res["reward_margin"]}))
        dpo_info = ledger.info("dpo")

        # 5. export ---------------------------------------------------------------------------
        new_policy = Policy(rd.merged, rd.gguf(cfg.sample.gguf_dtype))
        if _stage(ledger, rd, "export", on_event):
            new_policy.gguf = export_gguf(rd.merged, rd.gguf(cfg.sample.gguf_dtype), cfg.sample.gguf_dtype)
            ledger.mark("export", gguf=str(new_policy.gguf) if new_policy.gguf else None)
            on_event(TrainEvent("done", r, "export"))
        if not new_policy.gguf or not new_policy.gguf.is_file():
            new_policy.gguf = None

        # 6. dev ------------------------------------------------------------------------------
        dev_acc = None
        if cfg.rounds.dev_eval and dev:
            if _stage(ledger, rd, "dev", on_event):
                engine = open_engine(cfg, new_policy)
                dev_acc = evaluate_dev(engine, task, dev, cfg, rd.dev, _progress(on_event, r, "dev"))
                ledger.mark("dev", accuracy=dev_acc)
                on_event(TrainEvent("done", r, "dev", info={"accuracy": dev_acc}))
            dev_acc = ledger.info("dev").get("accuracy")

            fit_dev_calibration(rd.dev, rd.root, cfg)  # answer calibration from the dev answers (#16)
    finally:
        if engine is not None:
            engine.close()
        free_accelerator_memory()

    summary = {
        "round": r,
        **{
            k: pair_summary.get(k)
            for k in ("pairs/total", "pairs/A", "pairs/B", "pairs/answer", "pairs/yield_per_problem")
        },
        "dpo/reward_margin": dpo_info.get("reward_margin"),
        "dpo/reward_accuracy": dpo_info.get("reward_accuracy"),
        "dpo/heldout_margin": dpo_info.get("heldout_margin"),
        "dpo/heldout_reward_acc": dpo_info.get("heldout_reward_accuracy"),
        "dpo/n_heldout": dpo_info.get("n_heldout"),
        "dpo/steps": dpo_info.get("steps"),
        "dpo/backend": dpo_info.get("backend"),
        "eval/dev_accuracy": dev_acc,
        "sample/train_accuracy": _train_accuracy(samples),
        **step_confidence_by_label(problems),
        "time/sample_s": ledger.info("sample").get("time_s"),
        "time/alternatives_s": pair_summary.get("alt/time_s"),
        **{k: v for k, v in pair_summary.items() if k.startswith("pairs/origin_")},
        "time/dpo_s": dpo_info.get("time_s"),
    }
    atomic_write_text(rd.summary, json.dumps(summary, indent=1))
    return new_policy, summary


def _train_accuracy(samples: list[dict]) -> float:
    sols = [s for rec in samples for s in rec["solutions"]]
    return sum(bool(s["correct"]) for s in sols) / len(sols) if sols else 0.0


def _tokenizer(hf_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(hf_dir))


def _labeler(cfg: TrainConfig, engine_: Callable[[], Any], get_labeler: Callable[..., Any]) -> Any:
    lc = cfg.labels
    if lc.labeler in ("rollout", "verify+rollout"):
        rule = StepRule(cfg.steps.delimiter, cfg.steps.min_step_tokens, cfg.steps.max_step_tokens)
        return get_labeler(
            lc.labeler,
            engine=engine_(),
            k=lc.rollout_k,
            min_frac=lc.rollout_min_frac,
            max_tokens=lc.rollout_max_tokens,
            seed=cfg.sample.seed,
            rule=rule,
        )
    if lc.labeler == "judge":
        return get_labeler("judge", engine=load_engine(lc.judge_model), max_tokens=lc.judge_max_tokens)
    return get_labeler(lc.labeler)


def _improved(history: list[dict[str, Any]], patience: int) -> bool:
    """False when neither pair yield nor dev accuracy beat their best for ``patience`` rounds."""
    if len(history) <= patience:
        return True

    def best(key: str, rows: list[dict]) -> float:
        vals = [row[key] for row in rows if row.get(key) is not None]
        return max(vals) if vals else float("-inf")

    old, recent = history[:-patience], history[-patience:]
    return any(best(k, recent) > best(k, old) for k in ("pairs/yield_per_problem", "eval/dev_accuracy"))


def train(cfg: TrainConfig, out: Path, on_event: EventFn = _noop) -> list[dict[str, Any]]:
    """Run (or resume) every round; returns the round summaries."""
    run = RunDir(Path(out))
    try:
        run.root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"--out {out}: a file is in the way of the run folder; pass a folder") from None
    resolved = to_toml(cfg)
    if run.config.exists() and run.config.read_text(encoding="utf-8") != resolved:
        raise ConfigError(
            f"{run.config}: this run folder was started with a different config; use a new --out"
        )
    atomic_write_text(run.config, resolved)
    backend = start_backend(cfg)  # before sampling: a missing extra fails now, not after round 1
    task = build_task(cfg)
    train_set, dev = split_problems(task, cfg)
    policy = base_policy(cfg, run)
    history: list[dict[str, Any]] = []
    done_rounds = _logged_rounds(run)
    run.early_stop.unlink(missing_ok=True)  # a resumed run decides again
    for r in range(1, cfg.rounds.n + 1):
        policy, summary = run_round(cfg, run, r, policy, task, train_set, dev, on_event, backend)
        history.append(summary)
        if r not in done_rounds:
            with open(run.metrics, "a", encoding="utf-8") as fh:
                fh.write(dumps(summary) + "\n")
        on_event(TrainEvent("round", r, info=summary))
        if cfg.rounds.early_stop and not _improved(history, cfg.rounds.patience):
            reason = "pair yield and dev accuracy stopped improving"
            write_early_stop(run.root, r, reason)
            on_event(TrainEvent("stop", r, info={"reason": reason}))
            break
    return history


def start_backend(cfg: TrainConfig) -> Backend:
    """Choose the DPO backend once, at ``train`` start, and check it can do what the config asks.

    Unsloth is imported here only in a throw-away probe process (a broken install fails before
    round 1 samples); the DPO process of each round imports it first thing. This process,
    which samples, never imports it (its class patches would reach the sampler).
    """
    backend = choose_backend(cfg.dpo.backend)
    check_4bit(backend, cfg.dpo.load_in_4bit)
    if backend.name == "unsloth":
        probe_unsloth()
    return backend


def _logged_rounds(run: RunDir) -> set[int]:
    if not run.metrics.exists():
        return set()
    return {int(rec["round"]) for rec in read_jsonl(run.metrics, "round")}
