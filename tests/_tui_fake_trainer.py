"""A stand-in for `caspo-lite` in the fast training-screen tests: `train` and `export` only.

It writes the same run-folder files as the real trainer (config.toml, per-round ledger.json,
samples/labels/dev JSONL, pairs_report.json, a DPO checkpoint's trainer_state.json,
summary.json, metrics.jsonl), a little at a time, and resumes like it: stages already in the
ledger are skipped. ``--set fake.delay=S`` paces it (``fake.dpo_delay`` the DPO steps);
while a file ``OUT/.hold`` exists it waits before DPO, so a test can act mid-run at a known
point. A recipe containing ``bad = true`` fails the way the real CLI does (one ``error:`` line, exit code 2).
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
import warnings
from pathlib import Path

# what TRL triggers in transformers 5 on every DPO run (the UI keeps it out of train.log)
TRL_WARNING = (
    "`is_gradient_checkpointing` is deprecated and will be removed in v6. "
    "Use `is_activation_checkpointing` instead."
)


JSON = "--json" in sys.argv  # the machine protocol the UI asks for (caspo_lite.event_stream)


def emit(event: str, **fields: object) -> None:
    if JSON:
        print(json.dumps({"event": event, **fields}), flush=True)


def say(text: str) -> None:
    """A line for people: stdout without --json, stderr with it (stdout is the event stream)."""
    print(text, file=sys.stderr if JSON else sys.stdout, flush=True)


def fail(msg: str, code: int = 2) -> None:
    emit("error", code=code, kind="ConfigError" if code == 2 else "Error", message=msg)
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def args_of(argv: list[str]) -> tuple[dict[str, str], list[str], bool, list[str]]:
    opts, sets, dry, pos, i = {}, [], False, [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--set":
            sets.append(argv[i + 1])
            i += 2
        elif a in ("--recipe", "--out", "--quant"):
            opts[a] = opts.get(a, "") + ("," if a in opts else "") + argv[i + 1]
            i += 2
        elif a == "--dry-run":
            dry, i = True, i + 1
        elif a == "--json":
            i += 1
        else:
            pos.append(a)
            i += 1
    return opts, sets, dry, pos


def write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def train(argv: list[str]) -> None:
    opts, sets, dry, _ = args_of(argv)
    recipe = Path(opts["--recipe"])
    try:
        cfg = tomllib.loads(recipe.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        fail(f"{recipe}: {exc}")
    for s in sets:
        key, value = s.split("=", 1)
        sec, name = key.split(".")
        cfg.setdefault(sec, {})[name] = tomllib.loads(f"v = {value}")["v"]
    if cfg.get("bad"):
        fail(f"{recipe}: [dpo] beta = -1: must be > 0; set e.g. beta = 0.1")
    n_rounds, n_train = int(cfg["rounds"]["n"]), int(cfg["task"]["n_train"])
    delay = float(cfg.get("fake", {}).get("delay", 0.02))
    dpo_delay = float(cfg.get("fake", {}).get("dpo_delay", 0.25))  # slow enough for a poll to see
    if dry:
        plan = {"model": cfg["model"]["name"], "rounds": n_rounds, "train_problems": n_train,
                "memory_estimate_gb": 0.02, "resume": []}  # fmt: skip
        if JSON:
            emit("plan", plan=plan)
        else:
            print(json.dumps(plan))
        return
    out = Path(opts["--out"])
    out.mkdir(parents=True, exist_ok=True)
    config = (
        f'[model]\nname = "{cfg["model"]["name"]}"\n[task]\nn_train = {n_train}\nn_dev = 2\n'
        f"[dpo]\nmax_steps = 4\n[rounds]\nn = {n_rounds}\n"
    )
    write(out / "config.toml", config)
    emit("started")
    say("fake trainer started")
    for r in range(1, n_rounds + 1):
        rd = out / f"round-{r}"
        rd.mkdir(exist_ok=True)
        write(rd / "config.toml", config)
        ledger_path = rd / "ledger.json"
        ledger = json.loads(ledger_path.read_text()) if ledger_path.exists() else {"stages": {}}

        def mark(stage: str, ledger: dict = ledger, ledger_path: Path = ledger_path, **info: object) -> None:
            ledger["stages"][stage] = {"done": True, "finished_at": time.time(), **info}
            write(ledger_path, json.dumps(ledger))

        for stage, name in (("sample", "samples.jsonl"), ("label", "labels.jsonl")):
            if stage in ledger["stages"]:
                say(f"round {r} {stage}: already done, skipped")
                continue
            have = (rd / name).read_text().count("\n") if (rd / name).exists() else 0
            with open(rd / name, "a", encoding="utf-8") as fh:
                for i in range(have, n_train):
                    time.sleep(delay)
                    fh.write(json.dumps({"problem_id": str(i)}) + "\n")
                    fh.flush()
            mark(stage, time_s=delay * n_train)
        if "pairs" not in ledger["stages"]:
            report = {"pairs/total": 3 + r, "pairs/A": 1, "pairs/B": 2 + r, "pairs/yield_per_problem": 0.5}
            write(rd / "pairs_report.json", json.dumps(report))
            write(rd / "pairs.jsonl", "")
            mark("pairs")
        while (out / ".hold").exists():
            time.sleep(0.05)
        if "dpo" not in ledger["stages"]:
            warnings.warn(TRL_WARNING, FutureWarning, stacklevel=1)
            history = []
            for step in range(1, 5):
                time.sleep(dpo_delay)
                row = {"loss": 0.7 - 0.05 * step * r, "rewards/margins": 0.1 * step * r, "step": step,
                       "max_steps": 4}  # fmt: skip
                history.append(row)
                with open(rd / "dpo_log.jsonl", "a", encoding="utf-8") as fh:  # as the real trainer does
                    fh.write(json.dumps(row) + "\n")
                ck = rd / "dpo" / f"checkpoint-{step}"
                ck.mkdir(parents=True, exist_ok=True)
                write(ck / "trainer_state.json", json.dumps({"log_history": history, "global_step": step,
                                                             "max_steps": 4}))  # fmt: skip
            mark("dpo", reward_margin=0.4 * r, steps=4)
            for step in range(1, 5):
                for f in (rd / "dpo" / f"checkpoint-{step}").iterdir():
                    f.unlink()
                (rd / "dpo" / f"checkpoint-{step}").rmdir()
        if "export" not in ledger["stages"]:
            (rd / "merged").mkdir(exist_ok=True)
            write(rd / "merged" / "config.json", "{}")
            write(rd / "policy-f32.gguf", "GGUF fake")
            mark("export")
        if "dev" not in ledger["stages"]:
            write(rd / "dev.jsonl", '{"problem_id":"0"}\n{"problem_id":"1"}\n')
            mark("dev", accuracy=0.25 * r)
        summary = {"round": r, "pairs/total": 3 + r, "pairs/A": 1, "pairs/B": 2 + r,
                   "dpo/reward_margin": 0.4 * r, "eval/dev_accuracy": 0.25 * r}  # fmt: skip
        write(rd / "summary.json", json.dumps(summary))
        metrics = out / "metrics.jsonl"
        done = metrics.read_text().count("\n") if metrics.exists() else 0
        if done < r:
            with open(metrics, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(summary) + "\n")
    emit("finished", rounds=n_rounds, out=str(out))
    say(f"done: {n_rounds} round(s) in {out}")


def export(argv: list[str]) -> None:
    opts, _, _, pos = args_of(argv)
    source, out = Path(pos[0]), Path(opts["--out"])
    if not (source / "policy-f32.gguf").exists():
        fail(f"{source}: not a finished round", 1)
    out.mkdir(parents=True, exist_ok=True)
    emit("started")
    files = []
    for q in opts["--quant"].split(","):
        path = out / f"{source.parent.name}-{q}.gguf"
        path.write_text(f"GGUF {q}")
        files.append({"path": str(path), "quant": q})
        emit("file", path=str(path), quant=q, bytes=len(f"GGUF {q}"), seconds=0.0, types={"q8_0": 4})
        if not JSON:
            print(f"{path}  {q}  0.1 MB  0.0 s", flush=True)
            print("  types: q8_0 x4", flush=True)
    emit("finished", result={"files": files})
    say("source sha256 0000")


if __name__ == "__main__":
    try:
        {"train": train, "export": export}[sys.argv[1]](sys.argv[2:])
    except KeyboardInterrupt:
        fail("interrupted; rerun the same command to resume where it stopped", 130)
