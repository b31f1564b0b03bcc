"""Write an Ollama Modelfile beside a GGUF: FROM, TEMPLATE (Go template), PARAMETER stop, SYSTEM.

Why convert: Ollama does not run the Jinja chat template stored in the GGUF; it wants a Go
template over `.Messages`. Our models (tiny, SmolLM2, Qwen) all use ChatML, which has one fixed
Go form, so we recognise ChatML (`<|im_start|>` in the template) and write that form, plus
the default system prompt when the Jinja template injects one (SmolLM2 does). Another
template family gets no TEMPLATE line and a comment saying so, rather than a wrong one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

CHATML_GO = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
# SmolLM2/Qwen style: "{{ '<|im_start|>system\nYou are ...<|im_end|>\n' }}" when no system message is given
_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\\n|\n)(.+?)<\|im_end\|>", re.DOTALL)


def is_chatml(template: str | None) -> bool:
    return bool(template) and "<|im_start|>" in template and "<|im_end|>" in template


def default_system(template: str) -> str | None:
    """The literal system prompt a ChatML Jinja template adds when the chat has none, if any."""
    match = _DEFAULT_SYSTEM.search(template)
    if not match or any(c in match.group(1) for c in ("{{", "{%", "'", '"')):
        return None
    return match.group(1).replace("\\n", "\n")


def stop_tokens(template: str | None, eos: str | None) -> list[str]:
    """ChatML's turn markers plus the eos token, without repeats."""
    stops = ["<|im_start|>", "<|im_end|>"] if is_chatml(template) else []
    if eos and eos not in stops:
        stops.append(eos)
    return stops


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def modelfile_text(gguf_name: str, template: str | None, eos: str | None) -> str:
    """The Modelfile for a GGUF in the same folder (FROM uses a relative path)."""
    lines = [f"FROM ./{gguf_name}", ""]
    if is_chatml(template):
        lines += [f'TEMPLATE """{CHATML_GO}"""', ""]
        system = default_system(template or "")
        if system:
            lines += [f'SYSTEM """{system}"""', ""]
    else:
        lines += [
            "# The chat template is not ChatML: write a TEMPLATE for it by hand",
            "# (https://github.com/ollama/ollama/blob/main/docs/template.md).",
            "",
        ]
    lines += [f"PARAMETER stop {_quote(s)}" for s in stop_tokens(template, eos)]
    return "\n".join(lines).rstrip() + "\n"


def write_modelfile(gguf: Path, template: str | None, eos: str | None) -> Path:
    """Write `<gguf stem>.Modelfile` next to `gguf` (temp + rename); returns its path."""
    out = gguf.with_suffix(".Modelfile")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(modelfile_text(gguf.name, template, eos), encoding="utf-8")
    os.replace(tmp, out)
    return out
