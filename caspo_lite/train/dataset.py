"""``caspo-lite data export``: a round's pairs as a step-wise preference dataset with confidences.

Columns: prompt, chosen, rejected (what TRL's DPOTrainer reads) plus the annotations every
pair keeps — type (A unsure-right / B sure-wrong / answer), step index, prefix steps, labels,
step confidences and per-token confidences of both sides, and where each side came from.
``jsonl`` writes one record per line; ``hf`` writes a `datasets` folder (``load_from_disk``).
"""

from __future__ import annotations

from pathlib import Path

from caspo_lite.errors import DataError
from caspo_lite.paths import atomic_write_text
from caspo_lite.runs import RoundDir, is_round_dir
from caspo_lite.train.ledger import dumps, read_jsonl

FORMATS = ("jsonl", "hf")


def export_pairs(round_dir: Path, fmt: str = "jsonl", out: Path | None = None) -> tuple[Path, int]:
    """Write the round's pairs; returns (output path, number of pairs)."""
    if fmt not in FORMATS:
        raise DataError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    rd = RoundDir(Path(round_dir))
    if not rd.pairs.is_file():
        hint = "" if is_round_dir(rd.root) else " (is it a round folder like runs/NAME/round-1?)"
        raise DataError(f"{rd.pairs}: no pairs file{hint}")
    records = read_jsonl(rd.pairs, "chosen")
    if not records:
        raise DataError(f"{rd.pairs}: the round produced no pairs")
    if fmt == "jsonl":
        target = Path(out) if out else rd.root / "dataset.jsonl"
        atomic_write_text(target, "".join(dumps(r) + "\n" for r in records))
        return target, len(records)
    from datasets import Dataset

    target = Path(out) if out else rd.root / "dataset"
    Dataset.from_list(records).save_to_disk(str(target))
    return target, len(records)
