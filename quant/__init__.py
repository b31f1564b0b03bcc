"""Model export: merge LoRA, write GGUF files from HF folders, quantize (llama.cpp C API).

`gguf_writer.write_gguf` is the HF -> GGUF step; it is written on the `gguf` package (no code
from llama.cpp's converter) and keeps one spec per architecture so new ones are a table entry.
"""
