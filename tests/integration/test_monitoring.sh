# test_monitoring: the monitoring kit in contrib/monitoring. promtool checks
# and unit-tests the alert rules and checks the scrape configuration; the
# Grafana dashboard is valid JSON of the expected shape; and every metric the
# rules and the dashboard use is documented and exported by a running proxy
# and core (so a renamed metric breaks this test, not a night's alerting).
# About 5 s.
source "$(dirname "$0")/lib.sh"

EG=$BUILD/easgate
M=$SRC/contrib/monitoring
command -v promtool >/dev/null || { echo "SKIP: no promtool (Debian package prometheus)"; exit 77; }

promtool check rules "$M/easgate-alerts.yml" >"$TMP/rules.log" 2>&1 ||
  eg_fail "promtool check rules: $(cat "$TMP/rules.log")"
(cd "$M" && promtool test rules easgate-alerts.test.yml) >"$TMP/rtest.log" 2>&1 ||
  eg_fail "promtool test rules: $(cat "$TMP/rtest.log")"
eg_pass "alert rules: promtool check and unit tests"

# The rules file also fails the check when it is broken (the check can fail).
sed 's/expr: up{job="easgate-proxy"} == 0/expr: up{job="easgate-proxy"} ==/' \
  "$M/easgate-alerts.yml" >"$TMP/broken.yml"
promtool check rules "$TMP/broken.yml" >/dev/null 2>&1 && eg_fail "promtool accepted a broken rule"

# prometheus.yml with its file paths pointed here.
touch "$TMP/admin.crt"
sed -e "s#/etc/prometheus/easgate-alerts.yml#$M/easgate-alerts.yml#" \
    -e "s#/etc/easgate/tls/admin.crt#$TMP/admin.crt#" "$M/prometheus.yml" >"$TMP/prometheus.yml"
promtool check config "$TMP/prometheus.yml" >"$TMP/config.log" 2>&1 ||
  eg_fail "promtool check config: $(cat "$TMP/config.log")"
eg_pass "scrape configuration passes promtool check config"

# The dashboard: JSON, panels with queries on the data source variable, and
# every job it selects is one the scrape configuration defines.
python3 - "$M/easgate-dashboard.json" >"$TMP/metrics-used" <<'PY' || eg_fail "dashboard: $(cat "$TMP/metrics-used")"
import json, re, sys
d = json.load(open(sys.argv[1]))
assert d.get("uid") == "easgate" and d.get("title"), "no uid/title"
names = {v["name"] for v in d["templating"]["list"]}
assert {"datasource", "proxy", "core"} <= names, f"template variables: {names}"
seen = set()
ids = set()
for p in d["panels"]:
    assert p["id"] not in ids, f"duplicate panel id {p['id']}"
    ids.add(p["id"])
    g = p["gridPos"]
    assert 0 <= g["x"] and g["x"] + g["w"] <= 24, f"panel {p['title']} outside the grid"
    if p["type"] == "row":
        continue
    assert p["datasource"]["uid"] == "${datasource}", p["title"]
    assert p["targets"], f"panel {p['title']} has no query"
    for t in p["targets"]:
        for job in re.findall(r'job="([^"]+)"', t["expr"]):
            assert job in ("easgate-proxy", "easgate-core"), f"unknown job {job}"
        seen.update(re.findall(r'\b((?:easgate|process)_[a-z_]+)', t["expr"]))
for m in sorted(seen):
    print(m)
PY
grep -ohE '\b(easgate|process)_[a-z_]+' "$M/easgate-alerts.yml" >>"$TMP/metrics-used"
sed -i -E 's/_(bucket|sum|count)$//' "$TMP/metrics-used"
sort -u -o "$TMP/metrics-used" "$TMP/metrics-used"
eg_pass "dashboard JSON: $(python3 -c "import json;print(len(json.load(open('$M/easgate-dashboard.json'))['panels']))" ) panels, $(wc -l <"$TMP/metrics-used") metrics used"

# Documented: each metric appears in docs/operations.md or docs/core.md.
while read -r m; do
  grep -q "\`$m" "$SRC/docs/operations.md" "$SRC/docs/core.md" ||
    eg_fail "metric $m is used by the monitoring kit but documented nowhere"
done <"$TMP/metrics-used"
eg_pass "every metric the kit uses is documented"

# Exported: a proxy and a core (easgate run, one process) scraped for real.
eg_certs >/dev/null
P_PROXY=$(eg_port) P_ADMIN=$(eg_port) P_CORE=$(eg_port)
eg_redis
cat >"$TMP/easgate.yaml" <<EOF
proxy:
  workers: 1
  admin_listen: 127.0.0.1:$P_ADMIN
  instances:
    - name: main
      listen: 127.0.0.1:$P_PROXY
      tls: { cert: certs/proxy.crt, key: certs/proxy.key }
      upstream: { url: "http://127.0.0.1:9" }
redis: { url: "redis://127.0.0.1:$redis_port/0" }
core:
  database: registry.db
  listen: 127.0.0.1:$P_CORE
  tls: { cert: certs/proxy.crt, key: certs/proxy.key }
EOF
eg_stack -n easgate run "$TMP/easgate.yaml"
curl -s -o /dev/null --cacert "$TMP/certs/ca.crt" "https://127.0.0.1:$P_PROXY/Microsoft-Server-ActiveSync?Cmd=Sync&User=a&DeviceId=X1&DeviceType=iPhone" || true
# A failed login and a resync, so that every core series has a sample.
curl -s -o /dev/null --cacert "$TMP/certs/ca.crt" -H 'Content-Type: application/json' \
  -d '{"user":"nobody","password":"wrong-password-here"}' "https://127.0.0.1:$P_CORE/api/v1/login" || true
for _ in $(seq 50); do
  curl -fsS --cacert "$TMP/certs/ca.crt" "https://127.0.0.1:$P_CORE/metrics" >"$TMP/core.metrics" 2>/dev/null &&
    grep -q '^easgate_core_last_resync_timestamp_seconds' "$TMP/core.metrics" && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$P_ADMIN/metrics" >"$TMP/proxy.metrics" || eg_fail "no proxy /metrics"
while read -r m; do
  grep -qE "^(# TYPE )?$m[ {_]" "$TMP/proxy.metrics" "$TMP/core.metrics" ||
    eg_fail "metric $m is used by the monitoring kit but neither the proxy nor the core exports it"
done <"$TMP/metrics-used"
for f in "$TMP/proxy.metrics" "$TMP/core.metrics"; do
  promtool check metrics <"$f" >"$TMP/lint.log" 2>&1 || true
  if grep -v 'counter metrics should have "_total" suffix\|no help text' "$TMP/lint.log" >"$TMP/lint.left"; then
    eg_fail "promtool check metrics $(basename "$f"): $(cat "$TMP/lint.log")"
  fi
done
eg_stop_clean easgate
eg_pass "every metric the kit uses is exported by a running proxy and core; promtool lints the exposition"
