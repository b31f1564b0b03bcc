"""`caspo-lite export`: a model source -> one GGUF file per requested quant, with provenance.

Pipeline: resolve the source to an HF folder (`caspo_lite.quant.sources`; adapters are merged), write one
lossless GGUF with our writer (f32, or f16 when f16 is asked for and f32 is not), check that
llama.cpp tokenizes a probe text into the same ids as transformers, then quantize that file to
each other type through llama.cpp's C API. Every file goes through a temp name and a rename, so
a failure at any step leaves no partial output.

Tokenizer metadata: a model that was born as a GGUF (the SmolLM2 built-in) gets its original
`tokenizer.*` keys copied verbatim (chat template included); any other model gets them built
from its HF tokenizer, with the llama.cpp pre-tokenizer that splits text the way transformers
does (`detect_pre`).

Provenance (`caspo_lite.*` keys + general.name/quantized_by): the source reference, the sha256 of
its weight files, the adapter's base, and the caspo-lite version. The quant type itself is
`general.file_type`, which llama.cpp sets when it quantizes.

Calibration (``caspo.calibration.*``): the source's calibration file, when it has one
(`source_calibration`), as JSON strings; quantizing copies every key, so each file carries it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from caspo_lite import __version__
from caspo_lite.calibration_file import locate_calibration, read_calibration, round_dir_of, to_gguf_metadata
from caspo_lite.errors import ExportError
from caspo_lite.quant import gguf_writer
from caspo_lite.quant.gguf_meta import add_verbatim, tokenizer_metadata
from caspo_lite.quant.gguf_writer import ARCHS
from caspo_lite.quant.ollama import write_modelfile
from caspo_lite.quant.quantize import (
    WRITTEN_DIRECTLY,
    parse_quants,
    quantize_file,
    quiet_llama,
    types_by_group,
)
from caspo_lite.quant.sources import Source, open_source, read_config

log = logging.getLogger(__name__)

# tokenizer.json Split regexes we know -> llama.cpp pre-tokenizer names
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
KNOWN_SPLITS = {QWEN2_REGEX: "qwen2", LLAMA3_REGEX: "llama-bpe"}
PROBE = (
    "<|im_start|>user\nWhat is 12345 + 678? Don't guess: 3.14159 x 2,000 =\t?  \n\n"
    "Élan café — naïve 😊 ok<|im_end|>\n<|im_start|>assistant\nStep 1: 12345 + 678 = 13023.<|im_end|>\n"
)
CONVERTER_HINT = (
    "convert it with a llama.cpp checkout instead: python llama.cpp/convert_hf_to_gguf.py HF_DIR "
    "--outfile model-f16.gguf --outtype f16 (merge an adapter first), then quantize with llama-quantize"
)


@dataclass
class ExportedFile:
    quant: str
    path: Path
    size: int
    seconds: float
    groups: dict[str, dict[str, int]] = field(default_factory=dict)  # tensor group -> type -> count


@dataclass
class ExportResult:
    reference: str
    sha256: str
    files: list[ExportedFile]
    modelfiles: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for `caspo-lite export --json`)."""
        files = [
            {
                "quant": f.quant,
                "path": str(f.path),
                "bytes": f.size,
                "seconds": round(f.seconds, 2),
                "types": f.groups,
            }
            for f in self.files
        ]
        return {
            "source": self.reference,
            "sha256": self.sha256,
            "files": files,
            "modelfiles": [str(m) for m in self.modelfiles],
        }


@dataclass(frozen=True)
class ChatInfo:
    """What a Modelfile needs from the tokenizer."""

    template: str | None
    eos: str | None


def supported_spec(cfg: dict[str, Any], where: Path) -> Any:
    """The writer's ArchSpec for this config, or a one-line ExportError pointing at the converter."""
    arch = (cfg.get("architectures") or [cfg.get("model_type") or "?"])[0]
    if arch not in ARCHS:
        raise ExportError(
            f"{where}: architecture {arch} is not supported (supported: {', '.join(ARCHS)}); {CONVERTER_HINT}"
        )
    return ARCHS[arch]


def detect_pre(tokenizer_json: dict[str, Any], gguf_arch: str) -> str:
    """llama.cpp's pre-tokenizer name that splits text as transformers will for this folder.

    transformers loads qwen2/qwen3 folders with Qwen2Tokenizer, which splits digits one by one
    whatever tokenizer.json says, so those are always "qwen2". Otherwise: the GPT-2 ByteLevel
    regex -> "gpt-2"; a Split with the Qwen2 or Llama-3 regex -> "qwen2" / "llama-bpe".
    """
    if gguf_arch in ("qwen2", "qwen3"):
        return "qwen2"
    pre = tokenizer_json.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    for step in pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else []:
        regex = (step.get("pattern") or {}).get("Regex") if step.get("type") == "Split" else None
        if regex in KNOWN_SPLITS:
            return KNOWN_SPLITS[regex]
    raise ExportError(
        f"unknown pre-tokenizer {pre.get('type')!r} in tokenizer.json; pass --pre with a llama.cpp "
        "tokenizer.ggml.pre name (gpt-2, qwen2, llama-bpe, smollm, ...) that splits text the same way"
    )


def _add_provenance(writer: Any, src: Source) -> None:
    writer.add_name(src.name)
    writer.add_quantized_by(f"caspo-lite {__version__}")
    writer.add_string("caspo_lite.version", __version__)
    writer.add_string("caspo_lite.source", src.reference)
    writer.add_string("caspo_lite.source_kind", src.kind)
    writer.add_string("caspo_lite.source_sha256", src.sha256)
    if src.base:
        writer.add_string("caspo_lite.base", src.base)


def source_calibration(src: Source) -> dict[str, Any] | None:
    """The calibration file of the model being exported (its round's, or the built-in's), if any.

    Carried into every GGUF as ``caspo.calibration.*`` so a copied file keeps its calibrated
    confidence and CaT thresholds. HF folders, hub ids and adapters have no calibration of
    their own (calibrate the exported GGUF instead).
    """
    if src.kind == "round":
        round_dir = round_dir_of(src.reference)
        return read_calibration(round_dir / "calibration.json") if round_dir is not None else None
    if src.kind == "builtin":
        found = locate_calibration(src.reference)
        return found[0] if found is not None else None
    return None


def _add_calibration(writer: Any, src: Source) -> None:
    data = source_calibration(src)
    if data is not None:
        for key, value in to_gguf_metadata(data).items():
            writer.add_string(key, value)


def _add_tokenizer(writer: Any, src: Source, cfg: dict[str, Any], spec: Any, pre: str | None) -> ChatInfo:
    """Copy tokenizer.* from the origin GGUF, or build it from the HF tokenizer files."""
    if src.tokenizer_gguf is not None and pre is None:
        entries = tokenizer_metadata(src.tokenizer_gguf)
        tokens = entries["tokenizer.ggml.tokens"].text()
        if len(tokens) != cfg["vocab_size"]:
            raise ExportError(
                f"{src.tokenizer_gguf} has {len(tokens)} tokens but {src.hf_dir} config says "
                f"vocab_size {cfg['vocab_size']}"
            )
        add_verbatim(writer, entries)
        eos = entries.get("tokenizer.ggml.eos_token_id")
        template = entries.get("tokenizer.chat_template")
        return ChatInfo(template.text() if template else None, tokens[eos.value] if eos else None)
    tok_json = gguf_writer._read_json(src.hf_dir / "tokenizer.json")
    meta = gguf_writer.read_tokenizer(
        src.hf_dir, cfg["vocab_size"], spec, pre or detect_pre(tok_json, spec.gguf_arch)
    )
    gguf_writer._add_tokenizer(writer, meta)
    eos = meta.tokens[meta.eos_id] if meta.eos_id is not None else None
    return ChatInfo(meta.chat_template, eos)


def write_lossless(src: Source, out: Path, dtype: str, pre: str | None = None) -> ChatInfo:
    """Write the f32/f16 GGUF of `src` at `out` (temp + rename) with tokenizer and provenance keys."""
    import gguf

    cfg = read_config(src.hf_dir)
    spec = supported_spec(cfg, src.hf_dir)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), spec.gguf_arch)
    try:
        _add_provenance(writer, src)
        _add_calibration(writer, src)
        gguf_writer._add_hparams(writer, cfg, dtype)
        chat = _add_tokenizer(writer, src, cfg, spec, pre)
        for name, data in gguf_writer._gguf_tensors(src.hf_dir, cfg, spec, dtype):
            writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return chat


def token_ids_agree(gguf_path: Path, hf_dir: Path, text: str = PROBE) -> tuple[list[int], list[int]]:
    """(llama.cpp ids, transformers ids) of `text`, specials parsed, no BOS added by either."""
    import llama_cpp
    from transformers import AutoTokenizer

    hf_ids = list(AutoTokenizer.from_pretrained(hf_dir)(text, add_special_tokens=False).input_ids)
    with quiet_llama():
        llm = llama_cpp.Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
    try:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    finally:
        llm.close()
    return list(ids), hf_ids


def output_paths(out: Path, name: str, quants: Sequence[str]) -> dict[str, Path]:
    """`out` is a .gguf file (one quant) or a folder (one `NAME-QUANT.gguf` per quant)."""
    if out.suffix.lower() == ".gguf":
        if len(quants) > 1:
            raise ExportError(
                f"--out {out} is one file but {len(quants)} quants were asked for; give a folder"
            )
        return {quants[0]: out}
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "model"
    return {q: out / f"{safe}-{q}.gguf" for q in quants}


def export(
    source: str | Path,
    out: str | Path,
    quants: Sequence[str] | str = ("f16",),
    base: str | None = None,
    pre: str | None = None,
    ollama: bool = False,
    verify: bool = True,
    threads: int | None = None,
    on_file: Callable[[ExportedFile], None] | None = None,
) -> ExportResult:
    """Export `source` to GGUF, one file per quant (see the module docstring for the steps).

    Args:
        source: built-in name, HF folder, hub id, PEFT adapter folder, or training round/run folder.
        out: a .gguf path (one quant) or a folder.
        quants: names from quant.quantize.QUANTS, repeated or comma separated.
        base: the adapter's base model (overrides adapter_config.json's base_model_name_or_path).
        pre: force the llama.cpp pre-tokenizer name (also disables the verbatim GGUF tokenizer copy).
        ollama: also write `<file>.Modelfile` beside each GGUF.
        verify: compare llama.cpp and transformers token ids on a probe text before quantizing.
        on_file: called after each file is finished (progress for the CLI).
    Raises:
        ExportError / ModelError: bad source, unsupported architecture, tokenizer mismatch,
            quantization failure. No output file is left behind.
    """
    wanted = parse_quants(quants)
    out = Path(out).expanduser()
    with open_source(source, base=base, keep_f32="f32" in wanted) as src:
        targets = output_paths(out, src.name, wanted)
        for path in targets.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        lossless = "f32" if "f32" in wanted or "f16" not in wanted else "f16"
        first = targets.get(lossless) or next(iter(targets.values())).with_name(
            f".{src.name}-{lossless}.intermediate-{os.getpid()}.gguf"
        )
        done: list[ExportedFile] = []
        written: list[Path] = []  # every output of this run, removed again if a later step fails
        try:
            t0 = time.perf_counter()
            chat = write_lossless(src, first, lossless, pre)
            written.append(first)
            if verify:
                _verify(first, src)
            if lossless in targets:
                done.append(_finished(lossless, first, time.perf_counter() - t0, on_file))
            for quant in wanted:
                if quant == lossless:
                    continue
                t1 = time.perf_counter()
                if quant in WRITTEN_DIRECTLY:
                    write_lossless(src, targets[quant], quant, pre)
                else:
                    quantize_file(first, targets[quant], quant, threads)
                written.append(targets[quant])
                done.append(_finished(quant, targets[quant], time.perf_counter() - t1, on_file))
        except BaseException:
            for path in written:  # all or nothing: a failed later quant removes the earlier ones too
                path.unlink(missing_ok=True)
            raise
        finally:
            if lossless not in targets:
                first.unlink(missing_ok=True)
        result = ExportResult(reference=src.reference, sha256=src.sha256, files=done)
        if ollama:
            result.modelfiles = [write_modelfile(f.path, chat.template, chat.eos) for f in done]
        return result


def _finished(
    quant: str, path: Path, seconds: float, on_file: Callable[[ExportedFile], None] | None
) -> ExportedFile:
    item = ExportedFile(quant, path, path.stat().st_size, seconds, types_by_group(path))
    log.info("wrote %s (%s, %d bytes, %.1f s)", path, quant, item.size, seconds)
    if on_file is not None:
        on_file(item)
    return item


def _verify(path: Path, src: Source) -> None:
    """Refuse a GGUF whose tokenizer disagrees with transformers (a copied one only warns)."""
    with contextlib.suppress(ImportError):
        ids, hf_ids = token_ids_agree(path, src.hf_dir)
        if ids == hf_ids:
            return
        at = next(
            (i for i, (a, b) in enumerate(zip(ids, hf_ids, strict=False)) if a != b),
            min(len(ids), len(hf_ids)),
        )
        message = (
            f"llama.cpp and transformers tokenize a probe text differently ({len(ids)} vs {len(hf_ids)} "
            f"ids, first difference at {at}); pass --pre with the right llama.cpp pre-tokenizer name"
        )
        if src.tokenizer_gguf is not None:
            log.warning("%s (tokenizer copied from %s, kept as is)", message, src.tokenizer_gguf.name)
            return
        raise ExportError(message)
