#!/usr/bin/env bash
# `easgate run`: the proxy and the core in one process, through the same end
# to end checks as test_core_proxy.sh, then a clean stop on SIGTERM.
EG_CORE_RUN=1 exec bash "$(dirname "$0")/test_core_proxy.sh" "$@"
