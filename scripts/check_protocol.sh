#!/usr/bin/env bash
# One model protocol (core/models/model.h): callers ask a model for a capability (code_grids(),
# inference_graph(), ...), never cast it to a concrete class or branch on its kind's name. This script
# fails (exit 1, listing each hit) on
#   - a dynamic_cast (to any class: the models are the only class hierarchy callers see), and
#   - a comparison (==, !=, ===, !==, case) with the name of a kind in the registry (read from
#     core/models/model_registry.cpp) written as a string,
# in the core, the tool, the bindings, the page and the benchmarks, outside the registry and the kinds'
# own files (core/models/ except the protocol itself: model.h, model.cpp, model_file.*). Tests are not
# checked (they may keep kind names as test data).
# Usage: check_protocol.sh [root]  (default: the repository holding this script). Run by ctest
# (core_protocol) in every native build.
set -uo pipefail
root=${1:-"$(dirname "$0")/.."}
cd "$root" || exit 2
registry=core/models/model_registry.cpp
[[ -f $registry ]] || { echo "no $registry"; exit 2; }
# Kind names: each registry entry opens with {"name", "description", ...
mapfile -t kinds < <(sed -nE 's/^ *\{"([a-z0-9_]+)", ".*/\1/p' "$registry" | sort -u)
[[ ${#kinds[@]} -gt 0 ]] || { echo "found no kind names in $registry"; exit 2; }
names=$(IFS='|'; echo "${kinds[*]}")

allowed() {  # the registry and the kinds' own files
  case "$1" in
    core/models/model.h | core/models/model.cpp | core/models/model_file.h | core/models/model_file.cpp) return 1 ;;
    core/models/*) return 0 ;;
  esac
  return 1
}

files=$(find core tools wasm web bench -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.js' -o -name '*.mjs' \) \
          -not -path '*/node_modules/*' 2>/dev/null | sort)
q="[\"']"
cmp_re="(==|!=)=?[[:space:]]*${q}(${names})${q}|${q}(${names})${q}[[:space:]]*(==|!=)|case[[:space:]]+${q}(${names})${q}"
bad=0
for f in $files; do
  allowed "$f" && continue
  while IFS= read -r hit; do
    echo "$f:$hit: dynamic_cast: ask the model for a capability (core/models/model.h) instead"
    bad=1
  done < <(grep -nE 'dynamic_cast[[:space:]]*<' "$f" | grep -vE '^[0-9]+:[[:space:]]*//' | cut -d: -f1)
  while IFS= read -r hit; do
    echo "$f:$hit: compares with a kind's name: ask the model for a capability (core/models/model.h) instead"
    bad=1
  done < <(grep -nE "$cmp_re" "$f" | grep -vE '^[0-9]+:[[:space:]]*//' | cut -d: -f1)
done
[[ $bad == 0 ]] && echo "model protocol: no dynamic_cast and no branch on a kind's name outside the registry and the kinds' files (kinds: ${kinds[*]})"
exit $bad
