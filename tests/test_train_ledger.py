"""Crash-safe files: append-only JSONL recovery, the stage ledger, the run layout, memory estimate."""

from __future__ import annotations

import pytest

from caspo_lite.errors import DataError
from caspo_lite.runs import RunDir, round_policy_files
from caspo_lite.train.config import TrainConfig
from caspo_lite.train.ledger import JsonlAppender, Ledger, read_jsonl
from caspo_lite.train.plan import memory_estimate_gb
from caspo_lite.train.sampling import problem_seed


def test_appender_drops_a_partial_line_and_skips_done_ids(tmp_path) -> None:
    path = tmp_path / "samples.jsonl"
    with JsonlAppender(path, "problem_id") as app:
        app.append({"problem_id": "a", "x": 1})
        app.append({"problem_id": "b", "x": 2})
    clean = path.read_bytes()
    with open(path, "ab") as fh:
        fh.write(b'{"problem_id": "c", "x"')  # killed mid-write
    with JsonlAppender(path, "problem_id") as app:
        assert app.done == {"a", "b"}
        assert path.read_bytes() == clean
        app.append({"problem_id": "c", "x": 3})
    assert [r["problem_id"] for r in read_jsonl(path, "problem_id")] == ["a", "b", "c"]


def test_read_jsonl_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"k": 1}\n{"k": \n')
    with pytest.raises(DataError, match=r"x.jsonl:2: invalid JSON"):
        read_jsonl(path, "k")
    path.write_bytes(b'{"k": 1}\n{"j": 2}\n')
    with pytest.raises(DataError, match=r"x.jsonl:2: expected an object with 'k'"):
        read_jsonl(path, "k")


def test_ledger_marks_survive_reload(tmp_path) -> None:
    led = Ledger(tmp_path / "ledger.json")
    assert not led.done("sample")
    led.mark("sample", time_s=1.5)
    again = Ledger(tmp_path / "ledger.json")
    assert again.done("sample") and again.info("sample")["time_s"] == 1.5 and not again.done("dpo")
    (tmp_path / "ledger.json").write_text("{nope", encoding="utf-8")
    with pytest.raises(DataError, match="corrupt stage ledger"):
        Ledger(tmp_path / "ledger.json")


def test_round_folder_resolution(tmp_path) -> None:
    run = RunDir(tmp_path / "run")
    r1, r2 = run.round(1), run.round(2)
    (r1.merged).mkdir(parents=True)
    (r1.merged / "config.json").write_text("{}", encoding="utf-8")
    r1.gguf("f32").write_bytes(b"GGUF")
    assert round_policy_files(r1.root) == (r1.merged, r1.gguf("f32"))
    r2.root.mkdir()  # unfinished round: the run resolves to round 1
    assert round_policy_files(run.root) == (r1.merged, r1.gguf("f32"))
    assert round_policy_files(tmp_path / "empty") == (None, None)


def test_problem_seeds_are_stable_and_distinct() -> None:
    assert problem_seed(0, 1, "p1") == problem_seed(0, 1, "p1")
    assert (
        len(
            {
                problem_seed(0, 1, "p1"),
                problem_seed(0, 2, "p1"),
                problem_seed(1, 1, "p1"),
                problem_seed(0, 1, "p2"),
            }
        )
        == 4
    )


def test_memory_estimate_scales_with_model_and_precision() -> None:
    small = {"hidden": 576, "layers": 30, "vocab": 49152, "params": 135_000_000}
    big = {"hidden": 4096, "layers": 36, "vocab": 151936, "params": 8_000_000_000}
    cfg = TrainConfig()
    cpu_small = memory_estimate_gb(small, cfg, "cpu")
    assert 0.5 < cpu_small < 8  # fp32 weights ~0.5 GB plus activations
    cfg.dpo.load_in_4bit, cfg.dpo.gradient_checkpointing = True, True
    gpu_big_4bit = memory_estimate_gb(big, cfg, "cuda")
    assert 4 < gpu_big_4bit < 24  # fits the 24 GB recipe
