"""The `caspo-lite` command line: a thin Typer layer over the library.

This is the only module of the library that imports typer. Every command body calls library
functions; `friendly` turns the library's `CaspoError`s into one red line and a non-zero exit
(tracebacks stay for real bugs). Heavy imports (torch, llama_cpp, trl) happen inside the
commands so `caspo-lite --help` is fast.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from caspo_lite.errors import CaspoError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="caspo-lite",
    help=(
        "CASPO training and CaT (confidence-aware thought) inference for reasoning LLMs on one GPU or a laptop.\n\n"
        "Start with `caspo-lite demo`; `caspo-lite models --check` verifies the built-in models."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red line to stderr and return the Exit to raise."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def friendly(fn: F) -> F:
    """Turn a CaspoError (a user mistake or missing resource) into one line + exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CaspoError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted; rerun the same command to resume where it stopped", 130) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from caspo_lite import __version__

        typer.echo(f"caspo-lite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Keeps `caspo-lite` a command group even while it has few commands."""


def echo_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


# --- models (foundation) ----------------------------------------------------------------------


@app.command()
@friendly
def models(
    check: Annotated[bool, typer.Option("--check", help="Load each built-in model and run one token.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the built-in models (and with --check, prove they load and run offline)."""
    from caspo_lite.models import check_builtin_models, list_builtin_models

    rows = check_builtin_models() if check else list_builtin_models()
    if as_json:
        echo_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="caspo-lite built-in models")
    for col in rows[0].keys() if rows else ["name"]:
        table.add_column(str(col))
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


# --- solve / demo (inference) -------------------------------------------------------------------

# --- export / inspect (quant) -------------------------------------------------------------------

# --- train / data (training) -------------------------------------------------------------------

# --- eval (evaluation) --------------------------------------------------------------------------

# --- tui / chat ---------------------------------------------------------------------------------


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
