"""Inference engines (llama.cpp batched multi-sequence; transformers for parity/GPU)."""
