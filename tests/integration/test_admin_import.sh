#!/usr/bin/env bash
# `easgate admin devices import|export`, `users import`, `audit export`
# (docs/core.md, "Import and export") against a core without Redis: bad rows
# are FILE:LINE errors and nothing is sent; unknown users are caught by the
# server's dry run and nothing is stored; --dry-run says what would change;
# an import is idempotent; an export imports back unchanged.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
[ -x "$BUILD/easgate" ] || { echo "SKIP: no easgate in $BUILD"; exit 77; }
EG="$BUILD/easgate"
cport=$(eg_port)

cat >"$TMP/easgate.yaml" <<EOF
log: { error: "-", level: info }
core:
  database: registry.db
  tick: 200ms
  listen: 127.0.0.1:$cport
EOF
C=(-c "$TMP/easgate.yaml")
echo 'correct horse battery' | "$EG" core init-admin "${C[@]}" --user root >/dev/null
"$EG" core token "${C[@]}" --user root >"$TMP/token" 2>/dev/null
eg_stack core "$TMP/easgate.yaml"
export EASGATE_URL="http://127.0.0.1:$cport" EASGATE_TOKEN
EASGATE_TOKEN=$(cat "$TMP/token")
cd "$TMP"
count() { "$EG" admin devices export --format jsonl 2>/dev/null | wc -l; }

# Bad rows: every one reported at its line, nothing sent.
printf 'DeviceId,user,type,managed,state,note\n%s\n%s\n%s\n%s\n%s\n' \
  'D1,alice@example.com,iPhone,yes,,ok' \
  'D1,bob@example.com,iPhone,yes,,again' \
  'D2,bob@example.com,iPhone,maybe,,' \
  'D3,bob@example.com,iPhone,yes,wipe,' \
  'D-4!,bob@example.com,iPhone,yes,,' >bad.csv
rc=0; "$EG" admin devices import bad.csv 2>err || rc=$?
[ $rc -eq 1 ] || eg_fail "bad rows: exit $rc"
for want in "bad.csv:3: device D1 is on line 2 already" "bad.csv:4: managed 'maybe'" \
  "bad.csv:5: state wipe is not imported" "bad.csv:6: 'D-4!' is not a DeviceId" \
  "4 errors; nothing was sent"; do
  grep -qF "$want" err || eg_fail "no '$want' in: $(cat err)"
done
# Bytes that are not UTF-8 are an error at their line, not a value dropped.
printf 'device_id,user\nD8,caf\xe9@example.com\n' >latin1.csv
rc=0; "$EG" admin devices import latin1.csv 2>err || rc=$?
[ $rc -eq 1 ] && grep -q "latin1.csv:2: user holds bytes that are not UTF-8" err ||
  eg_fail "Latin-1 bytes accepted: exit $rc, $(cat err)"
printf '{"device_id":"J1","user":"a@example.com"}\n{"device_id":"J2","bogus":1}\nnot json\n' >bad.jsonl
rc=0; "$EG" admin devices import bad.jsonl 2>err || rc=$?
[ $rc -eq 1 ] && grep -q "bad.jsonl:2: unknown field 'bogus'" err &&
  grep -q "bad.jsonl:3: invalid JSON" err || eg_fail "bad JSON lines: exit $rc, $(cat err)"
[ "$(count)" -eq 0 ] || eg_fail "a refused file stored devices"

# Unknown users: the server's dry run says where, nothing is stored.
printf 'DeviceId,user,type,model,os,managed,state,note\n%s\n%s\n' \
  'D1,alice@example.com,iPhone,iPhone15,iOS,yes,,first' \
  'D2,bob@example.com,Android,Pixel,Android,no,block,lost' >good.csv
rc=0; "$EG" admin devices import good.csv 2>err || rc=$?
[ $rc -eq 1 ] && grep -q "good.csv:2: unknown user 'alice@example.com'" err &&
  grep -q "nothing was stored" err || eg_fail "unknown users: exit $rc, $(cat err)"
[ "$(count)" -eq 0 ] || eg_fail "unknown users stored devices"
# That check is a `validate` dry run: the rows in error only, no registry
# comparison (no "created" counts, no row listed for a device that would be new).
api_import() {
  curl -s -H "Authorization: Bearer $EASGATE_TOKEN" -H 'Content-Type: application/json' \
    -d "$1" "$EASGATE_URL/api/v1/devices/import"
}
api_import '{"validate":true,"devices":[{"device_id":"V1","user":"nobody@example.com"},{"device_id":"V2"}]}' |
  python3 -c '
import json, sys
a = json.load(sys.stdin)
assert a["validate"] and a["dry_run"] and not a["stored"] and a["errors"] == 1, a
assert "created" not in a and [r["row"] for r in a["rows"]] == [0], a
assert "unknown user" in a["rows"][0]["error"], a' || eg_fail "validate: not the errors only"
api_import '{"validate":true,"create_users":true,"devices":[{"device_id":"V1","user":"nobody@example.com"}]}' |
  python3 -c '
import json, sys
a = json.load(sys.stdin)
assert a["errors"] == 0 and a["rows"] == [], a' || eg_fail "validate with create_users"

# A dry run reports and stores nothing; the import stores; again: no change.
out=$("$EG" admin devices import good.csv --create-users --dry-run)
grep -q "good.csv:2: D1: would be created" <<<"$out" &&
  grep -q "2 would be created" <<<"$out" || eg_fail "dry run: $out"
[ "$(count)" -eq 0 ] || eg_fail "a dry run stored devices"
out=$("$EG" admin devices import good.csv --create-users)
grep -q "2 created, 0 updated, 0 unchanged" <<<"$out" || eg_fail "import: $out"
out=$("$EG" admin devices import good.csv --create-users)
grep -q "0 created, 0 updated, 2 unchanged" <<<"$out" || eg_fail "not idempotent: $out"
"$EG" admin --json devices show D2 | python3 -c '
import json, sys
d = json.load(sys.stdin)["device"]
assert d["state"] == "block" and d["managed"] is False and d["user"] == "bob@example.com", d' ||
  eg_fail "D2 not as imported"

# A change is reported, then stored, and recorded in the device's history.
printf 'device_id,user,type\nD1,alice@example.com,iPad\n' >upd.csv
out=$("$EG" admin devices import upd.csv --dry-run)
grep -q "upd.csv:2: D1: would be updated: type: 'iPhone' -> 'iPad'" <<<"$out" || eg_fail "dry run of a change: $out"
"$EG" admin devices import upd.csv | eg_has "0 created, 1 updated" || eg_fail "update"
"$EG" admin --json devices show D1 | python3 -c '
import json, sys
h = [x["action"] for x in json.load(sys.stdin)["history"]]
assert h.count("import") == 2, h' || eg_fail "D1's history lacks its two imports"
"$EG" admin audit | eg_has "devices.import" || eg_fail "no devices.import in the audit log"

# Export round trip: CSV and JSON lines both import back unchanged.
"$EG" admin devices export --output all.csv 2>/dev/null
"$EG" admin devices export --format jsonl --output all.jsonl 2>/dev/null
head -1 all.csv | eg_has '^device_id,user,type' || eg_fail "export header: $(head -1 all.csv)"
[ "$(wc -l <all.jsonl)" -eq 2 ] || eg_fail "export: $(cat all.jsonl)"
"$EG" admin devices import all.csv | eg_has "2 unchanged" || eg_fail "CSV round trip"
"$EG" admin devices import all.jsonl | eg_has "2 unchanged" || eg_fail "JSON lines round trip"

# Users, and the audit log as CSV.
printf 'name\nzed@example.com\n' >users.csv
"$EG" admin users import users.csv --dry-run | eg_has "would be created" || eg_fail "users dry run"
"$EG" admin users import users.csv | eg_has "1 created" || eg_fail "users import"
"$EG" admin users | eg_has "^zed@example.com " || eg_fail "imported user not listed"
"$EG" admin audit export --format csv | head -1 | eg_has '^id,at,actor,address,action,target,detail$' ||
  eg_fail "audit CSV header"
eg_pass "admin import/export: FILE:LINE errors, dry runs, unknown users, idempotent, round trip, users, audit"
