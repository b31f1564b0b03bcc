"""Read chosen GGUF metadata keys with their full values and value types (to copy them verbatim).

Why not `gguf.GGUFReader`: it maps every tensor and array up front and took ~12 s on SmolLM2's
file on 2 busy cores; copying the tokenizer needs only the `tokenizer.*` keys, which this walk
over the header reads in well under a second. Values keep their GGUF types (strings as raw
bytes, arrays with their item type) so `GGUFWriter.add_key_value` writes back identical bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caspo_lite.quant.gguf_header import _SCALARS, MAGIC, GGUFFormatError, _Cursor

STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class KV:
    """One metadata entry: `vtype`/`sub_type` are GGUF value-type ids; strings are bytes."""

    vtype: int
    value: Any
    sub_type: int | None = None

    def text(self) -> Any:
        """The value with strings decoded (for display and comparisons)."""
        if self.vtype == STRING:
            return self.value.decode("utf-8", errors="replace")
        if self.vtype == ARRAY and self.sub_type == STRING:
            return [v.decode("utf-8", errors="replace") for v in self.value]
        return self.value


class _Reader(_Cursor):
    """The header cursor, keeping strings as bytes and arrays' items (for a verbatim copy)."""

    def value(self, vtype: int, keep: bool) -> tuple[Any, int | None]:
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype]), None
        if vtype == STRING:
            return self.raw_string(), None
        if vtype != ARRAY:
            raise GGUFFormatError(f"unknown metadata value type {vtype} at offset {self.pos}")
        itype, n = self.take("<I"), self.take("<Q")
        if itype in _SCALARS:
            fmt = _SCALARS[itype]
            size = struct.calcsize(fmt)
            start, self.pos = self.pos, self.pos + n * size
            if self.pos > len(self.buf):
                raise GGUFFormatError("file ends inside an array")
            values = list(struct.unpack_from(f"<{n}{fmt[1]}", self.buf, start)) if keep else None
            return values, itype
        return [self.value(itype, keep)[0] for _ in range(n)], itype


def read_metadata(path: Path, want: Callable[[str], bool] = lambda key: True) -> dict[str, KV]:
    """The metadata entries of `path` whose key passes `want` (others are skipped, not decoded).

    Raises:
        GGUFFormatError: not a GGUF file, or the header is cut short.
    """
    with open(path, "rb") as fh:
        head = fh.read(24)
        if len(head) < 24 or head[:4] != MAGIC:
            raise GGUFFormatError(f"{path} is not a GGUF file (bad magic)")
        # the header (metadata + tensor table) of a model up to a few GB fits easily in 64 MB
        buf = head + fh.read(64 << 20)
    cur = _Reader(buf)
    cur.pos = 8
    _, n_kv = cur.take("<Q"), cur.take("<Q")
    out: dict[str, KV] = {}
    for _ in range(n_kv):
        key = cur.string()
        vtype = cur.take("<I")
        keep = want(key)
        value, sub = cur.value(vtype, keep)
        if keep:
            out[key] = KV(vtype, value, sub)
    return out


def tokenizer_metadata(path: Path) -> dict[str, KV]:
    """All `tokenizer.*` keys of a GGUF file (vocabulary, merges, special ids, chat template)."""
    return read_metadata(path, lambda key: key.startswith("tokenizer."))


def add_verbatim(writer: Any, entries: dict[str, KV]) -> None:
    """Write entries into a `gguf.GGUFWriter` with their original value types."""
    from gguf import GGUFValueType

    for key, kv in entries.items():
        sub = GGUFValueType(kv.sub_type) if kv.sub_type is not None else None
        writer.add_key_value(key, kv.value, GGUFValueType(kv.vtype), sub_type=sub)
