"""The shared calibration file: sections replace only themselves; bad files are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caspo_lite.calibration_file import FORMAT, calibration_path, read_calibration, update_section
from caspo_lite.errors import ModelError


def test_sections_are_updated_independently(tmp_path: Path) -> None:
    path = tmp_path / "round-1" / "calibration.json"
    assert read_calibration(path) is None
    update_section(path, "answer", {"signal": "path", "method": "isotonic"})
    update_section(path, "cat", {"step_percentiles": {"30": 0.8}})
    data = read_calibration(path)
    assert data is not None and data["format"] == FORMAT
    assert data["answer"]["method"] == "isotonic" and data["cat"]["step_percentiles"]["30"] == 0.8
    update_section(path, "answer", {"signal": "min_step"})
    assert read_calibration(path)["cat"] == {"step_percentiles": {"30": 0.8}}  # type: ignore[index]


def test_bad_files_are_model_errors(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text("{not json")
    with pytest.raises(ModelError, match="calibration.json"):
        read_calibration(path)
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ModelError, match="format"):
        read_calibration(path)
    with pytest.raises(ValueError):
        update_section(tmp_path / "x.json", "nope", {})


def test_location_by_round_or_content_hash(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 16)
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(model.read_bytes())
    assert calibration_path(model, tmp_path / "round-2") == tmp_path / "round-2" / "calibration.json"
    assert calibration_path(model) == calibration_path(copy)
    assert calibration_path(model).parent.name == "calibrations"
