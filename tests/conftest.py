"""Shared fixtures: an isolated CASPO_LITE_HOME, the ../shared data folder, model fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CASPO_LITE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real user dirs; the model cache is shared per session for speed."""
    fixed = os.environ.get("CASPO_LITE_TEST_HOME")  # set it to keep built models across runs
    home = Path(fixed) if fixed else tmp_path_factory.getbasetemp() / "home"
    monkeypatch.setenv("CASPO_LITE_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip with the reason (a user's clone has no ../shared)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA} (set CASPO_LITE_SHARED_DATA to its folder)")
    return SHARED_DATA
