#!/usr/bin/env bash
# walkjump vs its PyTorch twin on the same checkpoints: parity of energy / score / jump, then speed ratios.
#
#   bench/compare.sh [CHECKPOINT ...]     (default: every checkpoints/*.safetensors)
#   bench/compare.sh --onnx               the seven ONNX families of bench/onnx_families.py: re-export, parity of
#                                         score and jump (tests/onnx.rs on the fresh files), speed at 64 chains
#
# Environment: THREADS (default: nproc; both sides use it), BUDGET (seconds per measurement, default 1),
# BATCHES (default 1,64,256), OUT (default bench/out), WALKJUMP (a prebuilt binary instead of cargo build --release).
# Needs python3 with venv and network access to PyPI the first time (plain `pip install torch`: the CPU-only index is
# not used). Not part of CI: torch is large.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
THREADS=${THREADS:-$(nproc)}
BUDGET=${BUDGET:-1}
BATCHES=${BATCHES:-1,64,256}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
OUT_ABS=$(cd "$OUT" && pwd)  # OUT may be relative (to the repository) or absolute

VENV=bench/.venv
if ! "$VENV/bin/python" -c 'import torch, safetensors, numpy' 2>/dev/null; then
  echo "== creating $VENV (torch, safetensors, numpy from PyPI)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet torch safetensors numpy
fi
PY=$VENV/bin/python
REF=bench/torch_reference.py
# Reuse the warm target directory that .ci/run keeps outside the clone, when there is one: without it, the parity
# step's `cargo test` starts a cold build in the checkout's target/.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d "$HOME/.cache/walkjump-target" ]; then
  export CARGO_TARGET_DIR="$HOME/.cache/walkjump-target"
fi

if [ -n "${WALKJUMP:-}" ]; then
  WJ=$WALKJUMP
else
  echo "== building walkjump (release)"
  cargo build --release --locked --quiet
  TARGET=$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  # Work on a private copy: another build sharing the target directory must not swap the binary mid-run.
  WJ=$OUT/walkjump
  cp "$TARGET/release/walkjump" "$WJ"
fi
# Cargo does not re-copy a fresh binary into target/release: with a CARGO_TARGET_DIR shared between checkouts, the
# file there can be another checkout's build. Refuse a binary without the probe command.
if ! "$WJ" probe --help > /dev/null 2>&1; then
  echo "error: $WJ has no 'probe' command: it is not this checkout's build (shared CARGO_TARGET_DIR?)." >&2
  echo "       Rebuild with a private CARGO_TARGET_DIR, or pass WALKJUMP=path/to/this/checkout's/walkjump." >&2
  exit 2
fi

if [ "${1:-}" = "--onnx" ]; then
  "$VENV/bin/pip" install --quiet onnx onnxscript
  echo "== exporting the four ONNX families to $OUT/onnx"
  "$PY" bench/onnx_families.py "$OUT/onnx" 2>/dev/null
  echo "== parity: walkjump vs PyTorch autograd on the fresh exports (within 1e-4)"
  status=0
  WALKJUMP_ONNX_FIXTURES="$OUT_ABS/onnx" cargo test --release --locked --quiet --test onnx exported_families \
    -- --nocapture 2>&1 | grep -E "score|test result" || status=1
  echo "== timing, $THREADS threads each: walk-jump step at 64 chains"
  WJ_JSON=()
  for f in "$OUT"/onnx/*.onnx; do
    name=$(basename "$f" .onnx)
    RAYON_NUM_THREADS=$THREADS "$WJ" bench -c "$f" --batches 64 --budget "$BUDGET" --no-train \
      --json "$OUT/walkjump-onnx-$name.json" > /dev/null
    WJ_JSON+=(--walkjump-json "$OUT/walkjump-onnx-$name.json")
  done
  "$PY" bench/onnx_families.py time --threads "$THREADS" --budget "$BUDGET" --json "$OUT/torch-onnx.json"
  "$PY" $REF ratios "${WJ_JSON[@]}" --torch-json "$OUT/torch-onnx.json" | grep -E "walkjump|PyTorch|model|walk-jump" \
    | tee "$OUT/ratios-onnx.txt"
  exit $status
fi

if [ $# -gt 0 ]; then CKPTS=("$@"); else CKPTS=("$ROOT"/checkpoints/*.safetensors); fi

echo "== machine"
echo "cores $(nproc), threads used $THREADS, load: $(uptime | sed 's/.*load average/load average/')"
lscpu | grep -E 'Model name' || true
if grep -q avx512f /proc/cpuinfo; then echo "AVX-512: yes"; else echo "AVX-512: no"; fi

echo "== parity: bundled checkpoints"
status=0
"$PY" $REF parity --walkjump "$WJ" "${CKPTS[@]}" | tee "$OUT/parity.txt" || status=1
echo "== parity: random PyTorch twins of every kind, exported to the walkjump format"
"$PY" $REF export-examples "$OUT/examples" > /dev/null
"$PY" $REF parity --walkjump "$WJ" "$OUT"/examples/*.safetensors | tee "$OUT/parity-examples.txt" || status=1

echo "== timing, $THREADS threads each, walkjump and PyTorch in turn per checkpoint (shared load hits both alike)"
WJ_JSON=()
PT_JSON=()
for c in "${CKPTS[@]}"; do
  name=$(basename "$c" .safetensors)
  RAYON_NUM_THREADS=$THREADS "$WJ" bench -c "$c" --batches "$BATCHES" --budget "$BUDGET" \
    --json "$OUT/walkjump-$name.json" > "$OUT/walkjump-$name.txt"
  "$PY" $REF time "$c" --batches "$BATCHES" --budget "$BUDGET" --threads "$THREADS" \
    --json "$OUT/torch-$name.json" > /dev/null
  WJ_JSON+=(--walkjump-json "$OUT/walkjump-$name.json")
  PT_JSON+=(--torch-json "$OUT/torch-$name.json")
done

echo "== walkjump / PyTorch speed"
"$PY" $REF ratios "${WJ_JSON[@]}" "${PT_JSON[@]}" | tee "$OUT/ratios.txt"
echo "== parity: $([ $status -eq 0 ] && echo PASS || echo FAIL) (tables in $OUT/parity*.txt)"
exit $status
