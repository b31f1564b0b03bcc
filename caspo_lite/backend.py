"""Device and training backend: chosen once, logged with the reason, overridable (docs/design.md §1.5).

- ``unsloth``: a CUDA GPU is present and the ``unsloth`` extra is installed. Unsloth patches
  transformers/TRL at import time, so it MUST be imported before ``trl`` (and before
  ``transformers`` model classes): `import_training_stack` does that in the right order.
- ``trl``: plain transformers + PEFT + TRL (CPU, MPS, or a CUDA GPU without the extra). A GPU
  without the extra gets a clear note naming it, then this backend.

Override with the config (``dpo.backend = "trl" | "unsloth" | "auto"``) or the environment
(``CASPO_LITE_BACKEND``); the environment wins so a user can force the plain path on a machine
with Unsloth installed. Like nanochat's ``flash_attention.py``: one decision, one log line.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from caspo_lite.errors import BackendUnavailable, ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "trl", "unsloth")
ENV_VAR = "CASPO_LITE_BACKEND"


@dataclass(frozen=True)
class Backend:
    name: str  # "trl" or "unsloth"
    device: str  # "cuda", "mps" or "cpu"
    reason: str  # one line: why this backend (logged, written to the round's metrics)
    note: str = ""  # advice for the user (e.g. "install caspo-lite[unsloth]"), may be empty

    @property
    def use_cpu(self) -> bool:
        return self.device == "cpu"

    @property
    def bf16(self) -> bool:
        """bf16 only on a CUDA GPU with native bf16 (Ampere+); CPU/MPS train fp32 (TRL's bf16 fails there)."""
        return self.device == "cuda" and cuda_bf16_native()

    @property
    def fp16(self) -> bool:
        """fp16 mixed precision on a CUDA GPU without native bf16 (RTX 20xx, GTX 16xx, T4, V100)."""
        return self.device == "cuda" and not cuda_bf16_native()


def cuda_bf16_native() -> bool:
    """Whether the current CUDA device computes bf16 in hardware (compute capability >= 8.0).

    Why not plain ``torch.cuda.is_bf16_supported()``: it also answers True on pre-Ampere cards,
    where bf16 is *emulated* (slow, and not what a user of an RTX 2080 or a T4 wants); those
    cards get fp16 mixed precision instead.
    """
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))


def half_dtype() -> Any:
    """The 16-bit dtype for weights on this CUDA device: bf16 where native, else fp16."""
    import torch

    return torch.bfloat16 if cuda_bf16_native() else torch.float16


def detect_device() -> str:
    """'cuda', 'mps' or 'cpu' (torch imported lazily: it costs seconds)."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def unsloth_installed() -> bool:
    """Whether the extra is importable, without importing it (its import patches libraries)."""
    return importlib.util.find_spec("unsloth") is not None


def choose_backend(
    requested: str = "auto", device: str | None = None, has_unsloth: bool | None = None
) -> Backend:
    """Pick the training backend once.

    Args:
        requested: "auto", "trl" or "unsloth" (config ``dpo.backend``); ``CASPO_LITE_BACKEND`` overrides it.
        device: the device (default: detected).
        has_unsloth: whether the extra is installed (default: looked up).
    Raises:
        ConfigError: an unknown backend name.
        BackendUnavailable: "unsloth" was requested but the extra or a CUDA GPU is missing.
    """
    env = os.environ.get(ENV_VAR, "").strip()
    source = f"${ENV_VAR}" if env else "dpo.backend"
    chosen_by = "set in the environment" if env else "set in the recipe or --set"  # not auto-detected
    requested = env or requested
    if requested not in BACKENDS:
        raise ConfigError(f"{source}: unknown backend {requested!r}; choose one of {', '.join(BACKENDS)}")
    device = device or detect_device()
    has_unsloth = unsloth_installed() if has_unsloth is None else has_unsloth
    if requested == "trl":
        backend = Backend("trl", device, f"{source} = 'trl' ({chosen_by})")
    elif requested == "unsloth":
        if not has_unsloth:
            raise BackendUnavailable(
                f"{source} = 'unsloth' but it is not installed: pip install 'caspo-lite[unsloth]'"
            )
        if device != "cuda":
            raise BackendUnavailable(
                f"{source} = 'unsloth' needs a CUDA GPU (found {device}); use dpo.backend = 'trl'"
            )
        backend = Backend("unsloth", device, f"{source} = 'unsloth' ({chosen_by})")
    elif device == "cuda" and has_unsloth:
        backend = Backend("unsloth", device, "CUDA GPU found and the unsloth extra is installed")
    elif device == "cuda":
        backend = Backend(
            "trl",
            device,
            "CUDA GPU found but the unsloth extra is not installed",
            note="training on plain transformers+PEFT+TRL; install 'caspo-lite[unsloth]' for speed and QLoRA",
        )
    else:
        backend = Backend("trl", device, f"no CUDA GPU ({device}): transformers + PEFT + TRL")
    log.info("training backend: %s on %s (%s)", backend.name, backend.device, backend.reason)
    if backend.note:
        log.warning("%s", backend.note)
    return backend


def check_4bit(backend: Backend, load_in_4bit: bool) -> None:
    """4-bit (QLoRA) weights exist only on the Unsloth path; refuse before any work starts.

    Without this the flag was silently ignored on the plain-TRL path, and an 8B model then
    needed ~22 GB instead of ~6 GB and ran out of memory mid-round.
    """
    if load_in_4bit and backend.name != "unsloth":
        raise ConfigError(
            f"dpo.load_in_4bit = true needs the unsloth backend on a CUDA GPU, but the backend is "
            f"{backend.name} on {backend.device} ({backend.reason}); install 'caspo-lite[unsloth]' "
            "on a CUDA machine or set dpo.load_in_4bit = false"
        )


def probe_unsloth(timeout_s: float = 600.0) -> None:
    """Import Unsloth once in a throw-away process, so a broken install fails at ``train`` start.

    Why a separate process: importing Unsloth patches transformers' model classes for the whole
    process (and its decode path shares KV buffers), so the process that samples must never
    import it; DPO runs in its own process per round, which imports Unsloth first of all.
    """
    import subprocess

    try:
        proc = subprocess.run(  # noqa: S603 - our own interpreter, fixed argument list
            [sys.executable, "-c", "import unsloth"], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(
            f"importing unsloth took over {timeout_s:.0f} s; set {ENV_VAR}=trl"
        ) from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        raise BackendUnavailable(
            f"unsloth failed to import ({last}); pip install 'caspo-lite[unsloth]' or set {ENV_VAR}=trl"
        )


def free_accelerator_memory() -> None:
    """Collect reference cycles, then hand cached CUDA blocks back (between sampling, DPO and dev)."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def import_training_stack(backend: Backend) -> dict[str, Any]:
    """Import the training libraries in the order the backend needs; return them by name.

    Unsloth must come first: importing it after trl/transformers leaves them unpatched (and
    Unsloth warns that its optimisations are off). If trl is already imported we say so.
    """
    mods: dict[str, Any] = {}
    if backend.name == "unsloth":
        if "trl" in sys.modules:
            log.warning("trl was imported before unsloth: Unsloth's patches may not apply to this process")
        try:
            import unsloth  # noqa: F401  (patches transformers/trl on import)
            from unsloth import FastLanguageModel
        except ImportError as exc:
            raise BackendUnavailable(
                f"unsloth failed to import ({exc}); pip install 'caspo-lite[unsloth]' or set {ENV_VAR}=trl"
            ) from None
        mods["FastLanguageModel"] = FastLanguageModel
    import peft
    import transformers
    import trl

    mods.update(trl=trl, peft=peft, transformers=transformers)
    return mods
