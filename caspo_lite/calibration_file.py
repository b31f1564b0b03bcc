"""The one calibration file a model carries: `calibration.json`.

Two consumers fit parts of it and read all of it, so the format lives here, below both:

- the answer-probability map (`caspo-lite calibrate`, section ``answer``): which signal is
  mapped to P(correct), by which monotone map, fitted on which split and how many problems;
- CaT's thresholds (section ``cat``): percentiles of step and path confidences on dev problems,
  so pruning can fire at the first step boundary instead of waiting for warm-up paths.

Each writer replaces only its own section (`update_section`), so fitting one never drops the
other. Where the file lives: beside a training round (``round-N/calibration.json``), else in the
data dir keyed by the model file's sha256, so a renamed or copied GGUF keeps its calibration;
`export` copies the file into GGUF metadata (``caspo.calibration.*``).

Layout (JSON object)::

    {"format": "caspo-calibration/1",
     "model": {"name": ..., "sha256": ...},          # what it was fitted for (informative)
     "answer": {...},                                # caspo_lite.calibration owns this section
     "cat": {...}}                                   # CaT's thresholds own this one
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from caspo_lite.errors import ModelError
from caspo_lite.models import gguf_path, resolve_model, smollm2_gguf
from caspo_lite.paths import atomic_write_text, data_dir
from caspo_lite.quant.gguf_header import GGUFFormatError, read_header
from caspo_lite.runs import is_round_dir, round_policy_files

FORMAT = "caspo-calibration/1"
FILE_NAME = "calibration.json"
SECTIONS = ("answer", "cat")


def read_calibration(path: Path) -> dict[str, Any] | None:
    """The file's content, or None when it does not exist.

    Raises:
        ModelError: the file exists but is not a calibration file of this format (one line, naming it).
    """
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"{path}: not a readable calibration file ({exc}); delete it and re-run calibrate"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path}: field 'format' is not {FORMAT!r}; delete it and re-run calibrate")
    return data


def update_section(
    path: Path, name: str, section: dict[str, Any], model: dict[str, Any] | None = None
) -> None:
    """Replace one section (atomically), keeping the others as they are."""
    if name not in SECTIONS:
        raise ValueError(f"unknown calibration section {name!r}; known: {', '.join(SECTIONS)}")
    data = read_calibration(path) or {"format": FORMAT}
    if model is not None:
        data["model"] = model
    data[name] = section
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def calibration_path(model_file: Path, round_dir: Path | None = None) -> Path:
    """Where the calibration of this model lives.

    A training round keeps it beside its policy (``round-N/calibration.json``): the round is the
    model's identity there. Any other model file is keyed by its content hash in the data dir.
    """
    if round_dir is not None:
        return round_dir / FILE_NAME
    return data_dir() / "calibrations" / f"{file_sha256(model_file)}.json"


# -- finding a model's calibration (added with `caspo-lite calibrate`) ---------------------------

GGUF_PREFIX = "caspo.calibration."  # one string key per part: format, model, answer, cat (JSON text)


def round_dir_of(model_ref: str | Path) -> Path | None:
    """The training round a reference belongs to: a ``round-N`` folder, a GGUF inside one, or a
    run folder (its last finished round, as `caspo_lite.models` resolves it); else None."""
    path = Path(str(model_ref)).expanduser()
    if path.suffix.lower() == ".gguf":
        return path.parent if path.parent.name.startswith("round-") else None
    if not path.is_dir():
        return None
    if path.name.startswith("round-"):
        return path

    rounds = sorted(
        (p for p in path.glob("round-*") if is_round_dir(p)), key=lambda p: int(p.name.split("-")[-1])
    )
    return rounds[-1] if rounds else None


def model_calibration_path(model_ref: str | Path) -> Path:
    """Where `calibrate` writes for this reference: the round's file, else the sha256-keyed one."""
    round_dir = round_dir_of(model_ref)
    if round_dir is not None:
        return calibration_path(Path(), round_dir)

    return calibration_path(gguf_path(str(model_ref)))


def to_gguf_metadata(data: dict[str, Any]) -> dict[str, str]:
    """The ``caspo.calibration.*`` string keys that carry ``data`` inside a GGUF."""
    out = {f"{GGUF_PREFIX}format": str(data.get("format", FORMAT))}
    for part in ("model", *SECTIONS):
        if part in data:
            out[f"{GGUF_PREFIX}{part}"] = json.dumps(data[part], sort_keys=True)
    return out


def from_gguf_metadata(meta: dict[str, Any], where: str) -> dict[str, Any] | None:
    """The calibration carried by a GGUF's metadata (inverse of `to_gguf_metadata`), or None."""
    fmt = meta.get(f"{GGUF_PREFIX}format")
    if fmt is None:
        return None
    if fmt != FORMAT:
        raise ModelError(f"{where}: metadata '{GGUF_PREFIX}format' is {fmt!r}, not {FORMAT!r}; re-export it")
    data: dict[str, Any] = {"format": FORMAT}
    for part in ("model", *SECTIONS):
        raw = meta.get(f"{GGUF_PREFIX}{part}")
        if raw is None:
            continue
        try:
            data[part] = json.loads(raw)
        except (TypeError, json.JSONDecodeError):
            raise ModelError(f"{where}: metadata '{GGUF_PREFIX}{part}' is not JSON; re-export it") from None
    return data


def read_gguf_calibration(path: Path) -> dict[str, Any] | None:
    """The calibration in a GGUF's ``caspo.calibration.*`` keys (header walk only, milliseconds)."""
    try:
        meta = read_header(path).metadata
    except (GGUFFormatError, OSError) as exc:
        raise ModelError(f"{path}: cannot read GGUF metadata ({exc})") from None
    return from_gguf_metadata(meta, f"{path} metadata")


_SHA: dict[tuple[str, int, int], str] = {}


def _hashed_path(model_file: Path) -> Path:
    """`calibration_path` with the sha256 memoised on (path, size, mtime): solve and chat look
    it up per load, and hashing a large GGUF each time would cost seconds."""
    st = model_file.stat()
    key = (str(model_file.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA:
        _SHA[key] = file_sha256(model_file)
    return data_dir() / "calibrations" / f"{_SHA[key]}.json"


def locate_calibration(model_ref: str | Path) -> tuple[dict[str, Any], str] | None:
    """(calibration content, where it was found) for a model reference, or None.

    Order: the round's ``calibration.json``; the data dir's file keyed by the GGUF's sha256;
    the GGUF's own ``caspo.calibration.*`` metadata. References that have no GGUF yet (an HF
    folder, a hub id) are looked up by round only.
    """
    round_dir = round_dir_of(model_ref)
    if round_dir is not None:
        path = calibration_path(Path(), round_dir)
        data = read_calibration(path)
        if data is not None:
            return data, str(path)

    ref = resolve_model(str(model_ref))
    if ref.kind == "gguf" and ref.path is not None:
        gguf: Path | None = ref.path
    elif ref.kind == "builtin" and ref.name == "smollm2-135m":
        gguf = smollm2_gguf()
    elif ref.kind == "builtin":
        gguf = gguf_path(ref)
    elif ref.kind == "round" and ref.path is not None:  # only an existing GGUF: never export here
        gguf = round_policy_files(ref.path)[1]
        if gguf is None:
            return None
    else:
        return None
    path = _hashed_path(gguf)
    data = read_calibration(path)
    if data is not None:
        return data, str(path)
    data = read_gguf_calibration(gguf)
    return (data, f"gguf:{gguf}") if data is not None else None
