#!/usr/bin/env bash
# The house stays one-way: scripts/housecheck reads every #include of the
# sources and passes only if no room includes one it may not
# (docs/architecture.md, "who may include whom"). Then, to show it can fail,
# a copy of the tree where eas/ includes a proxy header, common/ one of
# core's and proxy/ hiredis's: each is named with its file and line, and it
# exits 1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || exit 77

python3 "$SRC/scripts/housecheck" "$SRC" >"$TMP/house.txt" 2>&1 || eg_fail "$(cat "$TMP/house.txt")"
grep -q "^housecheck: the house is one-way" "$TMP/house.txt" || eg_fail "no verdict: $(cat "$TMP/house.txt")"
eg_pass "the sources keep the rules"

mkdir "$TMP/tree"
cp "$SRC/CMakeLists.txt" "$TMP/tree/"  # it names eg_pure's files
for room in eas policy common connectors proxy core enroll cli bench; do
  [ ! -d "$SRC/$room" ] || cp -r "$SRC/$room" "$TMP/tree/"
done
printf '#include "proxy/conn.h"\n' >"$TMP/tree/eas/climb.c"
printf '#include <stdio.h>\n#include "core/eng.h"\n' >"$TMP/tree/common/climb.h"
printf '#include <hiredis/hiredis.h>\n' >"$TMP/tree/proxy/climb.c"
rc=0; python3 "$SRC/scripts/housecheck" "$TMP/tree" >"$TMP/climb.txt" 2>&1 || rc=$?
[ $rc = 1 ] || eg_fail "a climbing include: exit $rc, want 1: $(cat "$TMP/climb.txt")"
grep -q "BROKEN eas" "$TMP/climb.txt" && grep -q "eas/climb.c:1" "$TMP/climb.txt" ||
  eg_fail "eas -> proxy not named: $(cat "$TMP/climb.txt")"
grep -q "BROKEN common" "$TMP/climb.txt" && grep -q "common/climb.h:2" "$TMP/climb.txt" ||
  eg_fail "common -> core not named: $(cat "$TMP/climb.txt")"
grep -q "BROKEN proxy" "$TMP/climb.txt" && grep -q "proxy/climb.c:1" "$TMP/climb.txt" ||
  eg_fail "hiredis in proxy/ not named: $(cat "$TMP/climb.txt")"
eg_pass "a climbing include breaks the check, with its file and line"
