"""The training task and its problem lists (train / dev), built from the config once per run."""

from __future__ import annotations

from caspo_lite.errors import ConfigError
from caspo_lite.tasks import configured_task
from caspo_lite.tasks.base import Problem, Task
from caspo_lite.train.config import TrainConfig


def build_task(cfg: TrainConfig) -> Task:
    """``task.*`` plus ``sample.prompt_style`` ('task' keeps the task's own prompt format)."""
    style = None if cfg.sample.prompt_style == "task" else cfg.sample.prompt_style
    level = cfg.task.level if cfg.task.name == "arith" else None
    return configured_task(cfg.task.name, cfg.task.path or None, level=level, prompt_style=style)


def split_problems(task: Task, cfg: TrainConfig) -> tuple[list[Problem], list[Problem]]:
    """(train, dev) problems. Tasks with a train split use it; others split their test file."""
    n_train, n_dev, seed = cfg.task.n_train, cfg.task.n_dev, cfg.task.seed
    if cfg.task.name == "arith":
        return task.load(n_train, seed=seed, split="train"), task.load(n_dev, seed=seed, split="dev")
    splits = tuple(getattr(task, "splits", ("test",)))
    if "train" in splits:
        train = task.load(None, seed=seed, split="train")
        dev_pool = task.load(None, seed=seed, split="dev" if "dev" in splits else "test")
    else:  # a test-only file (a user's JSONL): dev first, the rest for training
        pool = task.load(None, seed=seed, split="test")
        train, dev_pool = pool[n_dev:], pool[:n_dev]
    if len(train) < n_train:
        raise ConfigError(
            f"task.n_train = {n_train} but {cfg.task.name} has only {len(train)} training problems"
        )
    return train[:n_train], dev_pool[:n_dev]
