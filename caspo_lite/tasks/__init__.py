"""Task families: load, prompt, extract answer, grade.

`get_task(name, path=None, **options)` builds one by name; `TASK_NAMES` lists them. File
tasks find their data through `path`, else ``CASPO_LITE_DATA``, else ``../shared/data``
(see `caspo_lite.tasks.data`). Options are the family's dataclass fields, e.g.
``get_task("arith", level="medium")``, ``get_task("gsm8k", prompt_style="fewshot")``,
``get_task("jsonl", path="mine.jsonl", question_field="q", answer_field="a")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from caspo_lite.errors import ConfigError
from caspo_lite.registry import Registry
from caspo_lite.tasks.arith import PROMPTS, ArithTask, get_level
from caspo_lite.tasks.asdiv import ASDivTask
from caspo_lite.tasks.base import Problem, Prompt, Task
from caspo_lite.tasks.gsm8k import GSM8KTask
from caspo_lite.tasks.jsonl import JsonlTask
from caspo_lite.tasks.math import MathTask
from caspo_lite.tasks.multiarith import MultiArithTask
from caspo_lite.tasks.svamp import SVAMPTask


def _arith(path: str | None = None, **options: Any) -> Task:
    return ArithTask(**options)  # generated: no data file


def _math(name: str) -> Callable[..., Task]:
    def build(path: str | None = None, **options: Any) -> Task:
        return MathTask(name=name, path=path, **options)

    return build


TASKS: Registry[Callable[..., Task]] = Registry(
    "task",
    {
        "arith": _arith,
        "gsm8k": GSM8KTask,
        "math500": _math("math500"),
        "aime24": _math("aime24"),
        "amc23": _math("amc23"),
        "svamp": SVAMPTask,
        "asdiv": ASDivTask,
        "multiarith": MultiArithTask,
        "jsonl": JsonlTask,
    },
)
TASK_NAMES = TASKS.names


def get_task(name: str, path: str | None = None, **options: Any) -> Task:
    """A task by name; ConfigError names the known tasks or the bad option."""
    build = TASKS[name]
    try:
        return build(path=path, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"task '{name}': {exc}") from None


def configured_task(
    name: str, path: str | None = None, level: str | None = None, prompt_style: str | None = None
) -> Task:
    """A task as a recipe or an eval names it: ``level`` (arith only) and a prompt style.

    One place for what train and eval both do, so a round's dev figures and an eval of the same
    task and style see the same prompt. ``None`` keeps the task's own default.
    """
    if name == "arith":
        chosen = get_level(level or "default")
        if prompt_style is not None:
            if prompt_style not in PROMPTS:
                raise ConfigError(f"task 'arith': prompt style must be one of {', '.join(PROMPTS)}")
            chosen = replace(chosen, prompt=prompt_style)
        return get_task("arith", level=chosen)
    if level not in (None, "default"):
        raise ConfigError(f"task '{name}': only arith has levels (got level {level!r})")
    options = {} if prompt_style is None else {"prompt_style": prompt_style}
    return get_task(name, path=path, **options)


__all__ = ["TASKS", "TASK_NAMES", "Problem", "Prompt", "Task", "configured_task", "get_task"]
