#!/usr/bin/env bash
# Retrains every model in models/ with the exact commands recorded in models/README.md, then prints
# each file's test figures (eval --json). One thread, as the figures in the READMEs were measured,
# except the PixelCNN prior: two threads (about 34 min; a given thread count gives the same weights).
# About an hour and a half on two cores (the conv VAE, the VQ-VAE and its prior take most of it).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset native-release >/dev/null
cmake --build --preset native-release -j "$(nproc 2>/dev/null || echo 2)" --target latentlab
bin=build/native-release/latentlab
common=(--data mnist --batch 128 --lr 1e-3 --seed 1 --dtype f16 --quiet)

"$bin" train --model vae --epochs 10 "${common[@]}" --out models/vae_mlp.safetensors
"$bin" train --model ae --epochs 10 "${common[@]}" --out models/ae_mlp.safetensors
"$bin" train --model vae --latent 2 --hidden 64 --epochs 10 "${common[@]}" --out models/vae_2d.safetensors
"$bin" train --model ae --latent 2 --hidden 64 --epochs 10 "${common[@]}" --out models/ae_2d.safetensors
"$bin" train --model beta_vae --beta 4 --hidden 64 --epochs 10 "${common[@]}" --out models/beta_vae.safetensors
"$bin" train --model conv_vae --epochs 10 "${common[@]}" --out models/conv_vae.safetensors
"$bin" train --model dae --hidden 128 --latent 32 --epochs 5 "${common[@]}" --out models/dae.safetensors
"$bin" train --model sparse_ae --hidden 196 --tied 1 --epochs 10 "${common[@]}" --out models/sparse_ae.safetensors
"$bin" train --model ksparse_ae --hidden 196 --tied 1 --epochs 5 "${common[@]}" --out models/ksparse_ae.safetensors
"$bin" train --model contractive_ae --hidden 196 --tied 1 --epochs 5 "${common[@]}" --out models/contractive_ae.safetensors
"$bin" train --model vqvae --epochs 5 --ema-decay 0.9 --dead-code-steps 20 "${common[@]}" --out models/vqvae.safetensors
"$bin" train-prior --vqvae models/vqvae.safetensors --epochs 16 --lr-schedule cosine --batch 64 --channels 64 --layers 8 --kernel-a 3 --stacks 2 --classes 10 --seed 1 --threads 2 --dtype f16 --out models/vqvae_prior.safetensors
"$bin" train-classifier --epochs 5 --seed 1 --out models/classifier.safetensors
# The DAE's baseline, a plain AE of the same size, is not shipped (the 6 MB budget): trained here to measure.
mkdir -p build/models-baseline
"$bin" train --model ae --hidden 128 --latent 32 --epochs 5 "${common[@]}" --out build/models-baseline/ae_small.safetensors

for f in models/*.safetensors; do
  case "$f" in *prior*) continue ;; esac  # the prior needs --vqvae (below); the judge is a kind like the rest
  "$bin" eval --model-file "$f" --data mnist --json | tail -1
done
"$bin" eval --model-file build/models-baseline/ae_small.safetensors --corrupt mask:0.25 --json | tail -1
"$bin" eval --model-file models/dae.safetensors --corrupt mask:0.25 --json | tail -1
"$bin" eval --model-file models/vqvae_prior.safetensors --vqvae models/vqvae.safetensors --json | tail -1
