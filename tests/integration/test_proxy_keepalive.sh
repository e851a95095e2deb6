#!/usr/bin/env bash
# Keep-alive as phones use it (issue 14.1): eas_conformance.py replays an iOS
# session on one TLS connection through easgate to exsim (OPTIONS, Provision
# x2, FolderSync, Sync with and without a body, empty Pings with and without
# a length header, a Ping with a body, SendMail small and 200 KB, ItemOperations,
# three pipelined requests, Expect: 100-continue, chunked bodies, a base64
# query, HTTP/1.0 keep-alive) and checks every answer and that the one
# connection carried them all:
#   1. to an exsim that keeps its connections;
#   2. to an exsim that ends each connection when a second request starts on
#      it (--drop-reused: a server such as SOGo that closes idle connections
#      without Connection: close). Every pooled connection easgate reuses is
#      then gone as the request goes out: the request goes again on a new
#      one (its body was read first, or it streams on a new connection from
#      the start), and the phone sees no 503.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "no python3"; exit 77; }
for b in easgate exsim; do
  [ -x "$BUILD/$b" ] || { echo "no $b in $BUILD"; exit 77; }
done

CERTS=$(eg_certs)
wb() { "$BUILD/easgate" wbxml encode >"$TMP/$1"; }
echo '<Provision xmlns="Provision"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies></Provision>' | wb provision.wbxml
echo '<Provision xmlns="Provision"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML</PolicyType><PolicyKey>1234567890</PolicyKey><Status>1</Status></Policy></Policies></Provision>' | wb provision2.wbxml
echo '<FolderSync xmlns="FolderHierarchy"><SyncKey>0</SyncKey></FolderSync>' | wb foldersync.wbxml
echo '<Sync xmlns="AirSync"><Collections><Collection><SyncKey>0</SyncKey><CollectionId>1</CollectionId></Collection></Collections></Sync>' | wb sync.wbxml
echo '<Ping xmlns="Ping"><HeartbeatInterval>60</HeartbeatInterval><Folders><Folder><Id>1</Id><Class>Email</Class></Folder></Folders></Ping>' | wb ping.wbxml
echo '<ItemOperations xmlns="ItemOperations"><Fetch><Store>Mailbox</Store><CollectionId xmlns="AirSync">1</CollectionId><ServerId xmlns="AirSync">1:1</ServerId></Fetch></ItemOperations>' | wb itemops.wbxml

cat >"$TMP/policy.yaml" <<'YAML'
unknown_devices: allow
provisioning: { mode: passthrough }
YAML

run() { # NAME EXSIM-ARGS...: the session through a fresh proxy to a fresh exsim
  local name=$1
  shift
  eg_exsim "ex_$name" "$@"
  local port_var="ex_${name}_port" px adm
  px=$(eg_port)
  adm=$(eg_port)
  cat >"$TMP/$name.yaml" <<YAML
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$adm
  instances:
    - name: main
      listen: 127.0.0.1:$px
      tls: { cert: $CERTS/proxy.crt, key: $CERTS/proxy.key }
      upstream: { url: "http://127.0.0.1:${!port_var}" }
policy: $TMP/policy.yaml
log: { access: "$TMP/$name.access.log", level: info }
YAML
  eg_start "px_$name" "$BUILD/easgate" proxy -c "$TMP/$name.yaml"
  eg_wait_port "$px"
  accepted() { curl -s "http://127.0.0.1:$adm/metrics" | awk '/^easgate_connections_total/{print $2}'; }
  local before
  before=$(accepted) # eg_wait_port's own connection
  python3 "$SRC/tests/integration/eas_conformance.py" "$px" "$CERTS/ca.crt" "$TMP" >"$TMP/$name.out" 2>&1 ||
    eg_fail "$name: the session failed:
$(cat "$TMP/$name.out")"
  summary=$(tail -1 "$TMP/$name.out")
  [[ $summary == requests=2[0-9]" connections=1 "* ]] || eg_fail "$name: $summary"
  ! grep -q '"status":503' "$TMP/$name.access.log" || eg_fail "$name: easgate answered 503:
$(grep '"status":503' "$TMP/$name.access.log")"
  [ $(($(accepted) - before)) = 1 ] || eg_fail "$name: the session took $(($(accepted) - before)) client connections"
}

run keep
eg_pass "one TLS connection carries the whole session ($(tail -1 "$TMP/keep.out"))"

run drop --drop-reused
n_up=$(tail -1 "$TMP/drop.out" | sed 's/.*upstream_connections=//')
[ "$n_up" -ge 20 ] || eg_fail "drop: only $n_up upstream connections served the session: exsim closes each after one answer"
eg_pass "a server that closes idle connections silently: every request answered, no 503, one client connection ($(tail -1 "$TMP/drop.out"))"
