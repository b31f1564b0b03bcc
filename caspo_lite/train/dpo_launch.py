"""The DPO stage under `accelerate launch`: N processes train one round, rank 0 writes it.

`launch_dpo` (called by the round loop when ``dpo.num_processes > 1``) runs::

    accelerate launch [--config_file dpo.accelerate_config | --multi_gpu] --num_processes N \
        -m caspo_lite.train.dpo_launch --round ROUND_DIR --policy POLICY_DIR --backend trl

Each process runs the same `train_dpo` on the round's ``pairs.jsonl`` with the DPO section of
the round's own ``config.toml`` (the Trainer shards the pairs over the ranks, DDP averages
the gradients; a DeepSpeed ZeRO-2/3 or FSDP accelerate config from ``recipes/accelerate/``
shards optimizer state / weights instead). Only rank 0 writes the adapter, the merged
weights, ``dpo_log.jsonl`` and ``dpo_result.json``; the calling process, which is not part
of the launch, then reads the result and writes the ledger — so the ledger is written once.

Resume: checkpoints land in ``<round>/dpo/`` as in one process; a relaunch after a kill
continues from the newest complete one. Without a config file, ``--multi_gpu`` makes
accelerate start the processes through torchrun; on a machine without CUDA the Trainer
(``use_cpu``) joins them in a gloo process group, which is how the CPU test runs 2 processes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from caspo_lite.backend import choose_backend
from caspo_lite.errors import BackendUnavailable, CaspoError, ConfigError
from caspo_lite.pairs import Pair
from caspo_lite.quiet import quiet_library_warnings
from caspo_lite.runs import RoundDir
from caspo_lite.train.config import load_train_config
from caspo_lite.train.distributed import free_port
from caspo_lite.train.dpo import train_dpo
from caspo_lite.train.ledger import read_jsonl


def launch_command(
    round_dir: Path,
    policy_dir: Path,
    backend: str,
    num_processes: int,
    accelerate_config: str = "",
    port: int = 0,
) -> list[str]:
    """The `accelerate launch` command line of one round's DPO."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        if not Path(accelerate_config).is_file():
            raise ConfigError(f"dpo.accelerate_config = {accelerate_config!r}: file not found")
        cmd += ["--config_file", str(accelerate_config)]
    else:
        cmd += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--num_processes", str(num_processes)]
    if port:
        cmd += ["--main_process_port", str(port)]
    cmd += ["-m", "caspo_lite.train.dpo_launch", "--round", str(round_dir), "--policy", str(policy_dir)]
    return cmd + ["--backend", backend]


def launch_dpo(
    round_dir: Path, policy_dir: Path, backend: str, num_processes: int, accelerate_config: str = ""
) -> dict[str, Any]:
    """Run the round's DPO under `accelerate launch`; return the ``dpo_result.json`` rank 0 wrote
    (the same dict `dpo_process.run_dpo_process` returns for one process)."""
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        raise BackendUnavailable("dpo.num_processes > 1 needs accelerate: pip install accelerate")

    result_path = round_dir / "dpo_result.json"
    result_path.unlink(missing_ok=True)  # never read a stale result from an earlier attempt
    cmd = launch_command(round_dir, policy_dir, backend, num_processes, accelerate_config, free_port())
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not result_path.is_file():
        tail = " | ".join((proc.stderr or "").strip().splitlines()[-3:])
        raise CaspoError(
            f"DPO under accelerate launch ({num_processes} processes) failed with exit "
            f"{proc.returncode}: {tail}; rerun the same command to resume from the last checkpoint"
        )
    return json.loads(result_path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> None:
    """One rank of a launched DPO stage (see module doc)."""
    ap = argparse.ArgumentParser(description="one rank of a round's DPO (started by accelerate launch)")
    ap.add_argument("--round", type=Path, required=True)
    ap.add_argument("--policy", type=Path, required=True)
    ap.add_argument("--backend", default="trl")
    args = ap.parse_args(argv)
    quiet_library_warnings()
    rd = RoundDir(args.round)
    cfg = load_train_config(rd.config)
    pairs = (
        [Pair.from_record(rec) for rec in read_jsonl(rd.pairs, "chosen")] if rd.pairs.stat().st_size else []
    )
    train_dpo(args.policy, pairs, rd.root, cfg.dpo, choose_backend(args.backend))


if __name__ == "__main__":
    main()
