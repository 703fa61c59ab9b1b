#!/usr/bin/env bash
# The pictures in docs/: each workspace's first view with the bundled models, taken from the real window under Xvfb
# (`walkjump gui --fresh --tab T --autostart --screenshot-after S PATH`), and half-digit completions from the command
# line (`walkjump sample --condition test --mask top`).
#
#   scripts/screenshots.sh              # writes docs/first-*.png and docs/conditional-top.png
#   SHOT_AFTER=20 scripts/screenshots.sh
#
# Needs: xvfb (xvfb-run), Mesa's Vulkan driver (lavapipe) or GL (llvmpipe); .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
after="${SHOT_AFTER:-12}"
command -v xvfb-run >/dev/null 2>&1 || { echo "error: xvfb-run is missing (apt-get install xvfb xauth)" >&2; exit 1; }
cargo build --locked --bin walkjump
bin="$target/debug/walkjump"
mkdir -p docs

for tab in walk-jump nebula denoise lab models; do
  shot="docs/first-$tab.png"
  runtime="$(mktemp -d)"
  chmod 700 "$runtime"
  data="$(mktemp -d)"
  echo "== $tab"
  XDG_RUNTIME_DIR="$runtime" XDG_DATA_HOME="$data" timeout 300 xvfb-run -a -s "-screen 0 1400x960x24" \
    "$bin" gui --fresh --tab "$tab" --autostart --chains 16 --screenshot-after "$after" "$shot"
  rm -rf "$runtime" "$data"
  [ -f "$shot" ] || { echo "error: no screenshot for $tab" >&2; exit 1; }
done

# Completions of the top halves of the first eight test digits, 2 000 steps with the model's recommended sampler.
"$bin" sample --condition test --mask top --chains 8 --steps 2000 --every 100 --frames 10 --seed 0 \
  --out docs/conditional-top.png
