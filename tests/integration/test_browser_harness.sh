#!/usr/bin/env bash
# The browser test harness (tests/browser/harness.mjs) can fail a test: a
# CSP violation (inline script, inline style, a third-party origin), a
# console error, an uncaught exception and a failed request are each
# reported; a clean page and a declared error are not. Skipped (77)
# without chromium or tests/browser/node_modules.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v node >/dev/null || { echo "SKIP: no node"; exit 77; }
[ -x "${EG_CHROMIUM:-/usr/bin/chromium}" ] || { echo "SKIP: no chromium (scripts/bootstrap installs it)"; exit 77; }
[ -d "$SRC/tests/browser/node_modules/playwright-core" ] ||
  { echo "SKIP: no tests/browser/node_modules (scripts/bootstrap runs npm ci there)"; exit 77; }
node "$SRC/tests/browser/test_harness.mjs"
