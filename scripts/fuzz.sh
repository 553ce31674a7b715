#!/usr/bin/env bash
# Fuzzes the parsers with libFuzzer (Debian's clang, AddressSanitizer + UndefinedBehaviorSanitizer):
#   scripts/fuzz.sh [target ...]      targets: safetensors model_file idx gzip json (default: all)
# FUZZ_SECONDS per target (default 600; scripts/test.sh runs 40). Builds the `fuzz` preset, writes the
# seed corpora (tests/fuzz/make_seeds.cpp: small model files of every kind and the PixelCNN prior from
# models/, MNIST and Fashion-MNIST IDX slices raw and gzipped, the model files' JSON headers and
# configs) into build/fuzz/seeds, and keeps what each run finds in build/fuzz/corpus/<target>. Memory is
# capped (-rss_limit_mb, -malloc_limit_mb) and inputs are short (-max_len): a small input that makes a
# parser allocate gigabytes counts as a failure, as a crash, a sanitizer report or a hang (-timeout) do.
# One line per target, "fuzz <target>: passed (N executions in S s, 0 crashes)" or "... FAILED ...",
# the reproducer's path and the report's head; then "fuzz: N passed, M failed". Exit status 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-600}
jobs=$(nproc 2>/dev/null || echo 2)
targets=("$@")
((${#targets[@]})) || targets=(safetensors model_file idx gzip json)
out=build/fuzz

if ! cmake --preset fuzz >/dev/null || ! cmake --build --preset fuzz -j "$jobs" >"$out.build.log" 2>&1; then
  tail -n 30 "$out.build.log"
  echo "fuzz: BUILD FAILED"
  echo "fuzz: 0 passed, ${#targets[@]} failed"
  exit 1
fi
rm -rf "$out/seeds"
"$out/fuzz_make_seeds" . "$out/seeds" || { echo "fuzz: seed corpora incomplete"; }

passed=0
failed=0
for t in "${targets[@]}"; do
  case "$t" in
    safetensors|model_file) max_len=327680; dict=(-dict=tests/fuzz/safetensors.dict) ;;
    json) max_len=8192; dict=(-dict=tests/fuzz/safetensors.dict) ;;
    idx|gzip) max_len=8192; dict=() ;;
    *) echo "fuzz: unknown target '$t' (expected safetensors, model_file, idx, gzip or json)"; failed=$((failed + 1)); continue ;;
  esac
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "$out/seeds/$t"
  log="$out/fuzz_$t.log"
  # Reports from the sanitizers abort the run; leaks are not checked (the targets hold no state).
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
    "$out/fuzz_$t" -max_total_time="$seconds" -max_len="$max_len" -timeout=25 \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" "${dict[@]}" "$out/corpus/$t" "$out/seeds/$t" >"$log" 2>&1
  rc=$?
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  secs=$(sed -nE 's/^stat::average_exec_per_sec: *([0-9]+).*/\1/p' "$log" | tail -n 1)
  files=$(ls "$out/corpus/$t" | wc -l)
  if [[ $rc -eq 0 && -n "$execs" ]]; then
    echo "fuzz $t: passed (${execs} executions in ${seconds} s, ${secs:-?}/s, 0 crashes, corpus ${files} files)"
    passed=$((passed + 1))
  else
    echo "fuzz $t: FAILED (exit $rc after ${execs:-?} executions; log $log)"
    grep -E "^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written|.*out-of-memory|.*ERROR: libFuzzer)" "$log" | head -n 12
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
