#!/usr/bin/env bash
# The toy kind of the test tree (tests/toy_kind.cpp) through the command-line tool's own code paths:
# latentlab_toy is latentlab with that one file linked in. It must list "toy" in train --help with its
# setting, train it (the core Trainer, with --toy-l2 from the registry), save it, load and evaluate it
# (eval --json: the test loss the training printed, and the same figures after an F16 export loses
# little), reconstruct digits with it, and refuse its setting on another kind. Usage: toy_kind_cli.sh BIN
set -u
bin="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$bin" train --help >"$tmp/help" 2>&1 || fail "train --help"
grep -q "toy: Test-only toy kind" "$tmp/help" && grep -q -- "--toy-l2" "$tmp/help" ||
  fail "train --help does not list the toy kind and its --toy-l2 setting"

"$bin" train --model toy --latent 8 --toy-l2 0.001 --epochs 2 --limit 2000 --batch 64 --lr 0.003 --quiet \
  --out "$tmp/toy.safetensors" >"$tmp/train" 2>&1 || { fail "train:"; cat "$tmp/train"; exit 1; }
cat "$tmp/train"
first=$(sed -nE 's/^epoch  1\/2 .*test loss ([0-9.]+) .*/\1/p' "$tmp/train")
last=$(sed -nE 's/^epoch  2\/2 .*test loss ([0-9.]+) .*/\1/p' "$tmp/train")
[[ -n "$first" && -n "$last" ]] || fail "no test loss per epoch in the training output"

"$bin" eval --model-file "$tmp/toy.safetensors" --json >"$tmp/eval" 2>&1 || { fail "eval:"; cat "$tmp/eval"; }
cat "$tmp/eval"
json=$(tail -1 "$tmp/eval")
grep -q '"model":"toy"' <<<"$json" || fail "eval --json does not name the toy kind: $json"
grep -q '"code_l2":' <<<"$json" && grep -q '"bce":' <<<"$json" || fail "eval --json lacks the toy's loss terms: $json"
loss=$(sed -nE 's/.*"loss":([0-9.]+).*/\1/p' <<<"$json")
# The loss the training printed for its last epoch (3 decimals) is the loaded model's (6 decimals).
awk -v a="$loss" -v b="$last" 'BEGIN { exit !(a != "" && (a - b < 0.0005 && b - a < 0.0005)) }' ||
  fail "eval's loss $loss is not the trained model's test loss $last"
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "the test loss did not fall ($first -> $last)"

"$bin" export --model-file "$tmp/toy.safetensors" --dtype f16 --out "$tmp/toy16.safetensors" >/dev/null 2>&1 ||
  fail "export to F16"
"$bin" eval --model-file "$tmp/toy16.safetensors" --json >"$tmp/eval16" 2>&1 || fail "eval of the F16 file"
loss16=$(tail -1 "$tmp/eval16" | sed -nE 's/.*"loss":([0-9.]+).*/\1/p')
awk -v a="$loss" -v b="$loss16" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b != "" && d < 0.01 * a) }' ||
  fail "the F16 file's loss $loss16 is not within 1% of $loss"

"$bin" reconstruct --model-file "$tmp/toy.safetensors" --count 8 --out "$tmp/rec.png" >/dev/null 2>"$tmp/err" ||
  { fail "reconstruct:"; cat "$tmp/err"; }
[[ -s "$tmp/rec.png" ]] || fail "reconstruct wrote no PNG"
"$bin" reconstruct --model-file "$tmp/toy.safetensors" --count 8 --inference xnnpack --out "$tmp/x.png" >/dev/null 2>"$tmp/err"
status=$?
if [[ $status -eq 0 ]] || ! grep -q "not 'toy'" "$tmp/err"; then
  # (a build without XNNPACK refuses it for that reason instead)
  grep -q "no XNNPACK" "$tmp/err" || fail "--inference xnnpack on the toy kind: status $status, $(cat "$tmp/err")"
fi
"$bin" train --model vae --toy-l2 0.5 --epochs 1 --limit 64 --quiet >/dev/null 2>"$tmp/err" &&
  fail "--toy-l2 accepted for a vae"
grep -q "toy-l2 is not a setting of model 'vae' (it applies to: toy)" "$tmp/err" || fail "--toy-l2 on a vae: $(cat "$tmp/err")"

[[ $failures == 0 ]] && echo "the toy kind trains, saves, loads, evaluates and reconstructs through the CLI"
exit $failures
