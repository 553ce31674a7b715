#!/usr/bin/env bash
# The benchmark suite, one command (issue 5). Benchmarks, never timed tests: every figure comes with a
# ratio to a baseline measured in the same run, since this machine's raw timings are noisy.
#   1. native (release build, -march=native): Google Benchmark (bench_train), then `latentlab bench
#      --json` for the MLP VAE and the conv VQ-VAE at batch 128 on 1 and 2 threads (+ prior sampling);
#   2. PyTorch on the same machine and models, if Debian's python3-torch is installed (the native baseline);
#   3. wasm under node: GEMM GFLOP/s per backend and training images/s (bench_wasm);
#   4. headless Chromium: the page's worker against TensorFlow.js 4.22-wasm, drawing latency, main-thread
#      long tasks, prior sampling (bench/browser_bench.mjs).
# Writes every JSON result to build/bench/ and prints a summary. SECONDS_PER=N sets each measurement's
# length (default 5). Runs scripts/setup.sh first, like the other commands.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_PER:-5}"
out=build/bench
scripts/setup.sh
mkdir -p "$out"
cmake --preset native-release >/dev/null
cmake --build --preset native-release -j "$(nproc 2>/dev/null || echo 2)"
export NODE_PATH=/usr/share/nodejs
cmake --preset wasm-release >/dev/null
cmake --build --preset wasm-release -j "$(nproc 2>/dev/null || echo 2)"
bin=build/native-release/latentlab

echo "== native: Google Benchmark"
build/native-release/bench_train --benchmark_min_time=1 | tee "$out/bench_train.txt"

echo "== native: latentlab bench"
: >"$out/native.jsonl"
for threads in 1 2; do
  "$bin" bench --model vae --batch 128 --seconds "$secs" --threads "$threads" --json | tail -n 1 | tee -a "$out/native.jsonl"
  "$bin" bench --model vqvae --batch 128 --seconds "$secs" --threads "$threads" --json \
    --prior models/vqvae_prior.safetensors | tail -n 1 | tee -a "$out/native.jsonl"
done

if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== PyTorch, same machine, same models"
  /usr/bin/python3 tools/pytorch/bench_torch.py --seconds "$secs" --threads 1 2 | tee "$out/pytorch.json"
else
  echo "== PyTorch: not installed (apt-get install python3-torch libopenblas0-pthread), skipped"
fi

echo "== wasm under node"
node --no-experimental-fetch build/wasm-release/bench/bench_wasm.js --seconds "$secs" | tee "$out/bench_wasm.txt"

echo "== headless Chromium"
node bench/browser_bench.mjs --seconds "$((secs * 2))" --out "$out/browser.json" | tail -n 8
