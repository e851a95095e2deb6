# test_core_observe: the core alone (`easgate core`) is as observable as the
# proxy. It writes log.error to its file at log.level, logs every admin API
# request as a JSON line on log.access, reopens both on SIGUSR1 (logrotate);
# core.listen answers /healthz, /readyz (503 until Redis is there and the
# resync done, then 200) and /metrics (build info, check-ins, evaluations,
# API requests by route and status, login failures, resync, sightings lag,
# certificate and CRL expiry) without a token. About 10 s.
source "$(dirname "$0")/lib.sh"

EG=$BUILD/easgate
D=$TMP/site
echo 'correct-horse-battery' | "$EG" init --dir "$D" --upstream http://127.0.0.1:9 \
  --public-host localhost --admin root --listen "127.0.0.1:$(eg_port)" >"$TMP/init.log" 2>&1 ||
  eg_fail "init: $(cat "$TMP/init.log")"
P_CORE=$(eg_port) P_ENROLL=$(eg_port)
eg_take_port redis
sed -i -e "s/127.0.0.1:9443/127.0.0.1:$P_CORE/" -e "s/0.0.0.0:8444/127.0.0.1:$P_ENROLL/" \
  -e "s#redis://127.0.0.1:6379/0#redis://127.0.0.1:$redis_port/0#" \
  -e 's#access: "-" .*#access: api.log#' -e 's#error: "-" .*#error: core.log#' \
  -e 's#level: info#level: warn#' "$D/easgate.yaml"
grep -q "access: api.log" "$D/easgate.yaml" && grep -q "error: core.log" "$D/easgate.yaml" ||
  eg_fail "could not point the logs at files"
CA=(--cacert "$D/tls/admin.crt")
URL=https://127.0.0.1:$P_CORE

# Redis is not there yet: alive, not ready.
eg_stack core "$D/easgate.yaml"
[ "$(curl -fsS "${CA[@]}" "$URL/healthz")" = ok ] || eg_fail "/healthz"
code=$(curl -s -o "$TMP/ready" -w '%{http_code}' "${CA[@]}" "$URL/readyz")
[ "$code" = 503 ] && grep -q "redis: not connected" "$TMP/ready" ||
  eg_fail "/readyz without Redis: $code $(cat "$TMP/ready")"
eg_pass "/healthz 200 and /readyz 503 (redis: not connected) while Redis is away"

eg_redis
for _ in $(seq 100); do
  code=$(curl -s -o "$TMP/ready" -w '%{http_code}' "${CA[@]}" "$URL/readyz")
  [ "$code" = 200 ] && break
  sleep 0.1
done
[ "$code" = 200 ] && grep -q "ready; registry: open; redis: connected; resync: done" "$TMP/ready" ||
  eg_fail "/readyz with Redis: $code $(cat "$TMP/ready")"
eg_pass "/readyz 200 once Redis is connected and the resync done"

# Some traffic: a failed login, a good one, a listing, a device and a check-in.
curl -s -o /dev/null "${CA[@]}" -H 'Content-Type: application/json' \
  -d '{"user":"root","password":"not-the-password"}' "$URL/api/v1/login"
T=$(curl -fsS "${CA[@]}" -H 'Content-Type: application/json' \
  -d '{"user":"root","password":"correct-horse-battery"}' "$URL/api/v1/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -fsS -o /dev/null "${CA[@]}" -H "Authorization: Bearer $T" "$URL/api/v1/devices"
"$EG" core device add PHONE1 -c "$D/easgate.yaml" >/dev/null 2>&1 || eg_fail "device add"
curl -fsS -o /dev/null "${CA[@]}" -H "Authorization: Bearer $T" -H 'Content-Type: application/json' \
  -d '{"device_id":"PHONE1","passcode":true}' "$URL/api/v1/checkin" || eg_fail "checkin"
curl -fsS "${CA[@]}" "$URL/metrics" >"$TMP/metrics" || eg_fail "/metrics"
for want in \
  'easgate_build_info{role="core",version="' \
  'easgate_core_login_failures_total 1' \
  'easgate_core_checkins_total 1' \
  'easgate_core_api_requests_total{route="POST /api/v1/login",status="401"} 1' \
  'easgate_core_api_requests_total{route="POST /api/v1/login",status="200"} 1' \
  'easgate_core_api_requests_total{route="GET /api/v1/devices",status="200"} 1' \
  'easgate_core_evaluations_total{result="allow"}' \
  'easgate_core_pushes_total{result="ok"}' \
  'easgate_core_last_resync_timestamp_seconds' \
  'easgate_core_sightings_lag_seconds' \
  'easgate_core_redis_connected 1' \
  "easgate_cert_expiry_timestamp_seconds{file=\"$D/ca/device-ca.crt\"}" \
  "easgate_crl_next_update_timestamp_seconds{file=\"$D/ca/device-ca.crl\"}" \
  'process_open_fds' 'process_max_fds'; do
  grep -qF -- "$want" "$TMP/metrics" || eg_fail "/metrics lacks '$want'"
done
grep -Eq '^easgate_core_resync_duration_seconds_count [1-9]' "$TMP/metrics" ||
  eg_fail "/metrics: no completed resync counted"
# The check-in went through the writer: one group of one job at least,
# whose commit stored its facts (WAL frames).
grep -Eq '^easgate_core_writer_groups_total [1-9]' "$TMP/metrics" &&
  grep -Eq '^easgate_core_writer_jobs_total [1-9]' "$TMP/metrics" &&
  grep -Eq '^easgate_core_checkpoints_total [0-9]' "$TMP/metrics" &&
  grep -Eq '^easgate_core_checkpoint_pages_total [0-9]' "$TMP/metrics" &&
  grep -Eq '^easgate_core_wal_frames_total [1-9]' "$TMP/metrics" ||
  eg_fail "/metrics: no writer groups, jobs, WAL frames or checkpoint counters"
eg_pass "/metrics: build info, logins, check-ins, writer groups, checkpoints, API routes and statuses, evaluations, pushes, resync, lag, certificates"

# The request log: JSON lines, one per API request (not the probes).
python3 - "$D/api.log" <<'PY' || eg_fail "api.log: $(cat "$D/api.log")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
routes = [(l["route"], l["status"]) for l in lines]
assert ("POST /api/v1/login", 401) in routes and ("POST /api/v1/login", 200) in routes, routes
assert ("GET /api/v1/devices", 200) in routes, routes
assert all(l["role"] == "core" and l["client"] == "127.0.0.1" for l in lines), lines
assert not any(l["path"] in ("/healthz", "/readyz", "/metrics") for l in lines), lines
dev = [l for l in lines if l["route"] == "GET /api/v1/devices"][0]
assert dev["user"] == "root" and isinstance(dev["duration_ms"], int), dev
PY
# level warn: Redis's absence at start is there, the info lines are not
grep -q " warn core: redis" "$D/core.log" || eg_fail "core.log lacks the warning: $(cat "$D/core.log")"
grep -q " info " "$D/core.log" && eg_fail "log.level warn: info lines in core.log"
eg_pass "log.access gets one JSON line per API request; log.error the log at log.level"

# Rotation: move both away, USR1, both come back.
mv "$D/api.log" "$D/api.log.1"; mv "$D/core.log" "$D/core.log.1"
kill -USR1 "$core_pid"
sleep 0.3
curl -fsS -o /dev/null "${CA[@]}" -H "Authorization: Bearer $T" "$URL/api/v1/whoami"
for _ in $(seq 50); do [ -s "$D/api.log" ] && break; sleep 0.1; done
[ -s "$D/api.log" ] || eg_fail "no new api.log after SIGUSR1"
grep -q whoami "$D/api.log" || eg_fail "the new api.log lacks the request"
grep -q whoami "$D/api.log.1" && eg_fail "the request went to the rotated file"
[ -e "$D/core.log" ] || eg_fail "no new core.log after SIGUSR1"
eg_stop_clean core
eg_pass "SIGUSR1 reopens log.access and log.error"
