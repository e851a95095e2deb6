/* test_conf: easgate.yaml loading. The shipped example loads with the values
 * it shows; a minimal file gets every documented default; a table of broken
 * files each fails with the expected FILE:LINE:COL message; other roles'
 * sections register and are validated; policy.yaml errors say where. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "policy/pol.h"

static const char *src_dir(void)
{
    const char *d = getenv("EG_SOURCE_DIR");
    return d ? d : EG_SOURCE_DIR;
}

static struct conf *load_ok(const char *text)
{
    struct conf *c = NULL;
    char err[512] = "";
    if (conf_load_buf("t.yaml", "/etc/easgate", text, strlen(text), &c, err, sizeof(err)))
        fail_msg("load failed: %s", err);
    return c;
}

static void test_example(void **state)
{
    char path[1024], err[512] = "";
    snprintf(path, sizeof(path), "%s/conf/easgate.yaml", src_dir());
    struct conf *c;
    if (conf_load(path, &c, err, sizeof(err)))
        fail_msg("%s", err);
    assert_true(c->has_proxy);
    assert_int_equal(c->proxy.workers, 2);
    assert_true(c->proxy.has_admin);
    assert_string_equal(c->proxy.admin_listen.text, "127.0.0.1:9090");
    assert_int_equal(c->proxy.n_instances, 1);
    const struct conf_instance *in = &c->proxy.instances[0];
    assert_string_equal(in->name, "main");
    assert_int_equal(in->listen.port, 8443);
    assert_non_null(strstr(in->tls.cert, "/conf/../certs/dev/proxy.crt"));
    assert_int_equal(in->upstream.n_urls, 1);
    assert_true(in->upstream.urls[0].tls);
    assert_string_equal(in->upstream.urls[0].host, "exchange.example.com");
    assert_int_equal(in->upstream.urls[0].port, 443);
    assert_true(in->upstream.verify);
    assert_true(c->redis.enabled);
    assert_int_equal(c->redis.max_stale_ms, 24 * 3600 * 1000LL);
    assert_non_null(strstr(c->policy_path, "/conf/policy.yaml"));

    struct pol_policy *p;
    if (pol_load(c->policy_path, &p, err, sizeof(err)))
        fail_msg("%s", err);
    assert_int_equal(p->n_rules, 2);
    pol_unref(p);

    /* The printed effective settings load back to the same values. */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    conf_print(f, c);
    fclose(f);
    struct conf *c2;
    if (conf_load_buf("printed.yaml", NULL, out, len, &c2, err, sizeof(err)))
        fail_msg("printed output does not load: %s\n%s", err, out);
    assert_int_equal(c2->proxy.timeouts.long_poll_margin_ms, c->proxy.timeouts.long_poll_margin_ms);
    assert_int_equal(c2->proxy.limits.max_heartbeat_ms, 3540000);
    assert_string_equal(c2->proxy.instances[0].tls.cert, in->tls.cert);
    free(out);
    conf_free(c2);
    conf_free(c);
}

static void test_defaults(void **state)
{
    struct conf *c = load_ok("proxy:\n"
                             "  instances:\n"
                             "    - name: a\n"
                             "      listen: \"[::]:8080\"\n"
                             "      upstream: { url: http://10.0.0.5 }\n");
    const struct conf_proxy *p = &c->proxy;
    assert_true(p->workers >= 1);
    assert_true(p->has_admin);
    assert_string_equal(p->admin_listen.text, "127.0.0.1:9090");
    assert_int_equal(p->timeouts.header_ms, 15000);
    assert_int_equal(p->timeouts.body_ms, 60000);
    assert_int_equal(p->timeouts.keepalive_ms, 75000);
    assert_int_equal(p->timeouts.long_poll_margin_ms, 60000);
    assert_int_equal(p->timeouts.upstream_connect_ms, 5000);
    assert_int_equal(p->timeouts.upstream_response_ms, 120000);
    assert_int_equal(p->timeouts.drain_grace_ms, 30000);
    assert_int_equal(p->timeouts.max_connection_age_ms, 24LL * 3600 * 1000);
    assert_int_equal(p->limits.max_requests_per_connection, 10000);
    assert_int_equal(p->limits.max_header_size, 16384);
    assert_int_equal(p->limits.max_body_read, 65536);
    assert_int_equal(p->limits.max_connections, 100000);
    assert_int_equal(p->limits.max_connections_per_client, 0);
    assert_int_equal(p->limits.max_heartbeat_ms, 3540000);
    const struct conf_instance *in = &p->instances[0];
    assert_null(in->tls.cert);
    assert_null(in->client_auth.ca);
    assert_false(in->client_auth.required);
    assert_false(in->upstream.urls[0].tls);
    assert_int_equal(in->upstream.urls[0].port, 80);
    assert_null(in->upstream.ca);
    assert_true(in->upstream.verify);
    assert_int_equal(in->upstream.pool_size, 64);
    assert_int_equal(in->upstream.pool_idle_ms, 60000);
    assert_int_equal(in->upstream.retry_after_ms, 10000);
    assert_int_equal(in->upstream.down_ms, 10000);
    assert_null(c->policy_path);
    assert_string_equal(c->log.access, "-");
    assert_string_equal(c->log.error, "-");
    assert_int_equal(c->log.level, EG_LOG_INFO);
    assert_false(c->redis.enabled);
    conf_free(c);
}

static void test_values(void **state)
{
    struct conf *c = load_ok("proxy:\n"
                             "  workers: 4\n"
                             "  admin_listen: off\n"
                             "  instances:\n"
                             "    - name: eu-1\n"
                             "      listen: 127.0.0.1:8443\n"
                             "      tls: { cert: /tls/p.crt, key: p.key }\n"
                             "      client_auth: { ca: ca.pem, required: true }\n"
                             "      upstream:\n"
                             "        url: [\"https://[2001:db8::5]:8443/\", https://ex2.local]\n"
                             "        verify: false\n"
                             "    - name: us\n"
                             "      listen: 0.0.0.0:9443\n"
                             "      upstream: { url: https://ex3.local:444 }\n"
                             "policy: pol/p.yaml\n"
                             "log: { access: off, error: /var/log/eg.log, level: DEBUG }\n"
                             "redis:\n"
                             "  url: redis://:s3cret@redis.local:6380/2\n"
                             "  sentinel: { master: eg, nodes: [\"a:26379\", \"[::1]:26380\"] }\n"
                             "  max_stale: 3s\n");
    assert_int_equal(c->proxy.workers, 4);
    assert_false(c->proxy.has_admin);
    assert_int_equal(c->proxy.n_instances, 2);
    const struct conf_instance *in = &c->proxy.instances[0];
    assert_string_equal(in->tls.cert, "/tls/p.crt");
    assert_string_equal(in->tls.key, "/etc/easgate/p.key");
    assert_true(in->client_auth.required);
    assert_int_equal(in->upstream.n_urls, 2);
    assert_string_equal(in->upstream.urls[0].host, "2001:db8::5");
    assert_int_equal(in->upstream.urls[0].port, 8443);
    assert_string_equal(in->upstream.urls[1].host, "ex2.local");
    assert_false(in->upstream.verify);
    assert_int_equal(c->proxy.instances[1].upstream.urls[0].port, 444);
    assert_string_equal(c->policy_path, "/etc/easgate/pol/p.yaml");
    assert_null(c->log.access);
    assert_string_equal(c->log.error, "/var/log/eg.log");
    assert_int_equal(c->log.level, EG_LOG_DEBUG);
    assert_true(c->redis.enabled);
    assert_string_equal(c->redis.host, "redis.local");
    assert_int_equal(c->redis.port, 6380);
    assert_int_equal(c->redis.db, 2);
    assert_string_equal(c->redis.password, "s3cret");
    assert_string_equal(c->redis.sentinel.master, "eg");
    assert_int_equal(c->redis.sentinel.nodes.n, 2);
    assert_int_equal(c->redis.max_stale_ms, 3000);
    assert_int_equal(c->redis.lookup_timeout_ms, 50);
    assert_int_equal(c->redis.sighting_interval_ms, 3600000);
    assert_int_equal(c->redis.stream_maxlen, 100000);

    /* Secrets never reach the printed settings. */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    conf_print(f, c);
    fclose(f);
    assert_null(strstr(out, "s3cret"));
    assert_non_null(strstr(out, "redis://:***@redis.local:6380/2"));
    assert_non_null(strstr(out, "admin_listen: off"));
    assert_non_null(strstr(out, "access: off"));
    free(out);
    conf_free(c);
}

#define INSTB "  instances:\n    - name: a\n      listen: 0.0.0.0:8443\n"
#define INST "proxy:\n" INSTB
#define UPS "      upstream: { url: https://ex.local }\n"

static const struct {
    const char *text, *want;
} bad[] = {
    {"", "t.yaml: the configuration is empty"},
    {"- a\n", "t.yaml:1:1: the configuration must be a map"},
    {"proxi: {}\n", "t.yaml:1:1: unknown section 'proxi' (did you mean 'proxy'?)"},
    {"zzz: 1\n", "unknown section 'zzz' (known: proxy"},
    {"proxy: 5\n", "t.yaml:1:8: proxy: expected a map"},
    {"proxy: {}\n", "missing required key 'instances'"},
    {"proxy:\n", "t.yaml:1:7: proxy: missing required key 'instances'"},
    {"redis:\nlog: 5\n", "t.yaml:2:6: expected a map of keys, got a scalar"},
    {"proxy:\n  instances: []\n", "t.yaml:2:14: instances: give at least one instance"},
    {"proxy:\n  worker: 2\n", "t.yaml:2:3: unknown key 'worker' (did you mean 'workers'?)"},
    {"proxy:\n  workers: 0\n" INSTB UPS, "workers: expected auto or a number from 1 to 256"},
    {"proxy:\n  admin_listen: localhost:9090\n", "t.yaml:2:17: admin_listen: bad address"},
    {INST, "t.yaml:3:7: missing required key 'upstream'"},
    {INST "      upstream: {}\n", "t.yaml:5:17: missing required key 'url'"},
    {INST "      upstream: { url: ftp://x }\n", "t.yaml:5:24: url: 'ftp://x' must start with"},
    {INST "      upstream: { url: https://x/owa?a=1 }\n",
     "t.yaml:5:24: url: 'https://x/owa?a=1': the path may not carry a query"},
    {INST "      upstream: { url: https://x?a=1 }\n", "url: 'https://x?a=1': no query or fragment"},
    {INST "      upstream: { url: https://x/a/../b }\n", "the path has a . or .. segment"},
    {INST "      upstream: { url: https://x/a/./b }\n", "the path has a . or .. segment"},
    {INST "      upstream: { url: https://x/a%2Fb }\n", "the path may not use percent-encoding"},
    {INST "      upstream: { url: https://x//a }\n", "the path has an empty segment (//)"},
    {INST "      upstream: { url: \"https://x/a b\" }\n", "the path holds a character other"},
    {INST "      upstream: { url: \"https://x/a\\\\b\" }\n", "the path holds a character other"},
    {INST "      upstream: { url: [https://x/SOGo, https://y/other] }\n",
     "t.yaml:5:24: url: 'https://x/SOGo' and 'https://y/other' carry different paths"},
    {INST "      upstream: { url: https://x, paths: { activesync: eas } }\n",
     "t.yaml:5:56: paths: 'eas': the path must start with /"},
    {INST "      upstream: { url: https://x, paths: { activesync: /eas/ } }\n",
     "'/eas/': the path ends with /"},
    {INST "      upstream: { url: https://x, paths: { ews: /a/../EWS } }\n",
     "'/a/../EWS': the path has a . or .. segment"},
    {INST "      upstream: { url: https://x, paths: { activsync: /a } }\n",
     "unknown key 'activsync' (did you mean 'activesync'?)"},
    {INST "      upstream: { url: https://u:p@x }\n", "credentials in the url"},
    {INST "      upstream: { url: \"https://x:99999\" }\n", "port must be a number"},
    {INST "      upstream: { url: [] }\n", "url: the list is empty"},
    {INST "      upstream: { url: https://x, verify: maybe }\n", "expected true or false"},
    {INST "      upstream: { url: https://x, pool_idle: 0 }\n", "pool_idle must be between 1s"},
    {INST UPS "      tls: { cert: a.crt }\n", "t.yaml:6:12: tls: give both cert and key"},
    {INST UPS "      client_auth: { required: true }\n", "client_auth: required: true needs a ca"},
    {INST UPS "      client_auth: { ca: x.pem }\n", "client_auth needs tls"},
    {INST UPS "      lisen: 1.2.3.4:5\n", "unknown key 'lisen' (did you mean 'listen'?)"},
    {INST UPS "      server_names: [mail.example.com:443]\n",
     "t.yaml:6:21: server_names: 'mail.example.com:443' is not a host name pattern"},
    {INST UPS "      server_names: [\"a b\"]\n", "server_names: 'a b' is not a host name"},
    {"proxy:\n  instances:\n    - name: a b\n      listen: 0.0.0.0:1\n" UPS,
     "t.yaml:3:13: name: 'a b' may hold only"},
    {"proxy:\n  instances:\n    - name: a\n      listen: 0.0.0.0:80\n" UPS
     "    - name: a\n      listen: 0.0.0.0:81\n" UPS,
     "t.yaml:6:13: instance name 'a' is used twice"},
    {"proxy:\n  instances:\n    - name: a\n      listen: 0.0.0.0:80\n" UPS
     "    - name: b\n      listen: 127.0.0.1:80\n" UPS,
     "t.yaml:7:15: listen: port 80 is already used by instance 'a'"},
    {"proxy:\n  admin_listen: 127.0.0.1:8443\n  instances:\n    - name: a\n"
     "      listen: 0.0.0.0:8443\n" UPS,
     "listen: port 8443 is the admin_listen port"},
    {"proxy:\n  timeouts: { header: 15 }\n" INSTB UPS,
     "t.yaml:2:23: header: bad duration '15': missing unit"},
    {"proxy:\n  timeouts: { header: 0s }\n" INSTB UPS, "header must be between 1s and 10m"},
    {"proxy:\n  timeouts: { upstream_conect: 1s }\n" INSTB UPS,
     "unknown key 'upstream_conect' (did you mean 'upstream_connect'?)"},
    {"proxy:\n  limits: { max_header_size: 2M }\n" INSTB UPS,
     "max_header_size must be between 1k and 1M"},
    {"proxy:\n  limits: { max_connections: lots }\n" INSTB UPS,
     "max_connections: expected a whole number, got 'lots'"},
    {"proxy:\n  timeouts: { max_connection_age: 31d }\n" INSTB UPS,
     "max_connection_age must be between 0 and 30d"},
    {"proxy:\n  limits: { max_requests_per_connection: -1 }\n" INSTB UPS,
     "max_requests_per_connection"},
    {"proxy:\n  limits: { max_heartbeat: 3h }\n" INSTB UPS,
     "max_heartbeat must be between 1s and 2h"},
    {"policy: [a]\n", "t.yaml:1:9: policy: expected the policy file's path"},
    {"policy: \"\"\n", "policy: empty path"},
    {"log: { level: verbose }\n", "level: bad value 'verbose' (allowed: error, warn, info, debug)"},
    {"log: { access: \"\" }\n", "access: empty path"},
    {"redis: { url: \"localhost:6379\" }\n", "must look like redis://"},
    {"redis: { url: \"rediss://x\" }\n", "TLS to Redis (rediss://) is not supported"},
    {"redis: { url: \"redis://user:pw@x\" }\n", "write the password as redis://:PASSWORD@"},
    {"redis: { url: \"redis://x:6379/db\" }\n", "database must be a number"},
    {"redis: { url: \"redis://x:0\" }\n", "port must be a number"},
    {"redis: { sentinel: { nodes: [\"a:1\"] } }\n", "sentinel: master"},
    {"redis: { sentinel: { master: m } }\n", "sentinel: nodes needs at least one"},
    {"redis: { sentinel: { master: m, nodes: [\"a:1\", \"b\"] } }\n",
     "t.yaml:1:48: nodes: 'b': missing :port"},
    {"redis: { max_stale: 0s }\n", "max_stale must be between 1s and 30d"},
    {"redis: { stream_maxlen: 5 }\n", "stream_maxlen must be between 100 and"},
    {"redis: { lookup_timeout: 50 }\n", "lookup_timeout: bad duration '50': missing unit"},
    {"log: {}\nlog: {}\n", "t.yaml:2:1: duplicate key 'log'"},
    {"proxy: {\n", "t.yaml:2:1: YAML syntax error"},
};

static void test_errors(void **state)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct conf *c = NULL;
        char err[512] = "";
        int rc =
            conf_load_buf("t.yaml", NULL, bad[i].text, strlen(bad[i].text), &c, err, sizeof(err));
        if (rc == 0) {
            conf_free(c);
            fail_msg("case %zu loaded; wanted '%s'", i, bad[i].want);
        }
        assert_null(c);
        assert_true(rc < 0);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: error '%s' lacks '%s'", i, err, bad[i].want);
    }
    struct conf *c;
    char err[256];
    assert_true(conf_load("/nonexistent/easgate.yaml", &c, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "cannot open"));
}

/* ---- sections other roles register ---- */

struct core_sec {
    struct units_addr listen;
    const char *database;
};

static const struct yt_key core_keys[] = {
    {.name = "listen",
     .type = YK_ADDR,
     .off = offsetof(struct core_sec, listen),
     .def = "127.0.0.1:8444"},
    {.name = "database",
     .type = YK_PATH,
     .off = offsetof(struct core_sec, database),
     .flags = YK_REQUIRED},
    {0},
};

static const struct conf_section core_section = {"core", sizeof(struct core_sec), core_keys};

static void test_sections(void **state)
{
    /* Unregistered, core: and enroll: are accepted unparsed. */
    struct conf *c = load_ok("core: { anything: 1 }\nenroll: { x: y }\n");
    assert_null(conf_section(c, "core"));
    assert_non_null(conf_section_node(c, "core"));
    conf_free(c);

    assert_int_equal(conf_register_section(&core_section), 0);
    assert_int_equal(conf_register_section(&core_section), 0); /* idempotent */
    static const struct conf_section other = {"core", 1, core_keys};
    assert_int_equal(conf_register_section(&other), -EEXIST);

    c = load_ok("core: { database: reg.db }\n");
    const struct core_sec *cs = conf_section(c, "core");
    assert_non_null(cs);
    assert_string_equal(cs->listen.text, "127.0.0.1:8444");
    assert_string_equal(cs->database, "/etc/easgate/reg.db");
    conf_free(c);

    c = load_ok("log: {}\n");
    assert_null(conf_section(c, "core"));
    conf_free(c);

    c = load_ok("core:\n  database: reg.db\nredis:\n");
    assert_non_null(conf_section(c, "core"));
    assert_true(c->redis.enabled); /* an empty section: all defaults */
    assert_int_equal(c->redis.port, 6379);
    conf_free(c);

    char err[256] = "";
    assert_true(conf_load_buf("t.yaml", NULL, "core: { databse: x }\n", 21, &c, err, sizeof(err)) <
                0);
    assert_non_null(strstr(err, "t.yaml:1:9: unknown key 'databse' (did you mean 'database'?)"));
}

/* ---- policy.yaml errors ---- */

static const struct {
    const char *text, *want;
} pol_bad[] = {
    {"unknown_device: allow\n", "p.yaml:1:1: unknown key 'unknown_device' (did you mean "
                                "'unknown_devices'?)"},
    {"user_agent: {}\n", "unknown key 'user_agent' (did you mean 'user_agents'?)"},
    {"unknown_devices: wipe\n",
     "p.yaml:1:18: unknown_devices: bad value 'wipe' (allowed: allow, block, quarantine)"},
    {"user_agents: [a]\n", "p.yaml:1:14: user_agents: expected a map"},
    {"user_agents: { allow: [\"\"] }\n", "allow: empty entry"},
    {"user_agents: { allow: [{a: 1}] }\n", "list entries must be strings"},
    {"devices: { block: [\"A B\"] }\n", "a DeviceId has no spaces"},
    {"devices: { allow: [x], block: [X] }\n", "'x' is on both the allow and the block list"},
    {"device_rules: { match: {} }\n", "device_rules: expected a list"},
    {"device_rules:\n  - action: block\n", "p.yaml:2:5: missing required key 'match'"},
    {"device_rules:\n  - match: { device_type: x }\n", "missing required key 'action'"},
    {"device_rules:\n  - { match: {}, action: block }\n",
     "p.yaml:2:14: match: give at least one of device_type"},
    {"device_rules:\n  - { match: { devicetype: x }, action: block }\n",
     "p.yaml:2:16: unknown key 'devicetype' (did you mean 'device_type'?)"},
    {"device_rules:\n  - { match: { device_type: x }, action: wipe }\n",
     "action: bad value 'wipe' (allowed: allow, block, quarantine)"},
    {"device_rules:\n  - { match: { device_type: \"\" }, action: block }\n",
     "an empty pattern matches only a missing value"},
    {"ews: { allow_subscriptions: 1 }\n", "expected true or false, got '1'"},
    {"compliance: yes\n", "expected a map of compliance rules"},
    {"provisioning: []\n", "expected a map (mode, eas_policy)"},
    {"a: 1\n  b: 2\n", "p.yaml:2:4: YAML syntax error"},
};

static void test_policy_errors(void **state)
{
    for (size_t i = 0; i < sizeof(pol_bad) / sizeof(pol_bad[0]); i++) {
        struct pol_policy *p = NULL;
        char err[512] = "";
        int rc =
            pol_load_buf("p.yaml", pol_bad[i].text, strlen(pol_bad[i].text), &p, err, sizeof(err));
        if (rc == 0) {
            pol_unref(p);
            fail_msg("case %zu loaded; wanted '%s'", i, pol_bad[i].want);
        }
        assert_null(p);
        if (!strstr(err, pol_bad[i].want))
            fail_msg("case %zu: error '%s' lacks '%s'", i, err, pol_bad[i].want);
    }
    struct pol_policy *p;
    char err[256];
    assert_true(pol_load("/nonexistent/policy.yaml", &p, err, sizeof(err)) < 0);
}

/* trusted_proxies: networks in the 16-byte form, matched by prefix. */
static void test_trusted_proxies(void **state)
{
    struct conf *c = load_ok("proxy:\n  instances:\n    - name: m\n      listen: 127.0.0.1:8443\n"
                             "      trusted_proxies: [\"10.0.0.0/8\", \"192.0.2.7\", "
                             "\"172.16.0.0/12\", \"2001:db8::/33\", \"0.0.0.0/0\"]\n"
                             "      upstream: { url: http://127.0.0.1:8080 }\n");
    const struct conf_instance *in = &c->proxy.instances[0];
    assert_int_equal(in->trusted_proxies.n, 5);
    assert_int_equal(in->server_names.n, 0); /* any name */
    const struct conf_net *v = in->trusted_proxies.v;
    uint8_t a[16];
    struct {
        const char *ip;
        int nets; /* how many of the first nets to match against */
        bool want;
    } cases[] = {
        {"10.255.1.2", 1, true},      {"11.0.0.1", 1, false},        {"192.0.2.7", 2, true},
        {"192.0.2.8", 2, false},      {"172.31.255.255", 3, true},   {"172.32.0.0", 3, false},
        {"172.15.255.255", 3, false}, {"2001:db8:7fff::1", 4, true}, {"2001:db8:8000::1", 4, false},
        {"::ffff:10.0.0.1", 1, true}, {"2001:db8::1", 3, false},     {"203.0.113.1", 5, true},
        {"2001:db9::1", 5, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(conf_ip16(cases[i].ip, strlen(cases[i].ip), a), 0);
        if (conf_net_match(v, (size_t)cases[i].nets, a) != cases[i].want)
            fail_msg("%s against the first %d networks: want %d", cases[i].ip, cases[i].nets,
                     cases[i].want);
    }
    assert_int_equal(conf_ip16("10.0.0.1x", 9, a), -1);
    assert_int_equal(conf_ip16("", 0, a), -1);
    assert_int_equal(conf_ip16("10.0.0.1\0", 9, a), -1);
    conf_free(c);
}

/* conf_redis_defaults: the table's defaults, the same as a file that names
 * no key of the section gets. */
/* upstream.url's path is the prefix of every route; upstream.paths
 * overrides one route; `easgate check` prints the effective paths. */
static void test_upstream_paths(void **state)
{
    (void)state;
    struct conf *c =
        load_ok("proxy:\n  instances:\n    - name: m\n      listen: 127.0.0.1:8443\n"
                "      upstream: { url: [\"http://a:20000/SOGo/\", http://b/SOGo] }\n");
    const struct conf_upstream *up = &c->proxy.instances[0].upstream;
    assert_string_equal(up->urls[0].path, "/SOGo");
    assert_string_equal(up->urls[1].path, "/SOGo");
    assert_string_equal(up->paths.activesync, "/SOGo/Microsoft-Server-ActiveSync");
    assert_string_equal(up->paths.autodiscover, "/SOGo/autodiscover/autodiscover.xml");
    assert_string_equal(up->paths.ews, "/SOGo/EWS");
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    conf_print(f, c);
    fclose(f);
    assert_non_null(strstr(out, "activesync: /SOGo/Microsoft-Server-ActiveSync"));
    assert_non_null(strstr(out, "ews: /SOGo/EWS"));
    free(out);
    conf_free(c);

    c = load_ok("proxy:\n  instances:\n    - name: m\n      listen: 127.0.0.1:8443\n"
                "      upstream:\n        url: https://ex.local/\n"
                "        paths: { activesync: /Kopano/as, ews: /ews-legacy }\n");
    up = &c->proxy.instances[0].upstream;
    assert_string_equal(up->urls[0].path, "");
    assert_string_equal(up->paths.activesync, "/Kopano/as");
    assert_string_equal(up->paths.autodiscover, "/autodiscover/autodiscover.xml");
    assert_string_equal(up->paths.ews, "/ews-legacy");
    conf_free(c);

    c = load_ok("proxy:\n  instances:\n    - name: m\n      listen: 127.0.0.1:8443\n"
                "      upstream: { url: https://ex.local }\n");
    up = &c->proxy.instances[0].upstream;
    assert_string_equal(up->paths.activesync, "/Microsoft-Server-ActiveSync");
    conf_free(c);
}

static void test_redis_defaults(void **state)
{
    (void)state;
    struct conf *c = load_ok("redis: {}\n");
    const struct conf_redis *d = conf_redis_defaults();
    assert_ptr_equal(d, conf_redis_defaults());
    assert_string_equal(d->host, c->redis.host);
    assert_int_equal(d->port, c->redis.port);
    assert_int_equal(d->port, 6379);
    assert_int_equal(d->db, c->redis.db);
    assert_int_equal(d->max_stale_ms, c->redis.max_stale_ms);
    assert_int_equal(d->max_stale_ms, 24LL * 3600 * 1000);
    assert_int_equal(d->lookup_timeout_ms, c->redis.lookup_timeout_ms);
    assert_int_equal(d->lookup_timeout_ms, 50);
    assert_int_equal(d->sighting_interval_ms, c->redis.sighting_interval_ms);
    assert_int_equal(d->stream_maxlen, c->redis.stream_maxlen);
    assert_int_equal(d->stream_maxlen, 100000);
    assert_null(d->sentinel.master);
    conf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),         cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),          cmocka_unit_test(test_errors),
        cmocka_unit_test(test_sections),        cmocka_unit_test(test_policy_errors),
        cmocka_unit_test(test_trusted_proxies), cmocka_unit_test(test_redis_defaults),
        cmocka_unit_test(test_upstream_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
