#!/usr/bin/env bash
# The demo command: sets everything up (scripts/setup.sh), builds the WebAssembly module and the page,
# and serves it on 127.0.0.1 (it prints the URL; Ctrl-C stops it). PORT=8080 by default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export NODE_PATH=/usr/share/nodejs  # Debian's Emscripten 3.1.6 runs its JS tools under node and needs Debian's acorn from /usr/share/nodejs
cmake --preset wasm-release >/dev/null
cmake --build --preset wasm-release -j "$(nproc 2>/dev/null || echo 2)" --target latentlab_wasm latentlab_wasm_wrapper
node scripts/build_web.mjs --out build/web --wasm build/wasm-release
exec node scripts/serve.mjs --dir build/web --port "${PORT:-8080}"
