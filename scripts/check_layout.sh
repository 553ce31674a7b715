#!/usr/bin/env bash
# The core's rooms and what each may include (README "Layout"; each core/<room>/README.md says the same).
# A file in core/<room>/ may include only headers of its own room and of the rooms listed for it here, so
# the layers stay in one direction: base < kernels < nn, io < models < eval, train, backends.
# Exits 1 listing every include that breaks the rule; run by ctest (core_layout) in every native build.
set -uo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [base]=""
  [kernels]="base"
  [nn]="base kernels"
  [io]="base"
  [models]="base kernels nn io"
  [eval]="base kernels nn io models"
  [train]="base kernels nn io models"
  [backends]="base kernels nn io models"
)
bad=0
for dir in core/*/; do
  room=$(basename "$dir")
  if [[ -z "${allowed[$room]+set}" ]]; then
    echo "core/$room/: a room the layout does not know (add it to scripts/check_layout.sh and the README)"
    bad=1
    continue
  fi
  while IFS= read -r hit; do
    file=${hit%%:*}
    target=$(sed -nE 's/.*#include "core\/([a-z_]+)\/.*/\1/p' <<<"$hit")
    [[ "$target" == "$room" ]] && continue
    if [[ " ${allowed[$room]} " != *" $target "* ]]; then
      echo "$file includes core/$target/: core/$room/ may include only: $room ${allowed[$room]}"
      bad=1
    fi
  done < <(grep -HE '^#include "core/' "$dir"*.h "$dir"*.cpp 2>/dev/null)
done
# The backends reach models only through the protocol: of core/models/ they include model.h alone.
while IFS= read -r hit; do
  echo "${hit%%:*} includes $(sed -nE 's/.*#include "(core\/models\/[^"]+)".*/\1/p' <<<"$hit"): core/backends/ may include only core/models/model.h of the models (the protocol)"
  bad=1
done < <(grep -HE '^#include "core/models/' core/backends/*.h core/backends/*.cpp 2>/dev/null | grep -v '"core/models/model.h"')
loose=$(find core -maxdepth 1 -type f \( -name '*.h' -o -name '*.cpp' \))
if [[ -n "$loose" ]]; then
  echo "files outside every room: $loose"
  bad=1
fi
[[ $bad == 0 ]] && echo "core layout: every include follows the rooms' order"
exit $bad
