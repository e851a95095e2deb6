/*
 * cli_proxy_explain: `easgate proxy explain -c FILE 'QUERY' [-H 'Name: value']...`
 *
 * "Why is this phone blocked?" answered from one proxy's point of view: its
 * configuration and policy, the device's state as Redis holds it now, and
 * the request an admin pastes (the query of an access or IIS log line, with
 * the headers that matter: MS-ASProtocolVersion, User-Agent,
 * Authorization). The request goes through the proxy's own decision point
 * (proxy/decide.c), step by step (pol_explain), and ends with the decision
 * and the answer the phone would get. Nothing is reported to the core and
 * no state changes: a sighting from an explain would be a lie.
 *
 * The state comes from Redis through the proxy's own store (connectors/
 * rstore: the same parsing, the same state-invalid rules), fetched fresh:
 * a running proxy's workers may still hold an older copy for up to one
 * pub/sub delivery.
 */
#include "cli/cli.h"

#include "common/conf.h"
#include "connectors/rstore.h"
#include "eas/easq.h"
#include "eas/easr.h"
#include "proxy/decide.h"
#include "proxy/head.h"
#include "proxy/snap.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPLAIN_MAX_HEADERS 32
#define EXPLAIN_CONNECT_MS 2000
#define EXPLAIN_POLL_MS 10
#define EXPLAIN_PATH "/Microsoft-Server-ActiveSync?"

struct lookup {
    bool done;
    struct rstore_result res;
    char user[400], reason[300], bound[64];
};

static void keep(struct lookup *l, const struct rstore_result *res)
{
    l->res = *res;
    snprintf(l->user, sizeof(l->user), "%s", res->user ? res->user : "");
    snprintf(l->reason, sizeof(l->reason), "%s", res->reason ? res->reason : "");
    snprintf(l->bound, sizeof(l->bound), "%s", res->bound ? res->bound : "");
    l->res.user = l->user;
    l->res.reason = l->reason;
    l->res.bound = l->bound;
    l->done = true;
}

static void looked_up(struct rstore_wait *w, void *arg, const struct rstore_result *res)
{
    (void)w;
    keep(arg, res);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The device's state as the proxy's store reads it from Redis now; false
 * (with l->res UNAVAILABLE) when Redis did not answer. */
static bool state_of(const struct conf *c, const char *devid, struct lookup *l)
{
    memset(l, 0, sizeof(*l));
    l->res.status = RSTORE_UNAVAILABLE;
    l->res.user = l->res.reason = l->res.bound = "";
    uv_loop_t loop;
    if (uv_loop_init(&loop) < 0)
        return false;
    /* An admin waits gladly: the request path's lookup_timeout (50 ms by
     * default) would turn a slow answer into "Redis did not answer". */
    struct conf_redis rconf = c->redis;
    rconf.lookup_timeout_ms = EXPLAIN_CONNECT_MS;
    struct rstore *rs = rstore_new(&loop, &rconf);
    bool ok = false;
    if (rs) {
        for (int i = 0; i < EXPLAIN_CONNECT_MS / EXPLAIN_POLL_MS && !rstore_connected(rs); i++) {
            uv_run(&loop, UV_RUN_NOWAIT);
            sleep_ms(EXPLAIN_POLL_MS);
        }
        struct rstore_wait w;
        struct rstore_result now;
        if (rstore_connected(rs)) {
            int rc = rstore_lookup(rs, devid, strlen(devid), &now, &w, looked_up, l);
            if (rc == 0)
                keep(l, &now);
            for (int i = 0;
                 rc == RSTORE_PENDING && !l->done && i < 2 * EXPLAIN_CONNECT_MS / EXPLAIN_POLL_MS;
                 i++) {
                uv_run(&loop, UV_RUN_NOWAIT);
                sleep_ms(EXPLAIN_POLL_MS);
            }
            if (!l->done)
                rstore_cancel(&w);
            ok = l->done && l->res.status != RSTORE_UNAVAILABLE;
        }
        rstore_free(rs);
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* the close callbacks */
    uv_loop_close(&loop);
    return ok;
}

static void print_ident(const struct easq_ident *id, const char *norm)
{
    char user[2 * EASQ_STR_MAX + 2];
    easq_user_full(id, user, sizeof(user));
    printf("request:\n"
           "  command: %s\n"
           "  user: %s (credential %s)\n"
           "  device_id: %s (key %s)\n"
           "  device_type: %s\n"
           "  user_agent: %s\n"
           "  protocol_version: %d.%d%s\n",
           easq_cmd_name(id->cmd), user[0] ? user : "-", easq_cred_name(id->cred),
           id->device_id[0] ? id->device_id : "-", norm[0] ? norm : "-",
           id->device_type[0] ? id->device_type : "-", id->user_agent[0] ? id->user_agent : "-",
           id->version / 10, id->version % 10,
           id->version ? "" : " (none: the legacy HTTP answers)");
}

static void print_state(const struct conf *c, const struct lookup *l, bool asked)
{
    const struct rstore_result *r = &l->res;
    if (!c->redis.enabled) {
        puts("state: no redis: section (every device is unknown)");
        return;
    }
    if (!asked || r->status == RSTORE_UNAVAILABLE) {
        puts("state: Redis did not answer (the proxy serves its cache, then unknown_devices)");
        return;
    }
    if (r->status == RSTORE_NOT_FOUND) {
        printf("state: no easgate:dev hash: the device is unknown to the core\n");
        return;
    }
    long long age = r->updated_ms > 0 ? ((long long)time(NULL) * 1000 - r->updated_ms) / 1000 : -1;
    printf("state: %s, reason %s, bound to %s, version %llu, written %lld s ago%s\n",
           rstore_state_name(r->state), r->reason[0] ? r->reason : "-",
           r->user[0] ? r->user : "any user", (unsigned long long)r->version, age,
           r->wipe_account_only ? ", account-only wipe" : "");
}

/* The answer as the phone sees it: forwarded, or the status and, for a
 * bare status body, its Status. */
static void print_answer(const struct verdict *v)
{
    printf("decision: %s (%s)\n", v->decision ? v->decision : "-", v->reason ? v->reason : "-");
    if (v->kind == VERDICT_FORWARD) {
        puts("answer: forwarded to the mail server");
        return;
    }
    printf("answer: HTTP %d", v->status);
    const uint8_t *b = v->body;
    /* <Cmd><Status>N</Status></Cmd>: one inline string of digits. */
    for (size_t i = 0; b && v->len < 24 && i + 1 < v->len; i++) {
        if (b[i] != 0x03)
            continue;
        int st = atoi((const char *)b + i + 1);
        const char *name = easr_status_name(st);
        printf(", Status %d%s%s%s", st, name ? " (" : "", name ? name : "", name ? ")" : "");
        break;
    }
    if (b && v->len >= 24)
        printf(", %zu bytes of WBXML (the server role's own answer: the quarantine notice, "
               "Provision)",
               v->len);
    else if (!b)
        printf(", no body");
    putchar('\n');
}

static int run_explain(int argc, char **argv)
{
    const char *conf_path = NULL, *query = NULL, *hdrs[EXPLAIN_MAX_HEADERS];
    size_t nh = 0;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            conf_path = argv[++i];
        } else if (strcmp(argv[i], "-H") == 0 && i + 1 < argc) {
            if (nh == EXPLAIN_MAX_HEADERS) {
                fprintf(stderr, "easgate proxy explain: at most %d headers\n", EXPLAIN_MAX_HEADERS);
                return 2;
            }
            hdrs[nh++] = argv[++i];
        } else if (argv[i][0] != '-' && !query) {
            query = argv[i];
        } else {
            fprintf(stderr, "easgate proxy explain: unexpected argument '%s'\n", argv[i]);
            return CLI_USAGE;
        }
    }
    if (!conf_path || !query) {
        fprintf(stderr, "easgate proxy explain: give -c FILE and the request's query\n");
        return CLI_USAGE;
    }
    char err[1024];
    struct snap *snap;
    if (snap_load(conf_path, &snap, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    /* A whole target, a "?query" or the bare query. */
    const char *q = strchr(query, '?') ? strchr(query, '?') + 1 : query;
    struct head *h = head_new(HEAD_MAX_BYTES);
    int rc = h ? 0 : 1;
    if (rc == 0 &&
        (head_url(h, EXPLAIN_PATH, strlen(EXPLAIN_PATH)) < 0 || head_url(h, q, strlen(q)) < 0)) {
        fprintf(stderr, "easgate proxy explain: the query is too long\n");
        rc = 2;
    }
    for (size_t i = 0; rc == 0 && i < nh; i++) {
        const char *colon = strchr(hdrs[i], ':');
        if (!colon || colon == hdrs[i]) {
            fprintf(stderr, "easgate proxy explain: -H '%s': want 'Name: value'\n", hdrs[i]);
            rc = 2;
            break;
        }
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (head_field(h, hdrs[i], (size_t)(colon - hdrs[i])) < 0 ||
            head_value(h, v, strlen(v)) < 0) {
            fprintf(stderr, "easgate proxy explain: too many or too long headers\n");
            rc = 2;
        }
    }
    struct easq_ident *id = calloc(1, sizeof(*id));
    if (rc == 0 && !id)
        rc = 1;
    if (rc) {
        free(h);
        free(id);
        snap_unref(snap);
        return rc;
    }
    struct decide_in in = {.head = h,
                           .snap = snap,
                           .method = HTTP_POST,
                           .client = "explain",
                           .instance = "explain",
                           .conn_user = "",
                           .now_ms = (int64_t)time(NULL) * 1000};
    struct decide_req d = {.ident = id};
    struct verdict v;
    decide_eas_head(&d, &in, &v);
    if (v.kind == VERDICT_READ_BODY) {
        verdict_free(&v);
        decide_eas_body(&d, &in, &v); /* no body: what the head says */
    }
    print_ident(id, d.devid_norm);
    if (v.kind == VERDICT_LOOKUP) {
        struct lookup l;
        bool asked = snap->conf->redis.enabled && state_of(snap->conf, d.devid_norm, &l);
        if (!snap->conf->redis.enabled)
            memset(&l, 0, sizeof(l));
        print_state(snap->conf, &l, asked);
        const struct rstore_result *res = snap->conf->redis.enabled ? &l.res : NULL;
        decide_explain(stdout, &d, &in, res);
        decide_eas_state(&d, &in, res, &v);
    } else {
        puts("decided before the policy (the request itself: credential, DeviceId, certificate)");
    }
    print_answer(&v);
    verdict_free(&v);
    decide_report_drop(&d);
    free(d.logid);
    free(d.ntlm_user);
    free(d.cert_user);
    free(d.facts);
    free(id);
    free(h);
    snap_unref(snap);
    return 0;
}

const struct cli_cmd cli_proxy_explain_cmd = {
    "explain", "why a request gets its answer, from this proxy's point of view",
    "usage: easgate proxy explain -c FILE 'QUERY' [-H 'Name: value']...\n"
    "  decide the request QUERY (Cmd=...&User=...&DeviceId=...&DeviceType=..., or the\n"
    "  base64 form, or a whole /Microsoft-Server-ActiveSync?... target) with FILE's\n"
    "  policy and the device's state in Redis, and print every step: the lists and\n"
    "  rules that matched or not, the identity, the state and where it came from,\n"
    "  the decision and the answer the phone would get. -H adds a request header\n"
    "  (MS-ASProtocolVersion, User-Agent, Authorization). Nothing is reported or changed.\n",
    run_explain, NULL};
