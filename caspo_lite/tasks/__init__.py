"""Task families: load, prompt, extract answer, grade.

`get_task(name, path=None, **options)` builds one by name; `TASK_NAMES` lists them. File
tasks find their data through `path`, else ``CASPO_LITE_DATA``, else ``../shared/data``
(see `caspo_lite.tasks.data`). Options are the family's dataclass fields, e.g.
``get_task("arith", level="medium")``, ``get_task("gsm8k", prompt_style="fewshot")``,
``get_task("jsonl", path="mine.jsonl", question_field="q", answer_field="a")``.
"""

from __future__ import annotations

from typing import Any

from caspo_lite.errors import ConfigError
from caspo_lite.tasks.base import Problem, Prompt, Task

TASK_NAMES: tuple[str, ...] = (
    "arith",
    "gsm8k",
    "math500",
    "aime24",
    "amc23",
    "svamp",
    "asdiv",
    "multiarith",
    "jsonl",
)


def get_task(name: str, path: str | None = None, **options: Any) -> Task:
    """A task by name; ConfigError names the known tasks or the bad option."""
    from caspo_lite.tasks.arith import ArithTask
    from caspo_lite.tasks.asdiv import ASDivTask
    from caspo_lite.tasks.gsm8k import GSM8KTask
    from caspo_lite.tasks.jsonl import JsonlTask
    from caspo_lite.tasks.math import MathTask
    from caspo_lite.tasks.multiarith import MultiArithTask
    from caspo_lite.tasks.svamp import SVAMPTask

    if name not in TASK_NAMES:
        raise ConfigError(f"unknown task '{name}' (known: {', '.join(TASK_NAMES)})")
    try:
        if name == "arith":
            return ArithTask(**options)
        if name in ("math500", "aime24", "amc23"):
            return MathTask(name=name, path=path, **options)
        cls = {"gsm8k": GSM8KTask, "svamp": SVAMPTask, "asdiv": ASDivTask, "multiarith": MultiArithTask}.get(
            name
        )
        return (cls or JsonlTask)(path=path, **options)
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
        from dataclasses import replace

        from caspo_lite.tasks.arith import PROMPTS, get_level

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


__all__ = ["TASK_NAMES", "Problem", "Prompt", "Task", "configured_task", "get_task"]
