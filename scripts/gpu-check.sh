#!/usr/bin/env bash
# GPU check of a CUDA build of walkjump, on a machine with an NVIDIA GPU and driver but no Rust and no network:
#   1. GPU-vs-CPU parity (`walkjump parity --device cuda`): energy, score and jump of every bundled checkpoint within
#      1e-4 relative on the same inputs; mean and variance of each chain diagnostic over a 1000-step chain within
#      4 standard errors (from the effective sample size);
#   2. the benchmark on the GPU at 64, 1024 and 8192 chains (`walkjump bench --device cuda --no-train`: walk-jump
#      steps per batch, a NEBULA step and a denoising pass per checkpoint);
#   3. if python3 there has torch with CUDA and safetensors: the PyTorch twin timed on the same GPU, and the ratios.
#
# Run it from the bundle made by scripts/gpu-bundle.sh (`bash gpu-check.sh` inside the unpacked folder) or from a
# checkout (`WALKJUMP=dist/walkjump-gpu/walkjump.gz bash scripts/gpu-check.sh`; a gzipped binary is unpacked into
# the results folder). Results go to $OUT if set (the lent
# machines' result folder), else ./gpu-check-out.
#
# Environment: WALKJUMP (the cuda binary), OUT, BATCHES (default 64,1024,8192), BUDGET (seconds per measurement,
# default 1), STEPS (parity chain steps, default 1000), CHAINS (parity chains, default 64), NO_TORCH=1 (skip the
# PyTorch twin), CPU_BENCH=1 (also bench the CPU at the same batches, slow), PYTHON (default python3).
#
# cuBLAS, cuRAND, NVRTC and the CUDA runtime (13.x) are not in the bundle: they are taken from LD_LIBRARY_PATH, else
# from the nvidia wheels of the machine's PyTorch install (site-packages/nvidia/cu13/lib and friends).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
OUT="${OUT:-$PWD/gpu-check-out}"
BATCHES="${BATCHES:-64,1024,8192}"
BUDGET="${BUDGET:-1}"
STEPS="${STEPS:-1000}"
CHAINS="${CHAINS:-64}"
mkdir -p "$OUT"
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"

# ---- find the binary, the checkpoints and the PyTorch twin (bundle layout first, then a checkout's)
WJ="${WALKJUMP:-}"
if [ -z "$WJ" ]; then
  for c in "$here/walkjump" "$here/walkjump.gz" "$here/../dist/walkjump-gpu/walkjump" \
    "$here/../dist/walkjump-gpu/walkjump.gz" "$PWD/walkjump"; do
    if [ -f "$c" ]; then WJ="$c"; break; fi
  done
fi
if [ -z "$WJ" ] || [ ! -f "$WJ" ]; then
  echo "error: no walkjump binary (set WALKJUMP=path/to/walkjump[.gz], made by scripts/gpu-bundle.sh)" >&2
  exit 2
fi
WJ="$(cd "$(dirname "$WJ")" && pwd)/$(basename "$WJ")"
WJ_HOME="$(dirname "$WJ")"
# A binary over 64 MiB travels gzipped: unpack it into the results folder.
case "$WJ" in
  *.gz)
    gunzip -c "$WJ" >"$OUT/walkjump" && chmod +x "$OUT/walkjump" || exit 2
    WJ="$OUT/walkjump"
    ;;
esac
if [ ! -x "$WJ" ]; then
  echo "error: $WJ is not executable" >&2
  exit 2
fi
CKPT_DIR=""
for c in "$WJ_HOME/checkpoints" "$here/checkpoints" "$here/../checkpoints" "$PWD/checkpoints"; do
  if compgen -G "$c/*.safetensors" >/dev/null; then CKPT_DIR="$(cd "$c" && pwd)"; break; fi
done
if [ -z "$CKPT_DIR" ]; then
  echo "error: no checkpoints/*.safetensors beside the binary, the script or the current folder" >&2
  exit 2
fi
REF=""
for c in "$here/torch_reference.py" "$here/../bench/torch_reference.py"; do
  if [ -f "$c" ]; then REF="$c"; break; fi
done
# walkjump finds its bundled checkpoints in ./checkpoints: run from their parent folder.
cd "$(dirname "$CKPT_DIR")" || exit 2

# ---- CUDA libraries: LD_LIBRARY_PATH, else the machine's nvidia wheels (PyTorch's dependencies)
missing() { ldd "$WJ" 2>/dev/null | awk '/not found/ {print $1}' | grep -v '^libcuda\.so' ; }
if [ -n "$(missing)" ]; then
  extra="$("$PY" - <<'EOF' 2>/dev/null
import glob, os, site, sys
roots = []
try:
    import nvidia  # namespace package of the nvidia-* wheels
    roots += list(nvidia.__path__)
except Exception:
    pass
for sp in site.getsitepackages() + [site.getusersitepackages()]:
    roots.append(os.path.join(sp, "nvidia"))
dirs = []
for r in roots:
    for pattern in ("cu13/lib", "*/lib"):
        for d in sorted(glob.glob(os.path.join(r, pattern))):
            if glob.glob(os.path.join(d, "lib*.so*")) and d not in dirs:
                dirs.append(d)
try:
    import torch
    d = os.path.join(os.path.dirname(torch.__file__), "lib")
    if d not in dirs:
        dirs.append(d)
except Exception:
    pass
print(":".join(dirs))
EOF
)"
  if [ -n "$extra" ]; then
    export LD_LIBRARY_PATH="$extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi
if [ -n "$(missing)" ]; then
  echo "error: libraries the binary needs are not found: $(missing | tr '\n' ' ')" >&2
  echo "       point LD_LIBRARY_PATH at a CUDA 13 lib folder (e.g. site-packages/nvidia/cu13/lib of a torch install)" >&2
  exit 2
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1' && ! ldd "$WJ" | grep -q 'libcuda\.so\.1 => /'; then
  echo "error: no NVIDIA driver (libcuda.so.1) on this machine: a cuda build cannot start without one" >&2
  exit 2
fi

log "machine"
{
  echo "date $(date -u +%Y-%m-%dT%H:%M:%SZ), host $(hostname), cores $(nproc)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
  echo "binary $WJ ($("$WJ" --version)), sha256 $(sha256sum "$WJ" | cut -c1-16)"
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  ldd "$WJ" | grep -E 'cuda|cublas|curand|nvrtc' | sed 's/^[[:space:]]*/  /'
} 2>&1 | tee -a "$OUT/summary.txt"

status=0
log "parity: cuda vs cpu (outputs within 1e-4 relative; ${STEPS}-step chains, ${CHAINS} chains)"
"$WJ" parity --device cuda --steps "$STEPS" --chains "$CHAINS" --json "$OUT/parity.json" 2>&1 |
  tee "$OUT/parity.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ]; then
  status=1
  log "parity FAILED (exit $rc)"
  if [ "$rc" -eq 2 ]; then
    echo "the GPU is not usable from walkjump; no benchmark" | tee -a "$OUT/summary.txt"
    exit 1
  fi
else
  log "parity PASS"
fi
grep -E '^(PASS|FAIL)' "$OUT/parity.txt" >>"$OUT/summary.txt"

log "walkjump bench on the GPU (chains $BATCHES)"
"$WJ" bench --device cuda --batches "$BATCHES" --budget "$BUDGET" --no-train --json "$OUT/bench-cuda.json" 2>&1 |
  tee "$OUT/bench-cuda.txt" || status=1
grep -E '^device|walk-jump step' "$OUT/bench-cuda.txt" >>"$OUT/summary.txt"

if [ "${CPU_BENCH:-0}" = 1 ]; then
  log "walkjump bench on the CPU (chains $BATCHES)"
  "$WJ" bench --device cpu --batches "$BATCHES" --budget "$BUDGET" --no-train --json "$OUT/bench-cpu.json" 2>&1 |
    tee "$OUT/bench-cpu.txt" || status=1
fi

if [ "${NO_TORCH:-0}" != 1 ] && [ -n "$REF" ]; then
  if "$PY" -c 'import torch, safetensors; assert torch.cuda.is_available()' 2>/dev/null; then
    log "PyTorch twin on the GPU ($("$PY" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'))"
    if "$PY" "$REF" time --device cuda --batches "$BATCHES" --budget "$BUDGET" --no-train --json "$OUT/torch-cuda.json" \
      >"$OUT/torch-cuda.txt" 2>&1; then
      "$PY" "$REF" ratios --walkjump-json "$OUT/bench-cuda.json" --torch-json "$OUT/torch-cuda.json" |
        tee "$OUT/ratios-cuda.txt" | tee -a "$OUT/summary.txt"
    else
      status=1
      log "PyTorch twin failed: see $OUT/torch-cuda.txt"
      tail -n 5 "$OUT/torch-cuda.txt"
    fi
  else
    log "PyTorch twin skipped: python3 here lacks torch with CUDA or safetensors"
  fi
fi

log "done: $([ $status -eq 0 ] && echo PASS || echo FAIL), results in $OUT"
exit $status
