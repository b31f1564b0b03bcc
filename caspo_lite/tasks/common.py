"""What the word-problem families share: prompts in our answer format, numeric grading.

The model-facing answer format is the same everywhere: one step per line, then a last line
``Answer: <number>``. Chat prompts say so in the instruction; few-shot completion prompts
show it ("Q: ... / step lines / Answer: x") and stop at the next "Q:".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from caspo_lite.errors import DataError
from caspo_lite.quantities import UNIT_CONSTANTS
from caspo_lite.tasks import data
from caspo_lite.tasks.answers import extract_numeric_answer, grade_numeric
from caspo_lite.tasks.base import Problem, Prompt

INSTRUCTION = (
    "Solve the problem step by step. Write one calculation per line, like '12 + 5 = 17'. "
    "End with a last line 'Answer: <number>'."
)
FEWSHOT_STOP = ("\nQ:", "\n\n\n")
PROMPT_STYLES = ("chat", "fewshot")

# Hand-written examples (not from any benchmark) for few-shot completion prompts.
FEWSHOT_EXAMPLES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "Ann has 3 bags with 4 apples in each bag. She eats 2 apples. How many apples are left?",
        ("Ann has 3 * 4 = 12 apples.", "After eating, 12 - 2 = 10 apples are left."),
        "10",
    ),
    (
        "A pen costs $2 and a book costs $7. Tom buys 2 pens and 1 book. How much does he pay?",
        ("The pens cost 2 * 2 = $4.", "In total he pays 4 + 7 = $11."),
        "11",
    ),
)


def format_solution(problem: Problem) -> str:
    """The exact text a model should write for `problem`: its gold steps, then 'Answer: x'."""
    lines = [*problem.gold_steps, f"Answer: {problem.answer}"]
    return "\n".join(lines)


def fewshot_text(examples: list[tuple[str, str]], question: str) -> str:
    """'Q: ...\\n<solution>\\n\\n' per example, then 'Q: <question>\\n' for the model to continue."""
    shots = "".join(f"Q: {q}\n{solution}\n\n" for q, solution in examples)
    return f"{shots}Q: {question}\n"


@dataclass
class WordProblemTask:
    """Base for numeric word-problem families: subclasses implement `_read(split)`.

    Options: ``prompt_style`` 'chat' (default: instruction + question as one user message)
    or 'fewshot' (completion text with two worked examples, stop strings set).
    """

    name: str = "word"
    path: str | None = None
    prompt_style: str = "chat"
    # Numbers a step may use that the question does not state (unit conversions, "half"):
    # the verify labeler's licence for them (`caspo_lite.quantities.UNIT_CONSTANTS`).
    constants: tuple[str, ...] = UNIT_CONSTANTS

    def __post_init__(self) -> None:
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")

    # -- loading -----------------------------------------------------------------------------
    splits: ClassVar[tuple[str, ...]] = ("test",)

    def _read(self, split: str) -> list[Problem]:
        raise NotImplementedError

    def load(self, n: int | None = None, seed: int = 0, split: str = "test") -> list[Problem]:
        if split not in self.splits:
            raise DataError(f"task '{self.name}' has no split '{split}' (it has: {', '.join(self.splits)})")
        return data.select(self._read(split), n, seed)

    # -- prompting and grading ---------------------------------------------------------------
    def prompt(self, problem: Problem) -> Prompt:
        if self.prompt_style == "fewshot":
            shots = [(q, "\n".join([*steps, f"Answer: {a}"])) for q, steps, a in FEWSHOT_EXAMPLES]
            return Prompt(text=fewshot_text(shots, problem.question), stop=FEWSHOT_STOP)
        content = f"{INSTRUCTION}\n\n{problem.question}"
        return Prompt(messages=({"role": "user", "content": content},))

    def extract_answer(self, text: str) -> str | None:
        return extract_numeric_answer(text)

    def grade(self, predicted: str | None, gold: str) -> bool:
        return grade_numeric(predicted, gold)

    def format_solution(self, problem: Problem) -> str:
        return format_solution(problem)


def rows_of(relative: str, path: str | None) -> tuple[Path, list[tuple[int, dict[str, Any]]]]:
    """Resolve and read one JSONL data file."""
    file = data.resolve_file(relative, path)
    return file, data.read_jsonl(file)
