#!/usr/bin/env bash
# Runs the real app in a virtual X display (xvfb-run), starts the chains, takes a screenshot of the window after a
# few seconds, and checks that it is a real picture. Output: $TARGET/screenshot/walkjump.png.
#
#   scripts/screenshot.sh            # uses checkpoints/deen-mlp-s1.0.safetensors, else trains a tiny model first
#   SHOT_AFTER=15 scripts/screenshot.sh
#
# Needs: xvfb (xvfb-run), Mesa's Vulkan driver (lavapipe) or GL (llvmpipe); .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
out="$target/screenshot"
mkdir -p "$out"
after="${SHOT_AFTER:-10}"

command -v xvfb-run >/dev/null 2>&1 || { echo "error: xvfb-run is missing (apt-get install xvfb xauth)" >&2; exit 1; }

echo "== building the app"
cargo build --locked --bin walkjump
bin="$target/debug/walkjump"

model="checkpoints/deen-mlp-s1.0.safetensors"
if [ ! -f "$model" ]; then
  model="$out/deen-tiny.safetensors"
  if [ ! -f "$model" ]; then
    echo "== no bundled model: training a tiny DEEN for the screenshot"
    "$bin" train --kind deen --sigma 1.0 --epochs 3 --batch 128 --seed 0 \
      --arch '{"net":{"type":"mlp","hidden":[256]},"quadratic":true}' --out "$model"
  fi
fi

shot="$out/walkjump.png"
rm -f "$shot"
echo "== running the app under Xvfb ($model, screenshot after ${after}s)"
# Fresh settings in a private data folder, so the picture does not depend on earlier sessions; a private runtime
# folder keeps Mesa quiet.
runtime="$(mktemp -d)"
chmod 700 "$runtime"
XDG_RUNTIME_DIR="$runtime" XDG_DATA_HOME="$out/xdg" timeout 300 xvfb-run -a -s "-screen 0 1400x960x24" \
  "$bin" gui --fresh --autostart -c "$model" --screenshot-after "$after" "$shot"

rm -rf "$runtime"
[ -f "$shot" ] || { echo "error: no screenshot was written" >&2; exit 1; }
size=$(stat -c %s "$shot")
# The app refuses to save a blank (one-colour) image; a real UI picture is also never tiny.
if [ "$size" -lt 20000 ]; then
  echo "error: $shot is only $size bytes: the window was probably not drawn" >&2
  exit 1
fi
echo "screenshot: $shot ($size bytes)"
