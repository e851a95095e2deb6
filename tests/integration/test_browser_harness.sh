#!/usr/bin/env bash
# The browser test harness (tests/browser/harness.mjs) can fail a test: a
# CSP violation (inline script, inline style, a third-party origin), a
# console error, an uncaught exception and a failed request are each
# reported; a clean page and a declared error are not. Skipped (77)
# without chromium or tests/browser/node_modules.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# It tests the harness (JavaScript) against pages of its own: no easgate
# code runs, so a sanitized build has nothing to add.
if grep -q '^EASGATE_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "SKIP: the harness is tested from the plain build"; exit 77
fi
command -v node >/dev/null || { echo "SKIP: no node"; exit 77; }
[ -x "${EG_CHROMIUM:-/usr/bin/chromium}" ] || { echo "SKIP: no chromium (scripts/bootstrap installs it)"; exit 77; }
[ -d "$SRC/tests/browser/node_modules/playwright-core" ] ||
  { echo "SKIP: no tests/browser/node_modules (scripts/bootstrap runs npm ci there)"; exit 77; }
node "$SRC/tests/browser/test_harness.mjs"
