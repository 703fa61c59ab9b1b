#!/usr/bin/env bash
# Soak test: one long walk-jump run through the CLI with the model's recommended sampler, checking that it stays
# finite and that its memory does not grow.
#
#   scripts/soak.sh [STEPS] [CHECKPOINT]
#
# STEPS defaults to 1000000, CHECKPOINT to checkpoints/deen-mlp-s1.0.safetensors. Runs
#   walkjump sample -c CHECKPOINT --steps STEPS --chains 4 --trace T --trace-every K --out strip.png
# (no --sampler/--delta/--gamma/--u/--every: the checkpoint's recommendation) and reports
#   * steps/s (from walkjump's own timing line),
#   * non-finite values (NaN, inf) in the trace: must be 0,
#   * diverged chains (walkjump's summary): must be 0,
#   * resident memory (VmRSS of /proc/PID/status, sampled every SOAK_INTERVAL seconds while it runs). Samples from
#     the first SOAK_WARMUP seconds after launch are left out (loading the model and the data, allocator warm-up,
#     the first steps); of the rest, "start" is the median of the first 5 and "end" the median of the last 5 (so one
#     sample taken while the process frees everything on exit does not decide it). (end - start) / start must stay
#     under SOAK_MAX_GROWTH percent. A run that ends within the warm-up has no samples left: its growth is reported
#     as not measured (not a failure).
# Exits non-zero when walkjump fails or any check fails. The trace keeps every K-th step (K = STEPS / 1000, at least
# 1, so about 1000 x 4 rows whatever STEPS is); the CSV format is walkjump's usual one.
#
# Environment:
#   WALKJUMP          the binary to run (default: builds with `cargo build --release --locked` and uses that)
#   SOAK_DIR          where the trace, strip, summary and RSS samples go, kept (default: a new temporary directory,
#                     removed after a passing run)
#   SOAK_CHAINS       chains (default 4)
#   SOAK_TRACE_EVERY  K (default STEPS / 1000, at least 1)
#   SOAK_WARMUP       seconds excluded from the memory comparison (default 10)
#   SOAK_INTERVAL     seconds between RSS samples (default 1)
#   SOAK_MAX_GROWTH   allowed RSS growth in percent (default 5)
#   SOAK_SEED         seed (default 0)
#   SOAK_CLASSIFIER   classifier checkpoint for the class of each jump (default: walkjump's own default, the
#                     bundled checkpoints/classifier.safetensors when present)
set -euo pipefail

steps=${1:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
checkpoint=${2:-$root/checkpoints/deen-mlp-s1.0.safetensors}
chains=${SOAK_CHAINS:-4}
warmup=${SOAK_WARMUP:-10}
interval=${SOAK_INTERVAL:-1}
max_growth=${SOAK_MAX_GROWTH:-5}
seed=${SOAK_SEED:-0}
trace_every=${SOAK_TRACE_EVERY:-$((steps / 1000 > 1 ? steps / 1000 : 1))}

fail() {
  echo "soak: FAIL: $*" >&2
  exit 1
}

[[ "$steps" =~ ^[1-9][0-9]*$ ]] || fail "STEPS must be a positive integer, got '$steps'"
[ -f "$checkpoint" ] || fail "no checkpoint at $checkpoint (pass one: scripts/soak.sh STEPS FILE)"

if [ -z "${WALKJUMP:-}" ]; then
  (cd "$root" && cargo build --release --locked --quiet)
  target=$(cd "$root" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  WALKJUMP=$target/release/walkjump
fi
[ -x "$WALKJUMP" ] || fail "walkjump binary $WALKJUMP is not executable"

own_dir=0
if [ -z "${SOAK_DIR:-}" ]; then
  own_dir=1
  dir=$(mktemp -d "${TMPDIR:-/tmp}/walkjump-soak.XXXXXX")
else
  dir=$SOAK_DIR
fi
mkdir -p "$dir"
trace=$dir/trace.csv
rss=$dir/rss.tsv

echo "soak: $steps steps x $chains chains of $checkpoint (trace every $trace_every steps) in $dir"
start_ns=$(date +%s%N)
classifier=()
[ -z "${SOAK_CLASSIFIER:-}" ] || classifier=(--classifier "$SOAK_CLASSIFIER")
"$WALKJUMP" sample -c "$checkpoint" --steps "$steps" --chains "$chains" --seed "$seed" "${classifier[@]}" \
  --trace "$trace" --trace-every "$trace_every" --out "$dir/strip.png" >"$dir/summary.txt" 2>"$dir/stderr.txt" &
pid=$!

# Sample VmRSS (kB) with the seconds since launch until the process is gone.
: >"$rss"
while kill -0 "$pid" 2>/dev/null; do
  kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  if [ -n "$kb" ]; then
    now_ns=$(date +%s%N)
    echo "$(((now_ns - start_ns) / 1000000)) $kb" >>"$rss"
  fi
  sleep "$interval"
done
rc=0
wait "$pid" || rc=$?
end_ns=$(date +%s%N)
wall=$(awk -v ns=$((end_ns - start_ns)) 'BEGIN {printf "%.1f", ns / 1e9}')

if [ "$rc" -ne 0 ]; then
  cat "$dir/stderr.txt" >&2
  fail "walkjump exited with status $rc (files kept in $dir)"
fi

failures=()

# Speed, from walkjump's timing line: "time      12.34 s, 8100.0 steps/s (...)".
speed=$(sed -n 's/^time .*, \([0-9.]*\) steps\/s.*/\1/p' "$dir/stderr.txt")

# Non-finite numbers in the trace (columns energy .. jump_max) and the row count.
read -r rows nonfinite < <(awk -F, 'NR > 1 {
    rows++
    for (i = 3; i <= 7; i++) if ($i ~ /^-?(NaN|nan|inf|Inf)$/) bad++
  } END {print rows + 0, bad + 0}' "$trace")
expected_rows=$(((steps / trace_every) * chains))
[ "$rows" -eq "$expected_rows" ] || failures+=("trace has $rows rows, expected $expected_rows")
[ "$nonfinite" -eq 0 ] || failures+=("$nonfinite non-finite values in the trace")

diverged=$(sed -n 's/^diverged  \([0-9]*\) of .*/\1/p' "$dir/summary.txt")
[ "${diverged:-x}" = 0 ] || failures+=("${diverged:-?} of $chains chains diverged")

# Memory: over the samples taken after the warm-up, start = median of the first 5, end = median of the last 5
# (a median, so that one sample caught while the process frees everything on exit, or while it writes the strip,
# does not decide the result); peak over the whole run.
warm_ms=$(awk -v w="$warmup" 'BEGIN {printf "%d", w * 1000}')
read -r n_samples n_after start_t start_kb end_t end_kb peak_kb < <(awk -v w="$warm_ms" '
  function median(from, k,    i, j, v, tmp) {
    for (i = 0; i < k; i++) tmp[i] = kb[from + i]
    for (i = 1; i < k; i++) { v = tmp[i]; for (j = i - 1; j >= 0 && tmp[j] > v; j--) tmp[j + 1] = tmp[j]; tmp[j + 1] = v }
    return tmp[int((k - 1) / 2)]
  }
  BEGIN { n = 0; m = 0; peak = 0 }
  { n++; if ($2 > peak) peak = $2
    if ($1 >= w) { t[m] = $1; kb[m] = $2; m++ } }
  END {
    if (m == 0) { printf "%d 0 - - - - %d\n", n, peak; exit }
    k = m < 5 ? m : 5
    printf "%d %d %d %d %d %d %d\n", n, m, t[0], median(0, k), t[m - 1], median(m - k, k), peak
  }' "$rss")
if [ "$start_kb" = "-" ]; then
  growth="not measured (the run ended within the ${warmup} s warm-up)"
else
  growth=$(awk -v a="$start_kb" -v b="$end_kb" 'BEGIN {printf "%+.2f%%", 100 * (b - a) / a}')
  awk -v a="$start_kb" -v b="$end_kb" -v m="$max_growth" 'BEGIN {exit !(100 * (b - a) / a < m)}' ||
    failures+=("RSS grew from $start_kb kB to $end_kb kB ($growth, limit $max_growth%)")
fi

echo "steps/s      ${speed:-?} (wall ${wall} s including loading)"
echo "trace        $rows rows, $nonfinite non-finite values"
echo "diverged     ${diverged:-?} of $chains chains"
echo "RSS samples  $n_samples, $n_after after the warm-up (every ${interval} s; warm-up ${warmup} s)"
if [ "$start_kb" = "-" ]; then
  echo "RSS          peak $peak_kb kB, growth $growth"
else
  echo "RSS          start $start_kb kB (from $((start_t / 1000)) s), end $end_kb kB (to $((end_t / 1000)) s), peak $peak_kb kB, growth $growth"
fi

if [ ${#failures[@]} -gt 0 ]; then
  for f in "${failures[@]}"; do echo "soak: FAIL: $f" >&2; done
  echo "soak: files kept in $dir" >&2
  exit 1
fi
# A temporary directory of our own is removed after a passing run; SOAK_DIR is always kept.
[ "$own_dir" -eq 0 ] || rm -rf "$dir"
echo "soak: OK"
