"""`fewshot-train`: word-problem prompts whose worked examples come from GSM8K's train split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caspo_lite.errors import ConfigError, DataError
from caspo_lite.eval.runner import EvalSpec, check_resume
from caspo_lite.tasks import configured_task
from caspo_lite.tasks.base import Problem
from caspo_lite.tasks.common import TRAIN_SHOTS, pick_train_shots
from caspo_lite.tasks.gsm8k import N_DEV


def _problem(i: int, question: str, steps: tuple[str, ...], calcs: tuple[str, ...]) -> Problem:
    return Problem(f"p{i}", question, "1", steps, {"calculations": calcs})


def test_shots_are_the_shortest_two_step_single_operation_problems() -> None:
    problems = [
        _problem(
            0, "A long two-step question about apples and pears?", ("3+4=7", "7*2=14"), ("3+4=7", "7*2=14")
        ),
        _problem(1, "Short, one step?", ("3+4=7",), ("3+4=7",)),
        _problem(2, "Short, two ops in one?", ("5*12+6=66", "66+6=72"), ("5*12+6=66", "66+6=72")),
        _problem(3, "Short, no equals?", ("3 plus 4 is 7", "7 times 2 is 14"), ("3+4=7", "7*2=14")),
        _problem(4, "Two steps, short?", ("2+2=4", "4-1=3"), ("2+2=4", "4-1=3")),
    ]
    assert [p.id for p in pick_train_shots(problems, k=3)] == ["p4", "p0"]


def _gsm8k_folder(root: Path) -> Path:
    """A GSM8K train.jsonl with N_DEV + 6 rows: the last N_DEV are the dev split."""
    rows = [
        {
            "question": f"Sam has {i} cats and gets 2 more, then doubles them. How many?",
            "answer": (
                f"He has {i}+2 = <<{i}+2={i + 2}>>{i + 2} cats.\nThen {i + 2}*2 = <<{i + 2}*2={2 * i + 4}>>"
                f"{2 * i + 4} cats.\n#### {2 * i + 4}"
            ),
        }
        for i in range(N_DEV + 6)
    ]
    rows[0]["question"] = "Tom has 3 cats and gets 2 more, then doubles them. How many cats now?"  # longest
    folder = root / "gsm8k"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return root


def test_prompt_shows_train_shots_and_gsm8k_never_asks_a_shown_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASPO_LITE_DATA", str(_gsm8k_folder(tmp_path)))
    task = configured_task("gsm8k", prompt_style="fewshot-train")
    train = task.load(split="train")
    assert len(train) == 6 - TRAIN_SHOTS  # the shots were in the train split: not asked
    prompt = task.prompt(train[0])
    assert prompt.text is not None and prompt.text.count("Q: ") == TRAIN_SHOTS + 1
    assert "Answer: 6\n\nQ:" in prompt.text  # shot 1: Sam has 1 cat -> (1+2)*2 = 6, our answer line
    assert prompt.stop and "\nQ:" in prompt.stop
    assert prompt.text.endswith(f"Q: {train[0].question}\n")
    shots = prompt.text[: -len(f"Q: {train[0].question}\n")]
    assert "Tom has 3 cats" not in shots  # the longest question is not a shot


def test_prompt_style_and_level_errors_name_the_task() -> None:
    with pytest.raises(ConfigError, match="arith.*prompt style"):
        configured_task("arith", prompt_style="fewshot-train")
    with pytest.raises(ConfigError, match="only arith has levels"):
        configured_task("gsm8k", level="medium")
    with pytest.raises(ConfigError, match="prompt_style"):
        configured_task("svamp", prompt_style="poem")
    assert (
        configured_task("arith", level="medium", prompt_style="chat")
        .prompt(configured_task("arith", level="medium").load(1)[0])
        .messages
    )


def test_an_eval_resumed_with_another_prompt_style_is_refused(tmp_path: Path) -> None:
    spec = EvalSpec(models=["m"], task="svamp", strategies=["greedy"], out=tmp_path, prompt_style="chat")
    check_resume(tmp_path, spec.meta())
    other = EvalSpec(
        models=["m"], task="svamp", strategies=["greedy"], out=tmp_path, prompt_style="fewshot-train"
    )
    with pytest.raises(ConfigError, match="prompt_style='chat' there vs 'fewshot-train' now"):
        check_resume(tmp_path, other.meta())


def test_word_benchmarks_default_to_train_shots_and_say_when_gsm8k_is_missing(tmp_path: Path) -> None:
    (tmp_path / "benchmarks" / "svamp").mkdir(parents=True)
    row = {"Body": "Ann has 3 apples", "Question": "How many now if she gets 2?", "Answer": 5.0}
    (tmp_path / "benchmarks" / "svamp" / "test.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    task = configured_task("svamp", str(tmp_path))
    assert task.prompt_style == "fewshot-train"
    with pytest.raises(
        DataError, match="fewshot-train prompt takes its examples from GSM8K train.*gsm8k/train.jsonl"
    ):
        task.load()
    (problem,) = configured_task("svamp", str(tmp_path), prompt_style="chat").load()
    assert problem.answer == "5"
    _gsm8k_folder(tmp_path)
    assert configured_task("svamp", str(tmp_path)).prompt(problem).text.count("Q: ") == TRAIN_SHOTS + 1
