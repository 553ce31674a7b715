#!/usr/bin/env bash
# The demo command, until the web page exists: sets everything up, builds the `latentlab` tool, and
# shows the pretrained models at work: their test figures, reconstructions and samples (PNG files in
# demo-out/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset native-release >/dev/null
cmake --build --preset native-release -j "$(nproc 2>/dev/null || echo 2)" --target latentlab
bin=build/native-release/latentlab
out=demo-out
mkdir -p "$out"
for m in vae_mlp ae_mlp; do
  echo
  "$bin" eval --model-file "models/$m.safetensors" --data mnist
  "$bin" reconstruct --model-file "models/$m.safetensors" --count 32 --out "$out/${m}_reconstructions.png"
done
"$bin" sample --model-file models/vae_mlp.safetensors --count 64 --out "$out/vae_mlp_samples.png"
"$bin" sample --model-file models/vae_mlp.safetensors --count 64 --temperature 0.7 --out "$out/vae_mlp_samples_t0.7.png"
echo
echo "Pictures are in $(pwd)/$out. Train your own: $bin train --help"
