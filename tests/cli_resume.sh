#!/usr/bin/env bash
# `latentlab train --resume` end to end (issue 12, long training): a run stopped by SIGTERM while it
# checkpoints, then resumed, ends with the same weights, Adam state and per-step log, byte for byte, as
# the same run trained in one go; wherever the signal lands. Also: a resume file evaluates as a model,
# export drops its state, a finished run says so. Usage: cli_resume.sh BIN
# The GEMM backend is pinned (eigen) so that both runs use the same kernels: with `auto` a new process
# could time the backends differently on a loaded machine (natively the choice is cached; see README).
set -u
bin="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LATENTLAB_GEMM=eigen
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# The tensor data of a safetensors file (what follows its 8-byte length and JSON header): the header
# holds timings that differ between runs.
data_of() {
  local n
  n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
  tail -c +$((9 + n)) "$1"
}

# kind, extra flags: one go against SIGTERM + resume.
check_kind() {
  local kind="$1"
  shift
  local common=(--model "$kind" --batch 50 --epochs 3 --schedule cosine --warmup 7 --seed 4 --quiet "$@")
  "$bin" train "${common[@]}" --save-optimizer --log "$tmp/$kind.full.log" --out "$tmp/$kind.full.safetensors" \
    >"$tmp/$kind.full.out" 2>&1 || { fail "$kind: one-go training:"; cat "$tmp/$kind.full.out"; return; }
  # The same run, checkpointing (rarely: the signal makes the checkpoint), stopped once 40 steps are
  # logged (the log is line-buffered): inside an epoch or in its test evaluation (the step is printed).
  "$bin" train "${common[@]}" --checkpoint-minutes 60 --log "$tmp/$kind.log" --out "$tmp/$kind.safetensors" \
    >"$tmp/$kind.part.out" 2>&1 &
  local pid=$! i
  for ((i = 0; i < 6000; i++)); do
    [[ -f "$tmp/$kind.log" && $(wc -l <"$tmp/$kind.log") -ge 40 ]] && break
    sleep 0.02
  done
  kill -TERM $pid
  wait $pid
  local status=$?
  if [[ $status -ne 143 ]]; then
    # The run ended before the signal (a fast machine): nothing to resume, but say so.
    fail "$kind: the stopped run exited $status (expected 143 from SIGTERM):"
    cat "$tmp/$kind.part.out"
    return
  fi
  grep -q "stopped by signal 15 at step" "$tmp/$kind.part.out" || fail "$kind: no 'stopped' line"
  local stopped
  stopped=$(sed -n 's/.*stopped by signal 15 at step \([0-9]*\).*/\1/p' "$tmp/$kind.part.out")
  # A second sitting; the log continues (lines logged after the checkpoint are dropped first).
  "$bin" train --resume "$tmp/$kind.safetensors" --log "$tmp/$kind.log" --quiet >"$tmp/$kind.resume.out" 2>&1 ||
    { fail "$kind: resume:"; cat "$tmp/$kind.resume.out"; return; }
  if cmp -s <(data_of "$tmp/$kind.full.safetensors") <(data_of "$tmp/$kind.safetensors") &&
    cmp -s "$tmp/$kind.full.log" "$tmp/$kind.log"; then
    echo "ok: $kind: stopped at step $stopped, resumed: weights, optimiser state and per-step log identical"
  else
    fail "$kind: stopped at step $stopped and resumed, the result differs from the one-go run"
    diff "$tmp/$kind.full.log" "$tmp/$kind.log" | head -4
  fi
  # The epoch lines (train and test figures) are the same too, but for the time and speed.
  cmp -s <(grep '^epoch' "$tmp/$kind.full.out" | sed 's/  [0-9]* img\/s.*//') \
    <(cat "$tmp/$kind.part.out" "$tmp/$kind.resume.out" | grep '^epoch' | sed 's/  [0-9]* img\/s.*//') ||
    fail "$kind: the epoch lines differ"
}

# Sizes so that the run outlasts the signal's way (an MLP kind trains ~30,000 images/s).
check_kind ksparse_ae --limit 12000 --hidden 64 --k 8 --k-start 40
check_kind vqvae --limit 1500 --dead-code-steps 3 --codebook-size 16
check_kind vae --limit 12000 --hidden 64 --latent 8 --clip 300

# A resume file is a model file: eval reads it, and gives what the one-go run's file gives.
if "$bin" eval --model-file "$tmp/vae.safetensors" --limit 500 --json >"$tmp/e1" 2>&1 &&
  "$bin" eval --model-file "$tmp/vae.full.safetensors" --limit 500 --json >"$tmp/e2" 2>&1 &&
  cmp -s <(tail -1 "$tmp/e1") <(tail -1 "$tmp/e2"); then
  echo "ok: eval of a resume file: $(tail -1 "$tmp/e1" | cut -c1-60)..."
else
  fail "eval of a resume file:"; cat "$tmp/e1"
fi
# export keeps the model alone.
"$bin" export --model-file "$tmp/vae.safetensors" --dtype f32 --out "$tmp/vae.export.safetensors" >/dev/null 2>&1 &&
  ! grep -q 'latentlab.resume' "$tmp/vae.export.safetensors" ||
  fail "export of a resume file kept its state"
# A finished run says so and changes nothing.
cp "$tmp/vae.safetensors" "$tmp/vae.before"
"$bin" train --resume "$tmp/vae.safetensors" >"$tmp/done" 2>&1 && grep -q "already done: 3 of 3 epochs" "$tmp/done" &&
  cmp -s "$tmp/vae.safetensors" "$tmp/vae.before" || { fail "resuming a finished run:"; cat "$tmp/done"; }
# --epochs is the total: 3 done, --epochs 4 trains one more.
"$bin" train --resume "$tmp/vae.safetensors" --epochs 4 --quiet >"$tmp/more" 2>&1 && [[ $(grep -c '^epoch' "$tmp/more") -eq 1 ]] &&
  grep -q '^epoch  4/4' "$tmp/more" || { fail "--epochs 4 after 3:"; cat "$tmp/more"; }

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
