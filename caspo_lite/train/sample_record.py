"""One problem's sample record: its seed, its prompt text, and its steps with their tokens.

Shared by the in-process sampler (`caspo_lite.train.sampling`) and the endpoint sampler
(`caspo_lite.train.remote_sampling`), so both write the same record and neither imports the other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from caspo_lite.tasks.base import Prompt


def problem_seed(seed: int, round_index: int, problem_id: str) -> int:
    """A 63-bit seed from (run seed, round, problem id); stable across processes and platforms."""
    digest = hashlib.sha256(f"{seed}:{round_index}:{problem_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def prompt_text(prompt: Prompt, tokenizer: Any | None) -> str:
    """The prompt as model text (the DPO "prompt" column): raw text, or the chat template applied."""
    if prompt.text is not None:
        return prompt.text
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            list(prompt.messages), tokenize=False, add_generation_prompt=True
        )
    return "\n".join(m["content"] for m in prompt.messages) + "\n"


@dataclass
class Trace:
    """One branch's tokens as it was sampled, and where each of its steps ended."""

    tokens: list[int]
    pieces: list[str]
    confs: list[float]
    step_lens: list[int]


def steps_of(trace: Trace, text: str) -> list[dict[str, Any]]:
    """Step records over the branch's tokens, cut to the finished text (stop strings trimmed)."""
    steps, start = [], 0
    for n in trace.step_lens:
        piece_text = "".join(trace.pieces[start : start + n])
        steps.append(
            {
                "text": piece_text,
                "token_ids": trace.tokens[start : start + n],
                "token_confidences": trace.confs[start : start + n],
            }
        )
        start += n
    out, pos = [], 0
    for st in steps:
        remaining = text[pos:]
        if not remaining:
            break
        if not remaining.startswith(st["text"]):  # the stop string was trimmed inside this step
            st = {**st, "text": remaining if st["text"].startswith(remaining) else st["text"]}
        pos += len(st["text"])
        if st["text"].strip():
            out.append(st)
        elif out:  # whitespace-only tail joins the previous step
            out[-1] = {**out[-1], "text": out[-1]["text"] + st["text"]}
    return out
