"""A round's calibration travels into every GGUF `export` writes and is read back from it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from caspo_lite.calibration import fit_answer_calibration, load_answer_calibration, save_answer_calibration
from caspo_lite.calibration_file import read_calibration, read_gguf_calibration, update_section


@pytest.fixture(scope="module")
def llama_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_quant_export import build

    return build("llama", tmp_path_factory.mktemp("cal") / "hf", tie=False)


def test_round_calibration_round_trips_through_export(llama_hf: Path, tmp_path: Path) -> None:
    from caspo_lite.quant.export import export

    round_dir = tmp_path / "run" / "round-1"
    shutil.copytree(llama_hf, round_dir / "merged")
    (round_dir / "ledger.json").write_text('{"stages": {}}')
    rng = np.random.default_rng(0)
    s = rng.uniform(0.7, 0.95, 80)
    y = rng.random(80) < (s - 0.6)
    cal = fit_answer_calibration([{"path": float(v)} for v in s], y, "greedy", {"split": "dev"})
    save_answer_calibration(round_dir / "calibration.json", cal)
    update_section(round_dir / "calibration.json", "cat", {"step_percentiles": {"30": 0.81}})

    result = export(tmp_path / "run", tmp_path / "out", ["f32", "q8_0"], verify=False)
    for f in result.files:  # the lossless file and the llama.cpp-quantized one alike
        data = read_gguf_calibration(f.path)
        assert data == read_calibration(round_dir / "calibration.json")
        back = load_answer_calibration(f.path, "greedy")  # not in a round, no sha file: metadata
        assert back is not None and back.source.startswith("gguf:")
        assert back.prob(0.83) == pytest.approx(cal.prob(0.83))
        assert back.fit["split"] == "dev"
        # CaT finds its thresholds in the same metadata when the file is not beside the GGUF
        from types import SimpleNamespace

        from caspo_lite.search.cat_calibration import load_calibration

        assert load_calibration(SimpleNamespace(path=f.path))["cat"] == {"step_percentiles": {"30": 0.81}}


def test_a_model_without_calibration_exports_without_keys(llama_hf: Path, tmp_path: Path) -> None:
    from caspo_lite.quant.export import export

    result = export(llama_hf, tmp_path / "m.gguf", "f32", verify=False)
    assert read_gguf_calibration(result.files[0].path) is None
    assert load_answer_calibration(result.files[0].path, "greedy") is None
