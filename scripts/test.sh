#!/usr/bin/env bash
# The test command: sets everything up (scripts/setup.sh), builds, and runs every test:
#   1. native release build (-O3, -march=native): the whole GoogleTest suite + the CLI checks;
#   2. native portable build (-O3, baseline x86-64 instruction set, no -march=native; OpenBLAS held to
#      its baseline SSE kernels by OPENBLAS_CORETYPE=Prescott): the same suite, so the numerical tests
#      hold on a CPU without AVX2/AVX-512 as on this one;
#   3. native debug build with AddressSanitizer + UndefinedBehaviorSanitizer: the same suite;
#   4. WebAssembly build (Debian's Emscripten, -O3 -msimd128): the same suite under node, and the
#      module's JavaScript API (tests/wasm/bindings.test.mjs);
#   5. libFuzzer (preset fuzz, clang, ASan + UBSan): each parser fuzzed FUZZ_SECONDS (default 40) by
#      scripts/fuzz.sh, one test per target (safetensors, model_file, idx, gzip, json).
# Ends with one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

scripts/setup.sh || { echo "0 passed, 1 failed (setup failed)"; exit 1; }

passed=0
failed=0
# The output of each failed test (the tail of its section in CTest's LastTest.log), so that a CI log
# says why, not only which.
print_failures() {  # print_failures TESTING_TEMPORARY_DIR
  local dir="$1" t
  [[ -f "$dir/LastTestsFailed.log" ]] || return 0
  while IFS=: read -r _ t; do
    echo "== output of the failed test $t:"
    awk -v t="$t" '$0 ~ ("Testing: " t "$") {on = 1} on {print} on && /^"[^"]*" end time/ {exit}' \
      "$dir/LastTest.log" > "$dir/failed-section.txt"
    # node:test's failures ("not ok") with their diagnostics, else GoogleTest's or the section's tail.
    if grep -q "not ok" "$dir/failed-section.txt"; then
      grep -A 40 "not ok" "$dir/failed-section.txt" | head -n 120
    else
      tail -n 80 "$dir/failed-section.txt"
    fi
  done < "$dir/LastTestsFailed.log"
}

run_preset() {  # run_preset NAME
  local name="$1" log
  log=$(mktemp)
  echo "== $name: configure and build"
  if ! cmake --preset "$name" >/dev/null || ! cmake --build --preset "$name" -j "$jobs"; then
    echo "== $name: BUILD FAILED"
    failed=$((failed + 1))
    return
  fi
  echo "== $name: test"
  ctest --preset "$name" -j "$jobs" 2>&1 | tee "$log" | grep -E "(\*\*\*|Failed|tests passed|Passed +[0-9.]+ sec)" | grep -vE "^ +[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed" || true
  local total fails
  total=$(sed -nE 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\2/p' "$log" | tail -1)
  fails=$(sed -nE 's/.*tests passed, ([0-9]+) tests? failed out of ([0-9]+).*/\1/p' "$log" | tail -1)
  if [[ -z "$total" ]]; then
    echo "== $name: ctest produced no summary"
    failed=$((failed + 1))
  else
    echo "== $name: $((total - fails)) passed, $fails failed"
    if [[ "$fails" != 0 ]]; then print_failures "build/$name/Testing/Temporary"; fi
    passed=$((passed + total - fails))
    failed=$((failed + fails))
  fi
  rm -f "$log"
}

run_preset native-release
run_preset native-portable
run_preset native-debug
run_preset wasm-release

# The worst error/bound ratio of the gradient checks and tolerance tests of each build (5x margin: <= 0.2).
scripts/gradcheck_ratios.sh native-release native-portable native-debug wasm-release || true

run_fuzz() {
  local log
  log=$(mktemp)
  echo "== fuzz: libFuzzer, ${FUZZ_SECONDS:-40} s per target"
  FUZZ_SECONDS=${FUZZ_SECONDS:-40} scripts/fuzz.sh 2>&1 | tee "$log"
  local line
  line=$(grep -E "^fuzz: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
  if [[ -z "$line" ]]; then
    echo "== fuzz: no summary"
    failed=$((failed + 1))
  else
    passed=$((passed + $(sed -E 's/^fuzz: ([0-9]+) passed.*/\1/' <<<"$line")))
    failed=$((failed + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
  fi
  rm -f "$log"
}
run_fuzz

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
