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
from caspo_lite.paths import atomic_write_text, data_dir

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
