"""Which process am I? Rank helpers for DPO under `accelerate launch` (DDP, DeepSpeed, FSDP).

Why here and not accelerate's `PartialState`: these are read before (and without) any
process group — a plain process is rank 0 of 1 — and they only look at the environment
variables every launcher (accelerate, torchrun, deepspeed) sets, so importing this costs nothing.
Only the main process writes a round's files (adapter, merged weights, logs, results) and
the ledger; the other ranks train and exit.
"""

from __future__ import annotations

import os


def rank() -> int:
    """This process's global rank (0 outside a launcher)."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_main_process() -> bool:
    """True for the one process that writes files: rank 0, or any process outside a launcher."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (a no-op outside a process group)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port for the launch's rendezvous (two runs at once must not share one)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
