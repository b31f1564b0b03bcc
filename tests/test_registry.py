"""One registry style: names, help texts and errors all come from the registry itself."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from caspo_lite.cli import app
from caspo_lite.engines import ENGINES
from caspo_lite.errors import ConfigError, ModelError
from caspo_lite.labeler_registry import LABELERS
from caspo_lite.registry import Registry
from caspo_lite.search import EVAL_DEFAULT_STRATEGIES, STRATEGIES, get_strategy
from caspo_lite.tasks import TASKS, get_task
from caspo_lite.tui.inference import chat_prompt
from caspo_lite.tui.settings import strategy_names


def test_lookup_names_and_prose() -> None:
    reg = Registry("colour", {"red": str, "green": str, "blue": str})
    assert reg.names == ("red", "green", "blue") and list(reg) == ["red", "green", "blue"]
    assert "green" in reg and len(reg) == 3 and reg["red"] is str
    assert reg.choices() == "red, green or blue" and reg.choices("and") == "red, green and blue"
    with pytest.raises(ConfigError, match=r"^unknown colour 'pink' \(known: red, green, blue\)$"):
        reg["pink"]


def test_each_family_fails_with_its_own_word_and_error_type() -> None:
    with pytest.raises(ConfigError, match="unknown search strategy 'magic'"):
        get_strategy("magic")
    with pytest.raises(ConfigError, match="unknown task 'gsm9k'"):
        get_task("gsm9k")
    with pytest.raises(ModelError, match="unknown engine kind 'vllm'"):
        ENGINES["vllm"]
    with pytest.raises(ConfigError, match="unknown labeler 'oracle'"):
        LABELERS["oracle"]


def test_every_registered_name_builds() -> None:
    for name in STRATEGIES:
        assert get_strategy(name).name == name
    assert get_task("arith").name == "arith" and "multiarith" in TASKS


WIDE = {"COLUMNS": "240"}  # rich wraps help at the terminal width


def test_the_cli_and_tui_list_what_the_registries_hold() -> None:
    runner = CliRunner()
    solve_help = runner.invoke(app, ["solve", "--help"], env=WIDE).output
    assert all(name in solve_help for name in STRATEGIES)  # cat-verify too: not a hand-kept list
    eval_help = runner.invoke(app, ["eval", "--help"], env=WIDE).output
    assert ",".join(EVAL_DEFAULT_STRATEGIES) in eval_help and "cat-verify" not in EVAL_DEFAULT_STRATEGIES
    label_help = runner.invoke(app, ["label", "--help"], env=WIDE).output
    assert "verify+rollout" in label_help
    assert strategy_names() == STRATEGIES.names


@pytest.mark.parametrize(
    "question", ["What is 12 + 5 - 3?", "Tom has 3 apples and buys 4 more. How many now?"]
)
def test_chat_asks_what_solve_asks(question: str) -> None:
    from caspo_lite.solve import question_prompt

    chat, _ = chat_prompt(question)
    solve, _, _ = question_prompt(question)
    assert chat == solve
