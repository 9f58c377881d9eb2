#!/usr/bin/env bash
# Regenerate the hashed lock files (uv): requirements/serve.lock (the service, CPU onnxruntime) from pyproject.toml,
# and requirements/gpu.lock (onnxruntime-gpu with its CUDA/cuDNN wheels, the GPU image's swap) held to the same
# versions of what they share. Run after changing dependencies; commit both.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
target=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header)
"$UV" pip compile pyproject.toml "${target[@]}" -o requirements/serve.lock
"$UV" pip compile requirements/gpu.in -c requirements/serve.lock "${target[@]}" -o requirements/gpu.lock
