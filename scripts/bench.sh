#!/usr/bin/env bash
# The benchmark suite, one command (issue 5). Benchmarks, never timed tests: every figure comes with a
# ratio to a baseline measured in the same run, since this machine's raw timings are noisy.
#   1. native (release build, -march=native): Google Benchmark (bench_train), then `latentlab bench
#      --json` for the MLP VAE and the conv VQ-VAE at batch 128 on 1 and 2 threads (+ prior sampling);
#   2. PyTorch on the same machine and models (tools/pytorch/bench_torch.py: the same VQ-VAE recipe, real
#      MNIST batches), if Debian's python3-torch is installed: run by run in turn with step 1's runs, and
#      LatentLab with OpenBLAS forced as the "before"; build/bench/native_vs_pytorch.json holds the medians,
#      spreads, per-round ratios and the machine (CPU model, instruction set, OpenBLAS core);
#   3. wasm under node: GEMM GFLOP/s per backend and training images/s (bench_wasm);
#   4. headless Chromium: the page's worker against TensorFlow.js 4.22-wasm, drawing latency, main-thread
#      long tasks, prior sampling (bench/browser_bench.mjs).
# Writes every JSON result to build/bench/ and prints a summary. SECONDS_PER=N sets each measurement's
# length (default 5), ROUNDS=N the runs per side in the interleaved comparisons (default 5; at least 5
# for the README's figures). `scripts/bench.sh native` runs steps 1 and 2 only. Runs scripts/setup.sh
# first, like the other commands.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_PER:-5}"
rounds="${ROUNDS:-5}"
parts="${1:-all}"
out=build/bench
scripts/setup.sh
mkdir -p "$out"
cmake --preset native-release >/dev/null
cmake --build --preset native-release -j "$(nproc 2>/dev/null || echo 2)"
export NODE_PATH=/usr/share/nodejs
if [ "$parts" != native ]; then
  cmake --preset wasm-release >/dev/null
  cmake --build --preset wasm-release -j "$(nproc 2>/dev/null || echo 2)"
fi
bin=build/native-release/latentlab

if [ "$parts" != native ]; then
  echo "== native: Google Benchmark"
  build/native-release/bench_train --benchmark_min_time=1 | tee "$out/bench_train.txt"
fi

echo "== native: LatentLab and PyTorch in turn, $rounds runs each"
# Each round runs, per model and thread count, LatentLab (GEMM chosen by measurement), LatentLab with the
# old default GEMM (OpenBLAS as Debian ships it: the "before"), and PyTorch, the side that starts
# alternating from round to round. bench/summarize_native.py turns the runs into medians and spreads.
runs="$out/native_runs.jsonl"
: >"$runs"
have_torch=0
/usr/bin/python3 -c "import torch" 2>/dev/null && have_torch=1
[ "$have_torch" = 1 ] || echo "== PyTorch: not installed (apt-get install python3-torch libopenblas0-pthread), LatentLab alone"
record() {  # side round model threads: one run, appended to $runs
  local side=$1 round=$2 model=$3 threads=$4 json
  case "$side" in
    latentlab) json=$("$bin" bench --model "$model" --batch 128 --seconds "$secs" --threads "$threads" --json | tail -n 1) ;;
    latentlab_openblas) json=$(LATENTLAB_GEMM=openblas "$bin" bench --model "$model" --batch 128 --seconds "$secs" \
                               --threads "$threads" --json | tail -n 1) ;;
    pytorch) json=$(/usr/bin/python3 tools/pytorch/bench_torch.py --seconds "$secs" --threads "$threads" \
                    --models "$model" | tail -n 1) ;;
  esac
  printf '{"side": "%s", "round": %d, "model": "%s", "threads": %d, "result": %s}\n' \
    "$side" "$round" "$model" "$threads" "$json" >>"$runs"
  echo "round $round $model ${threads}t $side: $(printf '%s' "$json" | grep -o '"[a-z_]*images_per_s[a-z_0-9]*": [0-9.]*' | head -n 1)"
}
sides=(latentlab latentlab_openblas)
"$bin" --version | grep -q openblas || sides=(latentlab)
[ "$have_torch" = 1 ] && sides+=(pytorch)
for round in $(seq 1 "$rounds"); do
  order=("${sides[@]}")
  if (( round % 2 == 0 )); then order=(); for ((i = ${#sides[@]} - 1; i >= 0; i--)); do order+=("${sides[i]}"); done; fi
  for threads in 1 2; do
    for model in vae vqvae; do
      for side in "${order[@]}"; do record "$side" "$round" "$model" "$threads"; done
    done
  done
done
if [ "$have_torch" = 1 ]; then
  /usr/bin/python3 bench/summarize_native.py "$runs" >"$out/native_vs_pytorch.json"
fi
"$bin" bench --model vqvae --batch 128 --seconds "$secs" --json --prior models/vqvae_prior.safetensors | tail -n 1 \
  >"$out/native_prior.json"
[ "$parts" = native ] && exit 0

echo "== wasm under node"
node --no-experimental-fetch build/wasm-release/bench/bench_wasm.js --seconds "$secs" | tee "$out/bench_wasm.txt"

echo "== headless Chromium"
node bench/browser_bench.mjs --seconds "$secs" --rounds "$rounds" --out "$out/browser.json" | tail -n 8
