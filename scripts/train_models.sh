#!/usr/bin/env bash
# Retrains every model in models/ with the exact commands recorded in models/README.md, then prints
# each file's test figures (eval --json). One thread, as the figures in the README were measured.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset native-release >/dev/null
cmake --build --preset native-release -j "$(nproc 2>/dev/null || echo 2)" --target latentlab
bin=build/native-release/latentlab

"$bin" train --model vae --data mnist --epochs 10 --batch 128 --lr 1e-3 --seed 1 --dtype f16 --quiet --out models/vae_mlp.safetensors
"$bin" train --model ae  --data mnist --epochs 10 --batch 128 --lr 1e-3 --seed 1 --dtype f16 --quiet --out models/ae_mlp.safetensors

"$bin" eval --model-file models/vae_mlp.safetensors --data mnist --samples 10 --json | tail -1
"$bin" eval --model-file models/ae_mlp.safetensors --data mnist --json | tail -1
