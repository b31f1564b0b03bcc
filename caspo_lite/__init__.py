"""caspo-lite: CASPO training and CaT inference for reasoning LLMs on consumer hardware.

The library never imports typer or textual: the CLI (`caspo_lite.cli`) and the TUI (`tui/`)
are clients of it, and so are the tests.
"""

__version__ = "0.1.0"
