#!/usr/bin/env bash
# The worst error/bound ratio of every gradient check (and of the other tolerance-based tests) from the
# last ctest run of each build: the tests print one "[gradcheck] Suite.Test what: worst R of bound"
# or "[tolerance] ..." line per check (tests/test_util.h), which CTest keeps in LastTest.log.
#   scripts/gradcheck_ratios.sh [PRESET...]     (default: every build/*/ with a ctest log)
#   scripts/gradcheck_ratios.sh --per-test [PRESET...]   also the worst ratio of each test
# A ratio <= 0.2 is the 5x margin the checks are meant to keep on every target; > 1 fails the test.
set -uo pipefail
cd "$(dirname "$0")/.."
per_test=0
if [[ "${1:-}" == "--per-test" ]]; then per_test=1; shift; fi
presets=("$@")
if [[ ${#presets[@]} -eq 0 ]]; then
  for d in build/*/Testing/Temporary/LastTest.log; do
    [[ -f "$d" ]] && presets+=("$(basename "$(dirname "$(dirname "$(dirname "$d")")")")")
  done
fi
for p in "${presets[@]}"; do
  log="build/$p/Testing/Temporary/LastTest.log"
  if [[ ! -f "$log" ]]; then echo "$p: no ctest log ($log)"; continue; fi
  grep -hoE '^\[(gradcheck|tolerance)\] [^ ]+ .*: worst [0-9.e+-]+ of bound' "$log" |
    awk -v preset="$p" -v per_test="$per_test" '
      { tag = $1; test = $2; r = $(NF - 2) + 0; what = $0
        sub(/^\[[a-z]+\] [^ ]+ /, "", what); sub(/: worst [^ ]+ of bound$/, "", what)
        n[tag]++
        if (!(tag in worst) || r > worst[tag]) { worst[tag] = r; where[tag] = test " " what }
        key = tag " " test
        if (!(key in tw) || r > tw[key]) tw[key] = r }
      END {
        if (per_test) for (k in tw) printf "%s  %-9s %s\n", preset, k, sprintf("%.3g", tw[k]) | "sort"
        close("sort")
        for (t in worst)
          printf "%s: worst %s ratio %.3g over %d checks (%s)\n", preset, substr(t, 2, length(t) - 2), worst[t], n[t], where[t]
        if (!length(worst)) printf "%s: no [gradcheck] or [tolerance] lines\n", preset }'
done
