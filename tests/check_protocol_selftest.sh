#!/usr/bin/env bash
# Shows that scripts/check_protocol.sh can fail: on a copy of the tree it must pass as is, and fail on
# each planted violation (a dynamic_cast to a model class in C++, a comparison with a kind's name in
# C++ and in JavaScript), naming the file. Run by ctest (core_protocol_selftest).
set -uo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
copy() {
  rm -rf "$tmp/tree" && mkdir -p "$tmp/tree"
  (cd "$src" && tar cf - --exclude=node_modules core tools wasm web bench scripts/check_protocol.sh) | (cd "$tmp/tree" && tar xf -)
}
fails=0
copy
if ! bash "$tmp/tree/scripts/check_protocol.sh" "$tmp/tree" >"$tmp/out" 2>&1; then
  echo "FAIL: the unchanged tree does not pass:"; cat "$tmp/out"; fails=1
fi
plant() {  # file, line to append, what
  copy
  printf '%s\n' "$2" >>"$tmp/tree/$1"
  if bash "$tmp/tree/scripts/check_protocol.sh" "$tmp/tree" >"$tmp/out" 2>&1; then
    echo "FAIL: $3 planted in $1 was not caught"; fails=1
  elif ! grep -q "^$1:" "$tmp/out"; then
    echo "FAIL: $3 planted in $1 was caught but the file is not named:"; cat "$tmp/out"; fails=1
  else
    echo "ok: $3 in $1 caught: $(grep "^$1:" "$tmp/out" | head -1)"
  fi
}
plant tools/cli_images.cpp 'static const void* planted(const ll::Model* m) { return dynamic_cast<const ll::VqVae*>(m); }' "a dynamic_cast"
plant core/backends/xnnpack_infer.cpp 'static bool planted(const ll::Model& m) { return m.config().kind == "vqvae"; }' "a C++ kind-name comparison"
plant wasm/bindings.cpp 'static bool planted(const std::string& k) { return "conv_vae" != k; }' "a reversed C++ kind-name comparison"
plant web/panels/vq.js "export const planted = (info) => info.kind === 'vae';" "a JavaScript kind-name comparison"
exit $fails
