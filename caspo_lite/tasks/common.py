"""What the word-problem families share: prompts in our answer format, numeric grading.

The model-facing answer format is the same everywhere: one step per line, then a last line
``Answer: <number>``. Chat prompts say so in the instruction; few-shot completion prompts
show it ("Q: ... / step lines / Answer: x") and stop at the next "Q:".

Why ``fewshot-train``: a 135M model copies the chat instruction's example line
("12 + 5 = 17") as its first step on word problems (MultiArith base greedy 0/40, issue #20),
and two hand-written shots are a small sample of the format. ``fewshot-train`` shows
`TRAIN_SHOTS` real worked problems from GSM8K's *train* split (the shortest two-step ones, a
fixed choice), so no evaluated problem is ever an example; a GSM8K eval drops them from its
problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from caspo_lite.errors import DataError
from caspo_lite.quantities import UNIT_CONSTANTS
from caspo_lite.tasks import data
from caspo_lite.tasks.answers import extract_numeric_answer, grade_numeric
from caspo_lite.tasks.base import Problem, Prompt
from caspo_lite.tasks.gsm8k_rows import read_gsm8k

INSTRUCTION = (
    "Solve the problem step by step. Write one calculation per line, like '12 + 5 = 17'. "
    "End with a last line 'Answer: <number>'."
)
FEWSHOT_STOP = ("\nQ:", "\n\n\n")
PROMPT_STYLES = ("chat", "fewshot", "fewshot-train")
TRAIN_SHOTS = 3  # worked examples in a ``fewshot-train`` prompt
_ONE_OPERATION = re.compile(r"^\s*\d+(?:\.\d+)?\s*[-+*/]\s*\d+(?:\.\d+)?\s*=\s*\d+(?:\.\d+)?\s*$")
_SHOT_MAX_QUESTION_CHARS = 220  # short shots keep the prompt (and every branch's KV) small

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


def pick_train_shots(problems: list[Problem], k: int = TRAIN_SHOTS) -> list[Problem]:
    """The `k` shortest two-step problems whose every gold step is one ``a op b = c``.

    One operation per line is the format our steps and labels assume. Pure and deterministic
    (ties by position), so a prompt is the same on every machine.
    """
    fits = [
        (len(p.question), i, p)
        for i, p in enumerate(problems)
        if len(p.gold_steps) == 2
        and all("=" in step for step in p.gold_steps)
        and sum(bool(_ONE_OPERATION.match(str(c))) for c in p.meta.get("calculations", ())) == 2
        and len(p.question) <= _SHOT_MAX_QUESTION_CHARS
    ]
    return [p for _, _, p in sorted(fits)[:k]]


def train_shots(path: str | None = None) -> list[Problem]:
    """``fewshot-train``'s examples, drawn from GSM8K's train split (never its dev or test)."""
    try:
        return pick_train_shots(read_gsm8k("train", path if path and Path(path).is_dir() else None))
    except DataError as exc:
        raise DataError(
            f"the fewshot-train prompt takes its examples from GSM8K train: {exc} "
            "(or choose another prompt style: fewshot or chat)"
        ) from None


@dataclass
class WordProblemTask:
    """Base for numeric word-problem families: subclasses implement `_read(split)`.

    Options: ``prompt_style`` 'chat' (default: instruction + question as one user message),
    'fewshot' (completion text with two hand-written worked examples, stop strings set) or
    'fewshot-train' (the same with `TRAIN_SHOTS` GSM8K train problems as the examples).
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
        problems = self._read(split)
        if self.prompt_style == "fewshot-train":  # an example is never also a question
            shown = {shot.question for shot in self._train_shots()}
            problems = [p for p in problems if p.question not in shown]
        return data.select(problems, n, seed)

    def _train_shots(self) -> list[Problem]:
        cached = self.__dict__.get("_shots_cache")
        if cached is None:
            cached = self.__dict__["_shots_cache"] = train_shots(self.path)
        return cached

    # -- prompting and grading ---------------------------------------------------------------
    def prompt(self, problem: Problem) -> Prompt:
        if self.prompt_style == "fewshot":
            shots = [(q, "\n".join([*steps, f"Answer: {a}"])) for q, steps, a in FEWSHOT_EXAMPLES]
            return Prompt(text=fewshot_text(shots, problem.question), stop=FEWSHOT_STOP)
        if self.prompt_style == "fewshot-train":
            examples = [(s.question, format_solution(s)) for s in self._train_shots()]
            return Prompt(text=fewshot_text(examples, problem.question), stop=FEWSHOT_STOP)
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
