"""Shared bits of the training-screen tests: an app on temp folders, waiting, the fake trainer."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from caspo_lite.tui.app import CaspoApp, make_app

FAKE = Path(__file__).with_name("_tui_fake_trainer.py")
FAKE_PREFIX = (sys.executable, str(FAKE))
SIZE = (140, 48)

FAKE_RECIPE = """
[model]
name = "tiny"
[task]
n_train = 4
[sample]
n = 2
[dpo]
max_steps = 4
[rounds]
n = 1
[fake]
delay = 0.02
"""


def app_on(tmp_path: Path, mode: str, prefix: tuple[str, ...] | None = FAKE_PREFIX, **kw) -> CaspoApp:  # noqa: ANN003
    recipes = tmp_path / "recipes"
    if not recipes.exists():
        recipes.mkdir()
        (recipes / "fake.toml").write_text(FAKE_RECIPE)
    return make_app(
        mode=mode,
        runs_root=tmp_path / "runs",
        recipes_root=recipes,
        train_prefix=prefix,
        history_file=tmp_path / "history.jsonl",
        export_dir=tmp_path / "exports",
        poll_s=0.1,
        **kw,
    )


async def until(pilot, condition, timeout_s: float = 30.0, what: str = "the UI") -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not condition():
        assert loop.time() < end, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def run(coro) -> None:  # noqa: ANN001
    asyncio.run(coro)
