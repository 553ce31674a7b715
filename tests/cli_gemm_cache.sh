#!/usr/bin/env bash
# The GEMM choices kept across runs (tools/speed.h): a run measures and writes them, the next reads
# them (its report says "kept from an earlier run"), a corrupt file is one note and is measured again,
# LATENTLAB_GEMM_CACHE=off keeps nothing, and an unwritable place is no error.
# Usage: cli_gemm_cache.sh path/to/latentlab
set -uo pipefail
bin="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export LATENTLAB_GEMM=auto
cache="$dir/choices.txt"

# A class is kept only when its measurement was steady; a machine busy with other work may need a
# few runs (each adds what it measured steadily).
for attempt in 1 2 3 4 5 6 7 8; do
  LATENTLAB_GEMM_CACHE="$cache" "$bin" --version > "$dir/first.txt" 2>&1 || fail "--version failed: $(cat "$dir/first.txt")"
  [[ -s "$cache" ]] && break
done
[[ -s "$cache" ]] || fail "no choices file after 8 runs"
grep -q "Choices kept in: $cache" "$dir/first.txt" || fail "the report does not name the file: $(cat "$dir/first.txt")"
[[ "$(head -1 "$cache")" == "latentlab gemm choices 1" ]] || fail "bad first line: $(head -1 "$cache")"
no_tmp=$(find "$dir" -name '*.tmp.*' | wc -l)
[[ $no_tmp == 0 ]] || fail "a temporary file was left behind"

LATENTLAB_GEMM_CACHE="$cache" "$bin" --version > "$dir/second.txt" 2>&1 || fail "second --version failed"
grep -q "(kept from an earlier run)" "$dir/second.txt" || fail "the second run measured everything again: $(cat "$dir/second.txt")"

# A corrupt file: one note on stderr, the command still works, and the file is not left as it was
# unless nothing was measured steadily this time.
printf 'latentlab gemm choices 1\nsignature of another machine\n' > "$cache"
LATENTLAB_GEMM_CACHE="$cache" "$bin" --version > "$dir/out.txt" 2> "$dir/err.txt" || fail "--version failed on a corrupt file"
[[ $(wc -l < "$dir/err.txt") == 1 ]] || fail "expected one note, got: $(cat "$dir/err.txt")"
grep -q "^latentlab: note: ignoring the GEMM choices in $cache (made on another CPU or build" "$dir/err.txt" ||
  fail "unexpected note: $(cat "$dir/err.txt")"
grep -q "(kept from an earlier run)" "$dir/out.txt" && fail "a foreign file's choices were used"

# Off: nothing read or written.
rm -f "$cache"
LATENTLAB_GEMM_CACHE=off "$bin" --version > "$dir/off.txt" 2>&1 || fail "--version failed with the cache off"
grep -q "Choices kept in: nothing (LATENTLAB_GEMM_CACHE=off)" "$dir/off.txt" || fail "off not reported: $(cat "$dir/off.txt")"
[[ -e "$cache" ]] && fail "a file was written with the cache off"

# A place that cannot be written: no error, no output on stderr.
LATENTLAB_GEMM_CACHE=/proc/latentlab-cannot-write/choices.txt "$bin" --version > /dev/null 2> "$dir/err.txt" ||
  fail "--version failed with an unwritable cache"
[[ -s "$dir/err.txt" ]] && fail "unexpected stderr: $(cat "$dir/err.txt")"
echo "GEMM choices file: written, read back, a foreign one refused with one note, off honoured"
