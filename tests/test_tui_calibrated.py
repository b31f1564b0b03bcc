"""The chat answer card shows the calibrated P(correct) as a percentage (raw score beside it),
"uncalibrated" when the model has no calibration, and "Not sure" below --abstain-below."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from _tui_script import ScriptedSource

from caspo_lite.calibration import fit_answer_calibration, save_answer_calibration
from caspo_lite.config import SearchSection
from caspo_lite.tui.app import make_app
from caspo_lite.tui.screens.chat import ChatScreen
from caspo_lite.tui.settings import ChatSettings


def calibrated_round(root: Path) -> tuple[Path, float]:
    """A round folder whose calibration maps the scripted answer's confidence to a known P."""
    rng = np.random.default_rng(0)
    s = rng.uniform(0.6, 1.0, 200)
    y = rng.random(200) < (s - 0.55)
    cal = fit_answer_calibration([{"path": float(v)} for v in s], y, "cat", candidate_signals=("path",))
    round_dir = root / "run" / "round-1"
    save_answer_calibration(round_dir / "calibration.json", cal)
    return round_dir, cal.prob(0.95)  # 0.95: the winning path's confidence in the script


def answer_card(tmp_path: Path, settings: ChatSettings) -> str:
    async def go() -> str:
        app = make_app(
            settings,
            source=ScriptedSource(),
            mode="chat",
            history_file=tmp_path / "history.jsonl",
            export_dir=tmp_path / "exports",
        )
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause()
            await pilot.press(*"what is (3+4)*2", "enter")
            screen = pilot.app.screen
            assert isinstance(screen, ChatScreen)
            await pilot.app.workers.wait_for_complete()
            for _ in range(500):
                if not screen.busy:
                    break
                await pilot.pause(0.02)
            await pilot.pause()
            return screen.conversation.texts()[1]

    return asyncio.run(go())


def test_calibrated_percentage_with_the_raw_score(tmp_path: Path) -> None:
    round_dir, p = calibrated_round(tmp_path)
    card = answer_card(tmp_path, ChatSettings(model=str(round_dir), search=SearchSection(k=3)))
    assert f"**Answer: 14** · {p:.0%} likely right (raw 0.95) · cat" in card
    assert "uncalibrated" not in card


def test_uncalibrated_model_says_so(tmp_path: Path) -> None:
    round_dir = tmp_path / "bare" / "round-1"
    round_dir.mkdir(parents=True)
    card = answer_card(tmp_path, ChatSettings(model=str(round_dir), search=SearchSection(k=3)))
    assert "**Answer: 14** · confidence 0.95 (uncalibrated) · cat" in card


def test_abstention_reads_not_sure_with_the_best_guess(tmp_path: Path) -> None:
    round_dir, p = calibrated_round(tmp_path)
    settings = ChatSettings(model=str(round_dir), search=SearchSection(k=3), abstain_below=min(1.0, p + 0.05))
    card = answer_card(tmp_path, settings)
    assert "**Not sure** (best guess 14)" in card and f"{p:.0%} likely right" in card
