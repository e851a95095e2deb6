#!/usr/bin/env bash
# Webhooks: audit events POSTed as JSON to two receivers on loopback that
# verify the HMAC-SHA256 signature over timestamp and body; one receives
# every event, the other only device.block (its filter); a receiver that
# answers 503 gets the event again until it takes it, once; a receiver
# with another secret refuses every request (401) and the sender gives up
# on them (a 4xx is final) with the error in the queue and /metrics; Redis
# lost and back are events too (core.redis_down, core.redis_up).
set -u
. "$(dirname "$0")/lib.sh" "$@"

EG="$BUILD/easgate"
command -v curl >/dev/null || exit 77
command -v sqlite3 >/dev/null || exit 77
command -v redis-server >/dev/null || exit 77
cd "$TMP" || exit 1
eg_redis
API=$(eg_port)
H1=$(eg_port)
H2=$(eg_port)
H3=$(eg_port)
printf 'hook-secret-1\n' >h1.secret
export EG_HOOK2_SECRET=hook-secret-2
printf 'not-the-receivers\n' >h3.secret
CERTS=$(eg_certs)
ENR=$(eg_port)
cat >easgate.yaml <<YAML
redis:
  url: redis://127.0.0.1:$redis_port/0
core:
  redis_retry: 300ms
  database: reg.db
  listen: 127.0.0.1:$API
  notify:
    poll: 100ms
    retry_min: 300ms
    retry_max: 1s
    webhooks:
      - name: siem
        url: http://127.0.0.1:$H1/hook
        secret_file: h1.secret
      - name: blocks
        url: http://127.0.0.1:$H2/blocks
        secret_env: EG_HOOK2_SECRET
        events: [device.block]
      - name: wrong
        url: http://127.0.0.1:$H3/
        secret_file: h3.secret
        events: ["device.*"]
enroll:
  public_host: mail.example.com
  listen: 127.0.0.1:$ENR
  tls: {cert: $CERTS/proxy.crt, key: $CERTS/proxy.key}
YAML
# a device CA with ten days left: its end is an event at the core's start
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout sca.key -out sca.crt \
  -days 10 -subj /CN=short-ca -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 || eg_fail "openssl CA"
"$EG" core init-ca -c easgate.yaml --import sca.crt --import-key sca.key >ca.log 2>&1 || eg_fail "init-ca --import: $(cat ca.log)"
eg_start h1 python3 "$SRC/tests/integration/webhook_recv.py" "$H1" hook-secret-1 "$TMP/h1.jsonl" 2
eg_start h2 python3 "$SRC/tests/integration/webhook_recv.py" "$H2" hook-secret-2 "$TMP/h2.jsonl"
eg_start h3 python3 "$SRC/tests/integration/webhook_recv.py" "$H3" hook-secret-3 "$TMP/h3.jsonl"
for p in "$H1" "$H2" "$H3"; do eg_wait_port "$p"; done
echo 'correct horse battery' | "$EG" core init-admin -c easgate.yaml --user root >/dev/null 2>&1 || eg_fail "init-admin"
VIEWER=$("$EG" core token -c easgate.yaml --user root --role viewer 2>/dev/null) || eg_fail "no viewer token"
eg_stack core easgate.yaml

"$EG" core device add PHONE1 -c easgate.yaml --user alice >/dev/null 2>&1 || eg_fail "device add"
"$EG" core device block PHONE1 -c easgate.yaml --note "lost on the train" >/dev/null 2>&1 || eg_fail "block"
"$EG" core device quarantine PHONE1 -c easgate.yaml >/dev/null 2>&1 || eg_fail "quarantine"
want=$(sqlite3 reg.db "SELECT count(*) FROM audit WHERE action LIKE 'device.%'")
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
for _ in $(seq 1 60); do [ "$(lines h1.jsonl)" -ge "$want" ] && [ "$(lines h2.jsonl)" -ge 1 ] && break; sleep 0.2; done
sleep 1
python3 - "$want" <<'PY' || eg_fail "webhook deliveries wrong: $(cat h1.jsonl h2.jsonl) $(sqlite3 reg.db 'SELECT * FROM notify_queue')"
import json, sys
want = int(sys.argv[1])
h1all = [json.loads(l) for l in open("h1.jsonl")]
h1 = [r for r in h1all if r["event"].startswith("device.")]
h2 = [json.loads(l) for l in open("h2.jsonl")]
ev1 = [r["event"] for r in h1]
assert len(h1) == want, ("siem: want %d" % want, ev1)
assert len({r["delivery"] for r in h1}) == len(h1), "a delivery came twice"
assert "device.block" in ev1 and "device.quarantine" in ev1, ev1
for r in h1 + h2:
    b = r["body"]
    assert r["type"] == "application/json" and b["event"] == r["event"], r
    assert set(b) >= {"event", "id", "time", "at_ms", "actor", "target", "detail", "user"}, b
    assert b["target"] == "PHONE1", b
blk = [r for r in h1 if r["event"] == "device.block"][0]["body"]
assert blk["detail"] == "lost on the train" and blk["user"] == "alice", blk
assert [r["event"] for r in h2] == ["device.block"], [r["event"] for r in h2]
assert h2[0]["path"] == "/blocks"
PY
ca=$(grep '"enroll.ca_expiring"' h1.jsonl) || eg_fail "no enroll.ca_expiring event: $(cat h1.jsonl)"
eg_has 'ends in [0-9] days' <<<"$ca" || eg_fail "the CA event does not say when: $ca"
eg_pass "webhooks: signed JSON verified by the receivers, filter per webhook, every audit event once; the device CA ending in 10 days is an event"
# two 503s: two attempts more than deliveries, over however many rows
[ "$(sqlite3 reg.db "SELECT sum(attempts) - count(*) FROM notify_queue WHERE target='siem' AND state='sent'")" = 2 ] ||
  eg_fail "the 503s were not retried: $(sqlite3 reg.db "SELECT id,attempts,state,last_error FROM notify_queue WHERE target='siem'")"
eg_pass "a receiver answering 503 twice: both retried, each event delivered once"

for _ in $(seq 1 50); do
  [ "$(sqlite3 reg.db "SELECT count(*) FROM notify_queue WHERE target='wrong' AND state='failed'")" = "$want" ] && break
  sleep 0.2
done
[ "$(sqlite3 reg.db "SELECT count(*) FROM notify_queue WHERE target='wrong' AND state='failed' AND attempts=1 AND last_error LIKE '%HTTP 401%'")" = "$want" ] ||
  eg_fail "bad signatures not refused for good: $(sqlite3 reg.db "SELECT id,attempts,state,last_error FROM notify_queue WHERE target='wrong'")"
[ "$(lines h3.jsonl)" = 0 ] || eg_fail "a receiver with another secret accepted an event"
curl -s --max-time 5 "http://127.0.0.1:$API/metrics" >m.txt
grep -q "^easgate_core_notify_failed_total{channel=\"webhook\"} $want\$" m.txt || eg_fail "failed webhooks not in /metrics: $(grep notify m.txt)"
got=$(($(lines h1.jsonl) + $(lines h2.jsonl)))
grep -q "^easgate_core_notify_sent_total{channel=\"webhook\"} $got\$" m.txt || eg_fail "sent webhooks wrong in /metrics (receivers have $got): $(grep notify m.txt)"
"$EG" core notify -c easgate.yaml --state failed >q.txt 2>&1 || eg_fail "core notify: $(cat q.txt)"
[ "$(grep -cE ' webhook +wrong +device[^ ]* +failed .*HTTP 401' q.txt)" = "$want" ] || eg_fail "core notify does not show the failures: $(cat q.txt)"
eg_pass "a receiver with another secret answers 401: given up at once, error kept, counted in /metrics, listed by easgate core notify"
grep -q "^easgate_core_notify_failed_rows $want\$" m.txt || eg_fail "failed rows not in /metrics: $(grep notify m.txt)"
api() { curl -s --max-time 5 -o api.json -w '%{http_code}' -H "Authorization: Bearer $VIEWER" "http://127.0.0.1:$API$1"; }
[ "$(api '/api/v1/notifications?state=failed&limit=500')" = 200 ] || eg_fail "GET notifications: $(cat api.json)"
python3 - "$want" <<'PY' || eg_fail "the API's failed notifications: $(cat api.json)"
import json, sys
want = int(sys.argv[1])
d = json.load(open("api.json"))
rows = d["notifications"]
assert len(rows) == want and d["counts"]["failed"] == want and d["next"] is None, d
for r in rows:
    assert r["state"] == "failed" and r["to"] == "wrong" and r["channel"] == "webhook", r
    assert "HTTP 401" in r["last_error"] and r["attempts"] == 1 and r["done"] > 0 and r["next"] == 0, r
    assert "body" not in r, r
assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
PY
[ "$(api '/api/v1/notifications?state=lost')" = 400 ] && grep -q "not queued, sent or failed" api.json ||
  eg_fail "a bad state filter: $(cat api.json)"
[ "$(api '/api/v1/notifications?limit=1')" = 200 ] && python3 -c 'import json; d=json.load(open("api.json")); assert len(d["notifications"]) == 1 and isinstance(d["next"], int), d' ||
  eg_fail "paging: $(cat api.json)"
"$EG" admin --url "http://127.0.0.1:$API" --token "$VIEWER" notify --state failed >adm.txt 2>adm.err || eg_fail "admin notify: $(cat adm.err)"
[ "$(grep -cE '^[0-9]+ +webhook +wrong +device[^ ]* +failed .*HTTP 401' adm.txt)" = "$want" ] || eg_fail "admin notify does not list the failures: $(cat adm.txt)"
grep -q "failed$" adm.err && grep -q "queue: [0-9]* queued, [0-9]* sent, $want failed" adm.err || eg_fail "admin notify counts: $(cat adm.err)"
eg_pass "the failures over the admin API (GET /api/v1/notifications?state=failed, viewer role), easgate admin notify, and the easgate_core_notify_failed_rows gauge"

# ---- a device turned away and kept pending (as core/sight.c records it) ----
events() { python3 -c 'import json,sys; print(" ".join(json.loads(l)["event"] for l in open(sys.argv[1])))' h1.jsonl; }
now=$(($(date +%s) * 1000))
sqlite3 reg.db "INSERT INTO pending_devices(device_id, user, device_type, user_agent, client_addr, first_ms, last_ms)
  VALUES('NEWPHONE9', 'bob', 'iPhone', 'Apple-iPhone/2001', '192.0.2.9', $now, $now)" || eg_fail "insert pending"
for _ in $(seq 1 50); do events | grep -q device.pending && break; sleep 0.2; done
grep '"device.pending"' h1.jsonl | eg_has '"target": "NEWPHONE9"' || eg_fail "no device.pending event: $(events)"
grep '"device.pending"' h1.jsonl | eg_has 'user bob, type iPhone' || eg_fail "device.pending without its facts: $(grep pending h1.jsonl)"
eg_pass "a device waiting for approval is the event device.pending"

# ---- Redis lost and back: events for admins and webhooks ----
kill "$redis_pid"; wait "$redis_pid" 2>/dev/null
for _ in $(seq 1 50); do events | grep -q core.redis_down && break; sleep 0.2; done
events | grep -q core.redis_down || eg_fail "no core.redis_down event: $(events)"
eg_redis
for _ in $(seq 1 50); do events | grep -q core.redis_up && break; sleep 0.2; done
events | grep -q core.redis_up || eg_fail "no core.redis_up event: $(events)"
grep '"core.redis_down"' h1.jsonl | eg_has "127.0.0.1:$redis_port" || eg_fail "the event does not name the Redis: $(grep redis h1.jsonl)"
eg_pass "Redis lost and back: core.redis_down and core.redis_up reach the webhook"
eg_stop_clean core
