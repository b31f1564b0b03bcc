"""The known library warnings are silenced by message; every other warning still shows."""

from __future__ import annotations

import warnings

from caspo_lite.quiet import quiet_library_warnings


def test_the_gradient_checkpointing_alias_warning_is_silenced_and_others_are_not() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_warnings()
        warnings.warn(
            "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use "
            "`is_activation_checkpointing` instead.",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]


def test_a_peft_model_reads_the_alias_without_a_warning() -> None:
    """The real source of the warning: transformers' property read by peft/TRL."""
    transformers = __import__("pytest").importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = transformers.LlamaForCausalLM(config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_warnings()
        _ = model.is_gradient_checkpointing
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_every_cli_command_installs_the_filters() -> None:
    from typer.testing import CliRunner

    from caspo_lite.cli import app
    from caspo_lite.quiet import KNOWN_LIBRARY_WARNINGS

    with warnings.catch_warnings():
        warnings.resetwarnings()
        result = CliRunner().invoke(app, ["models"])
        patterns = {f[1].pattern for f in warnings.filters if f[0] == "ignore" and f[1] is not None}
    assert result.exit_code == 0, result.output
    assert {message for _, message in KNOWN_LIBRARY_WARNINGS} <= patterns
