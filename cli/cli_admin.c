/*
 * cli_admin: `easgate admin`, a command line over the admin API (libcurl).
 * Accounts and the first tokens are made without the API, by `easgate core
 * init-admin|token` (cli_auth.c).
 *
 *   easgate admin [--url URL] [--token T | --token-file F] [--cacert F] [--json]
 *                 devices list [filters] | devices show|allow|...|delete ID |
 *                 pending [list] | pending approve ID [--user U] [--allow] |
 *                 users | audit | notify [list] | checkin ID [facts] | login --user U |
 *                 token new --role R [--name L] | token revoke ID | whoami |
 *                 invite EMAIL [...] | invitations [--email E] | uninvite ID
 *
 * The last three talk to the enrollment server (--enroll-url), which holds
 * the invitations; the same bearer tokens work there.
 *
 * Tables are for people (aligned columns, times in UTC); --json prints the
 * API's answer as it came, for scripts.
 */
#include "cli/cli.h"
#include "cli/cli_import.h"

#include "common/b64.h"
#include "common/ytree.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_DEFAULT_URL "https://127.0.0.1:8443"
#define ADMIN_TIMEOUT_S 30L
#define ADMIN_RESP_MAX (64L << 20)
#define PW_MAX 1100

/* ---- HTTP ------------------------------------------------------------------------ */

struct client {
    const char *url, *token, *cacert;
    bool json;
};

struct rbuf {
    char *p;
    size_t n;
};

static size_t on_data(char *d, size_t sz, size_t nm, void *arg)
{
    struct rbuf *b = arg;
    size_t n = sz * nm;
    if (b->n + n > (size_t)ADMIN_RESP_MAX)
        return 0;
    char *np = realloc(b->p, b->n + n + 1);
    if (!np)
        return 0;
    memcpy(np + b->n, d, n);
    b->p = np;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/*
 * The one handle of the command's calls: libcurl keeps its connection (and
 * the TLS session, and the CA file it read) from one call to the next, so
 * an import's few hundred batches pay for one handshake instead of one
 * each. Used by one thread at a time; freed by admin_close.
 */
static CURL *conn;

/*
 * One request: the answer's body (raw, malloc'd, NUL-terminated) and
 * status. The body is body's JSON, or else the len bytes of text (NULL:
 * none). 0, or 1 when no answer came (printed).
 */
static int request_text(const struct client *cl, const char *method, const char *path, json_t *body,
                        const char *text, size_t len, char **raw, long *status)
{
    *raw = NULL;
    *status = 0;
    if (conn)
        curl_easy_reset(conn);
    else if (!(conn = curl_easy_init())) {
        fprintf(stderr, "easgate admin: cannot start libcurl\n");
        return 1;
    }
    CURL *h = conn;
    char url[4096];
    size_t ul = strlen(cl->url);
    snprintf(url, sizeof(url), "%.*s%s", (int)(ul && cl->url[ul - 1] == '/' ? ul - 1 : ul), cl->url,
             path);
    struct curl_slist *hd = NULL;
    char auth[256];
    if (cl->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cl->token);
        hd = curl_slist_append(hd, auth);
    }
    char *payload = NULL;
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        hd = curl_slist_append(hd, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload ? payload : "{}");
    } else if (text) {
        hd = curl_slist_append(hd, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
    }
    struct rbuf rb = {NULL, 0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &rb);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, ADMIN_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (cl->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, cl->cacert);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hd);
    free(payload);
    if (cc != CURLE_OK) {
        fprintf(stderr, "easgate admin: %s: %s\n", url, curl_easy_strerror(cc));
        free(rb.p);
        return 1;
    }
    *raw = rb.p;
    return 0;
}

static int request(const struct client *cl, const char *method, const char *path, json_t *body,
                   char **raw, long *status)
{
    return request_text(cl, method, path, body, NULL, 0, raw, status);
}

/*
 * One call. On success (2xx) *out is the parsed answer and 0 is returned;
 * otherwise the error is printed and 1 is returned. With --json the answer
 * is printed as it came and *out is still set.
 */
static int call(const struct client *cl, const char *method, const char *path, json_t *body,
                json_t **out)
{
    *out = NULL;
    char *raw;
    long status;
    if (request(cl, method, path, body, &raw, &status))
        return 1;
    int rc = 0;
    json_error_t e;
    json_t *j = raw ? json_loads(raw, 0, &e) : NULL;
    if (cl->json && raw)
        fputs(raw, stdout);
    if (status >= 200 && status < 300 && j) {
        *out = j;
    } else {
        const char *msg = json_string_value(json_object_get(j, "error"));
        fprintf(stderr, "easgate admin: %s (HTTP %ld)\n",
                msg ? msg : "the server's answer is not the API's JSON", status);
        json_decref(j);
        rc = 1;
    }
    free(raw);
    return rc;
}

int cli_admin_request(const struct cli_admin_client *c, const char *method, const char *path,
                      json_t *body, json_t **out, long *status)
{
    return cli_admin_request_text(c, method, path, body, NULL, 0, out, status);
}

int cli_admin_request_text(const struct cli_admin_client *c, const char *method, const char *path,
                           json_t *body, const char *text, size_t len, json_t **out, long *status)
{
    const struct client cl = {.url = c->url, .token = c->token, .cacert = c->cacert};
    char *raw;
    *out = NULL;
    if (request_text(&cl, method, path, body, text, len, &raw, status))
        return 1;
    json_error_t e;
    *out = raw ? json_loads(raw, 0, &e) : NULL;
    free(raw);
    return 0;
}

/* ---- tables ------------------------------------------------------------------------ */

#define COLS_MAX 10

struct table {
    const char *head[COLS_MAX];
    int ncols;
    char **cells; /* rows * ncols, malloc'd strings */
    size_t rows, cap;
};

static void t_add(struct table *t, const char *const *vals)
{
    if (t->rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = realloc(t->cells, t->cap * (size_t)t->ncols * sizeof(char *));
        if (!t->cells)
            abort(); /* a CLI out of memory for a table: nothing sensible left */
    }
    for (int i = 0; i < t->ncols; i++)
        t->cells[t->rows * (size_t)t->ncols + (size_t)i] = strdup(vals[i] ? vals[i] : "");
    t->rows++;
}

static void t_print(struct table *t)
{
    size_t w[COLS_MAX];
    for (int i = 0; i < t->ncols; i++) {
        w[i] = strlen(t->head[i]);
        for (size_t r = 0; r < t->rows; r++) {
            size_t l = strlen(t->cells[r * (size_t)t->ncols + (size_t)i]);
            if (l > w[i])
                w[i] = l;
        }
    }
    for (int i = 0; i < t->ncols; i++)
        printf("%-*s%s", i + 1 < t->ncols ? (int)w[i] : 0, t->head[i],
               i + 1 < t->ncols ? "  " : "\n");
    for (size_t r = 0; r < t->rows; r++)
        for (int i = 0; i < t->ncols; i++)
            printf("%-*s%s", i + 1 < t->ncols ? (int)w[i] : 0,
                   t->cells[r * (size_t)t->ncols + (size_t)i], i + 1 < t->ncols ? "  " : "\n");
    for (size_t k = 0; k < t->rows * (size_t)t->ncols; k++)
        free(t->cells[k]);
    free(t->cells);
}

/* ms since the epoch as "2026-11-22 03:18:03" UTC; "-" for 0. */
static const char *when(json_t *v, char *b, size_t n)
{
    json_int_t ms = json_integer_value(v);
    if (ms <= 0)
        return "-";
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(b, n, "%Y-%m-%d %H:%M:%S", &tm);
    return b;
}

static const char *js(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static const char *jtri(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_true(v) ? "yes" : json_is_false(v) ? "no" : "unknown";
}

static void print_devices(json_t *arr)
{
    struct table t = {.head = {"DEVICE", "USER", "TYPE", "STATE", "REASON", "MANAGED", "LAST SEEN"},
                      .ncols = 7};
    size_t i;
    json_t *d;
    json_array_foreach(arr, i, d)
    {
        char b[32];
        const char *v[] = {js(d, "device_id"),
                           js(d, "user"),
                           js(d, "device_type"),
                           js(d, "state"),
                           js(d, "reason"),
                           json_is_true(json_object_get(d, "managed")) ? "managed" : "unmanaged",
                           when(json_object_get(d, "last_seen"), b, sizeof(b))};
        t_add(&t, v);
    }
    t_print(&t);
}

static void print_device(json_t *d)
{
    static const char *const str[] = {
        "device_id", "user",          "device_type",  "model",
        "os",        "os_version",    "eas_os",       "eas_os_version",
        "imei",      "friendly_name", "phone_number", "user_agent",
        "state",     "reason",        "override",     "agent_version",
        "wipe_kind", "eas_version",   "last_client",  "cert_enrollment",
        NULL};
    for (int i = 0; str[i]; i++)
        printf("%-20s %s\n", str[i], js(d, str[i]));
    printf("%-20s %s\n", "managed", json_is_true(json_object_get(d, "managed")) ? "yes" : "no");
    printf("%-20s %s\n", "passcode", jtri(d, "passcode"));
    printf("%-20s %s\n", "encrypted", jtri(d, "encrypted"));
    printf("%-20s %s\n", "jailbroken", jtri(d, "jailbroken"));
    printf("%-20s %lld\n", "version", (long long)json_integer_value(json_object_get(d, "version")));
    printf("%-20s %lld\n", "pk_epoch",
           (long long)json_integer_value(json_object_get(d, "pk_epoch")));
    json_int_t pk = json_integer_value(json_object_get(d, "policy_key"));
    if (pk)
        printf("%-20s %lld\n", "policy_key", (long long)pk);
    else
        printf("%-20s -\n", "policy_key");
    static const char *const times[] = {
        "first_seen",          "last_seen",  "last_checkin", "updated",
        "non_compliant_since", "wipe_acked", "provisioned",  NULL};
    for (int i = 0; times[i]; i++) {
        char b[32];
        printf("%-20s %s\n", times[i], when(json_object_get(d, times[i]), b, sizeof(b)));
    }
}

/* ---- commands ------------------------------------------------------------------------ */

struct aopts {
    const char *user, *state, *type, *managed, *after, *before, *note, *role, *name;
    const char *compliance, *target; /* list filters */
    const char *format, *output;     /* import, export */
    bool dry_run, create_users;      /* import */
    long batch;                      /* import */
    const char *os, *os_version, *passcode, *encrypted, *jailbroken, *agent_version;
    long limit;
    bool account_only;            /* devices wipe: {"kind":"account"} */
    bool allow;                   /* pending approve: {"allow":true} */
    const char *ua, *eas_version; /* devices explain: the hypothetical request */
    /* invite / invitations */
    const char *enroll_url, *email, *expires, *qr;
    long max_uses;
};

/* Append &key=value (escaped) to q when value is set. */
static void qadd(char *q, size_t n, const char *key, const char *val)
{
    if (!val)
        return;
    char *e = curl_easy_escape(NULL, val, 0);
    size_t l = strlen(q);
    snprintf(q + l, n - l, "%s%s=%s", l ? "&" : "?", key, e ? e : "");
    curl_free(e);
}

static void print_next(json_t *j, const char *flag)
{
    json_t *nx = json_object_get(j, "next");
    if (json_is_string(nx))
        fprintf(stderr, "more: %s %s\n", flag, json_string_value(nx));
    else if (json_is_integer(nx))
        fprintf(stderr, "more: %s %lld\n", flag, (long long)json_integer_value(nx));
}

static int tri_arg(const char *s, json_t **out)
{
    if (!s) {
        *out = NULL;
        return 0;
    }
    if (!strcmp(s, "yes") || !strcmp(s, "true"))
        *out = json_true();
    else if (!strcmp(s, "no") || !strcmp(s, "false"))
        *out = json_false();
    else
        return -1;
    return 0;
}

/* Export to --output (or stdout). q: "?a=b&..." or "". */
static int export_to(const struct cli_admin_client *ac, const char *what, const char *q,
                     const struct aopts *o)
{
    FILE *out = o->output ? fopen(o->output, "w") : stdout;
    if (!out) {
        fprintf(stderr, "easgate admin: %s: %s\n", o->output, strerror(errno));
        return 1;
    }
    int rc = cli_export(ac, what, q[0] == '?' ? q + 1 : q, o->format, out);
    if (o->output && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "easgate admin: %s: %s\n", o->output, strerror(errno));
        rc = 1;
    }
    return rc;
}

/*
 * A page of devices. The API bounds the work of every page, so with filters
 * that are rare together a page may come back short (even empty) with a
 * cursor: fetch on until --limit devices are in hand or the list ends, then
 * print them together.
 */
#define LIST_MAX_CALLS 100
static int list_devices(const struct client *cl, const struct aopts *o, const char *filters)
{
    long want = o->limit > 0 ? o->limit : 100;
    json_t *all = json_array(), *j = NULL;
    char after[256] = "";
    bool more = false;
    if (o->after)
        snprintf(after, sizeof(after), "%s", o->after);
    for (int calls = 0; calls < LIST_MAX_CALLS && (long)json_array_size(all) < want; calls++) {
        char path[2048], q[1800], lim[24];
        snprintf(q, sizeof(q), "%s", filters);
        snprintf(lim, sizeof(lim), "%ld", want - (long)json_array_size(all));
        qadd(q, sizeof(q), "after", after[0] ? after : NULL);
        qadd(q, sizeof(q), "limit", lim);
        snprintf(path, sizeof(path), "/api/v1/devices%s", q);
        if (call(cl, "GET", path, NULL, &j)) {
            json_decref(all);
            return 1;
        }
        json_array_extend(all, json_object_get(j, "devices"));
        json_t *nx = json_object_get(j, "next");
        more = json_is_string(nx);
        if (more)
            snprintf(after, sizeof(after), "%s", json_string_value(nx));
        json_decref(j);
        if (!more || cl->json)
            break; /* --json: the API's own pages, for scripts */
    }
    if (!cl->json) {
        print_devices(all);
        if (more)
            fprintf(stderr, "more: --after %s\n", after);
    }
    json_decref(all);
    return 0;
}

/* GET .../explain for a person: the sections in the order the decision
 * takes them (core/explain.h). */
static void print_explain(json_t *j)
{
    printf("device %s: %s\n", js(j, "device_id"),
           json_is_true(json_object_get(j, "known")) ? "in the registry"
                                                     : "unknown (not in the registry or Redis)");
    json_t *st = json_object_get(j, "state");
    if (json_is_object(st))
        printf("state: %s (%s, from the %s), version %lld\n", js(st, "state"), js(st, "reason"),
               js(st, "source"), (long long)json_integer_value(json_object_get(st, "version")));
    json_t *r = json_object_get(j, "registry");
    if (json_is_object(r)) {
        json_t *cf = json_object_get(r, "checkin_facts");
        char seen[32] = "never", checkin[32] = "never";
        json_t *sa = json_object_get(r, "last_seen_age_s"),
               *ca = json_object_get(r, "last_checkin_age_s");
        if (json_is_integer(sa))
            snprintf(seen, sizeof(seen), "%lld s ago", (long long)json_integer_value(sa));
        if (json_is_integer(ca))
            snprintf(checkin, sizeof(checkin), "%lld s ago", (long long)json_integer_value(ca));
        printf("registry: user %s, %s, override %s\n"
               "  type %s, model %s, os %s %s, user agent %s, EAS %s\n"
               "  last seen %s from %s, last check-in %s; passcode %s, encrypted %s, "
               "jailbroken %s\n",
               js(r, "user")[0] ? js(r, "user") : "-",
               json_is_true(json_object_get(r, "managed")) ? "managed" : "unmanaged",
               js(r, "override"), js(r, "device_type"), js(r, "model"), js(r, "os"),
               js(r, "os_version"), js(r, "user_agent"), js(r, "eas_version"), seen,
               js(r, "last_client")[0] ? js(r, "last_client") : "-", checkin, js(cf, "passcode"),
               js(cf, "encrypted"), js(cf, "jailbroken"));
    }
    size_t i;
    json_t *e;
    json_t *c = json_object_get(j, "compliance");
    if (json_array_size(c))
        puts("compliance:");
    json_array_foreach(c, i, e)
    {
        printf("  %-22s %s%s%s\n", js(e, "rule"), js(e, "result"), js(e, "reason")[0] ? ": " : "",
               js(e, "reason"));
    }
    json_t *cv = json_object_get(j, "core_verdict");
    if (json_is_object(cv))
        printf("core verdict now: %s (%s)%s\n", js(cv, "state"), js(cv, "reason"),
               json_is_true(json_object_get(cv, "in_grace")) ? ", in grace" : "");
    json_t *rq = json_object_get(j, "request");
    printf("request: user %s, type %s, user agent %s, EAS %s\n", js(rq, "user"),
           js(rq, "device_type"), js(rq, "user_agent"), js(rq, "version"));
    json_array_foreach(json_object_get(j, "policy"), i, e)
    {
        printf("  %s\n", json_string_value(e));
    }
    json_t *d = json_object_get(j, "decision");
    printf("decision: %s (%s)\nanswer: %s\n", js(d, "action"), js(d, "reason"), js(d, "answer"));
}

static int cmd_devices(const struct client *cl, const struct aopts *o, int n, char **args)
{
    char path[2048], q[1536] = "";
    json_t *j = NULL;
    const struct cli_admin_client ac = {.url = cl->url, .token = cl->token, .cacert = cl->cacert};
    if ((n == 1 && strcmp(args[0], "list") == 0) || (n == 1 && strcmp(args[0], "export") == 0)) {
        qadd(q, sizeof(q), "user", o->user);
        qadd(q, sizeof(q), "state", o->state);
        qadd(q, sizeof(q), "type", o->type);
        qadd(q, sizeof(q), "os", o->os);
        qadd(q, sizeof(q), "managed", o->managed);
        qadd(q, sizeof(q), "compliance", o->compliance);
        if (strcmp(args[0], "export") == 0)
            return export_to(&ac, "devices", q, o);
        return list_devices(cl, o, q);
    }
    if (n == 2 && strcmp(args[0], "import") == 0) {
        struct cli_import_opts io = {.format = o->format,
                                     .dry_run = o->dry_run,
                                     .create_users = o->create_users,
                                     .batch = o->batch};
        return cli_import(&ac, "devices", args[1], &io);
    }
    if (n != 2) {
        fprintf(stderr, "easgate admin devices: give list, or an action and one DeviceId\n");
        return CLI_USAGE;
    }
    char *id = curl_easy_escape(NULL, args[1], 0);
    int rc;
    if (strcmp(args[0], "explain") == 0) {
        qadd(q, sizeof(q), "user", o->user);
        qadd(q, sizeof(q), "ua", o->ua);
        qadd(q, sizeof(q), "type", o->type);
        qadd(q, sizeof(q), "version", o->eas_version);
        snprintf(path, sizeof(path), "/api/v1/devices/%s/explain%s", id, q);
        rc = call(cl, "GET", path, NULL, &j);
        if (!rc && !cl->json)
            print_explain(j);
    } else if (strcmp(args[0], "show") == 0) {
        snprintf(path, sizeof(path), "/api/v1/devices/%s", id);
        rc = call(cl, "GET", path, NULL, &j);
        if (!rc && !cl->json) {
            print_device(json_object_get(j, "device"));
            json_t *h = json_object_get(j, "history");
            if (json_array_size(h)) {
                printf("\nhistory:\n");
                struct table t = {.head = {"WHEN", "ACTION", "BY", "NOTE"}, .ncols = 4};
                size_t i;
                json_t *e;
                json_array_foreach(h, i, e)
                {
                    char b[32];
                    const char *v[] = {when(json_object_get(e, "at"), b, sizeof(b)),
                                       js(e, "action"), js(e, "actor"), js(e, "note")};
                    t_add(&t, v);
                }
                t_print(&t);
            }
        }
    } else if (o->account_only && strcmp(args[0], "wipe") != 0) {
        fprintf(stderr, "easgate admin devices: --account-only goes with wipe only\n");
        rc = 2;
    } else {
        snprintf(path, sizeof(path), "/api/v1/devices/%s/%s", id, args[0]);
        json_t *body = json_object();
        if (o->account_only)
            json_object_set_new(body, "kind", json_string("account"));
        if (o->note)
            json_object_set_new(body, "note", json_string(o->note));
        if (o->user)
            json_object_set_new(body, "user", json_string(o->user));
        rc = call(cl, "POST", path, body, &j);
        json_decref(body);
        if (!rc && !cl->json) {
            json_t *d = json_object_get(j, "device");
            bool pushed = json_is_true(json_object_get(j, "pushed"));
            if (d)
                printf("%s: %s (%s), version %lld%s\n", js(d, "device_id"), js(d, "state"),
                       js(d, "reason"),
                       (long long)json_integer_value(json_object_get(d, "version")),
                       pushed ? "" : "; Redis not reached yet, it will be pushed later");
            else
                printf("%s: deleted\n", js(j, "deleted"));
        }
    }
    curl_free(id);
    json_decref(j);
    return rc;
}

static int cmd_users(const struct client *cl, const struct aopts *o, int n, char **args)
{
    if (n == 2 && strcmp(args[0], "import") == 0) {
        const struct cli_admin_client ac = {
            .url = cl->url, .token = cl->token, .cacert = cl->cacert};
        struct cli_import_opts io = {.format = o->format, .dry_run = o->dry_run, .batch = o->batch};
        return cli_import(&ac, "users", args[1], &io);
    }
    if (n) {
        fprintf(stderr, "easgate admin users: no words but 'import FILE'\n");
        return CLI_USAGE;
    }
    char path[1024], q[768] = "", lim[24];
    snprintf(lim, sizeof(lim), "%ld", o->limit);
    qadd(q, sizeof(q), "after", o->after);
    qadd(q, sizeof(q), "limit", o->limit > 0 ? lim : NULL);
    snprintf(path, sizeof(path), "/api/v1/users%s", q);
    json_t *j;
    if (call(cl, "GET", path, NULL, &j))
        return 1;
    if (!cl->json) {
        struct table t = {.head = {"USER", "DEVICES", "CREATED"}, .ncols = 3};
        size_t i;
        json_t *u;
        json_array_foreach(json_object_get(j, "users"), i, u)
        {
            char b[32], nd[24];
            snprintf(nd, sizeof(nd), "%lld",
                     (long long)json_integer_value(json_object_get(u, "devices")));
            const char *v[] = {js(u, "name"), nd,
                               when(json_object_get(u, "created"), b, sizeof(b))};
            t_add(&t, v);
        }
        t_print(&t);
        print_next(j, "--after");
    }
    json_decref(j);
    return 0;
}

static int cmd_audit(const struct client *cl, const struct aopts *o, int n, char **args)
{
    char path[1024], q[768] = "", lim[24];
    qadd(q, sizeof(q), "target", o->target);
    if (n == 1 && strcmp(args[0], "export") == 0) {
        const struct cli_admin_client ac = {
            .url = cl->url, .token = cl->token, .cacert = cl->cacert};
        return export_to(&ac, "audit", q, o);
    }
    if (n) {
        fprintf(stderr, "easgate admin audit: no words but 'export'\n");
        return CLI_USAGE;
    }
    snprintf(lim, sizeof(lim), "%ld", o->limit);
    qadd(q, sizeof(q), "before", o->before);
    qadd(q, sizeof(q), "limit", o->limit > 0 ? lim : NULL);
    snprintf(path, sizeof(path), "/api/v1/audit%s", q);
    json_t *j;
    if (call(cl, "GET", path, NULL, &j))
        return 1;
    if (!cl->json) {
        struct table t = {.head = {"ID", "WHEN", "WHO", "FROM", "ACTION", "TARGET", "DETAIL"},
                          .ncols = 7};
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(j, "audit"), i, e)
        {
            char b[32], id[24];
            snprintf(id, sizeof(id), "%lld",
                     (long long)json_integer_value(json_object_get(e, "id")));
            const char *v[] = {id,
                               when(json_object_get(e, "at"), b, sizeof(b)),
                               js(e, "actor"),
                               js(e, "address"),
                               js(e, "action"),
                               js(e, "target"),
                               js(e, "detail")};
            t_add(&t, v);
        }
        t_print(&t);
        print_next(j, "--before");
    }
    json_decref(j);
    return 0;
}

/* The notification queue (docs/notifications.md section 4), newest first:
 * what waits, what was sent, what was given up on and why. */
static int cmd_notify(const struct client *cl, const struct aopts *o, int n, char **args)
{
    if (n > 1 || (n == 1 && strcmp(args[0], "list") != 0)) {
        fprintf(stderr, "easgate admin notify: list [--state queued|sent|failed] [--limit N] "
                        "[--before ID]\n");
        return CLI_USAGE;
    }
    char path[1024], q[768] = "", lim[24];
    snprintf(lim, sizeof(lim), "%ld", o->limit);
    qadd(q, sizeof(q), "state", o->state);
    qadd(q, sizeof(q), "before", o->before);
    qadd(q, sizeof(q), "limit", o->limit > 0 ? lim : NULL);
    snprintf(path, sizeof(path), "/api/v1/notifications%s", q);
    json_t *j;
    if (call(cl, "GET", path, NULL, &j))
        return 1;
    if (!cl->json) {
        struct table t = {.head = {"ID", "CHANNEL", "TO", "EVENT", "STATE", "TRY", "QUEUED",
                                   "NEXT/DONE", "LAST ERROR"},
                          .ncols = 9};
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(j, "notifications"), i, e)
        {
            char b1[32], b2[32], id[24], tries[16];
            snprintf(id, sizeof(id), "%lld",
                     (long long)json_integer_value(json_object_get(e, "id")));
            snprintf(tries, sizeof(tries), "%lld",
                     (long long)json_integer_value(json_object_get(e, "attempts")));
            bool queued = strcmp(js(e, "state"), "queued") == 0;
            const char *v[] = {id,
                               js(e, "channel"),
                               js(e, "to"),
                               js(e, "event"),
                               js(e, "state"),
                               tries,
                               when(json_object_get(e, "queued"), b1, sizeof(b1)),
                               when(json_object_get(e, queued ? "next" : "done"), b2, sizeof(b2)),
                               js(e, "last_error")};
            t_add(&t, v);
        }
        t_print(&t);
        json_t *cn = json_object_get(j, "counts");
        fprintf(stderr, "queue: %lld queued, %lld sent, %lld failed\n",
                (long long)json_integer_value(json_object_get(cn, "queued")),
                (long long)json_integer_value(json_object_get(cn, "sent")),
                (long long)json_integer_value(json_object_get(cn, "failed")));
        print_next(j, "--before");
    }
    json_decref(j);
    return 0;
}

/* Devices seen but never accepted (the proxy turned them away): list them,
 * or approve one, which registers it (docs/core.md section 5). */
static int cmd_pending(const struct client *cl, const struct aopts *o, int n, char **args)
{
    json_t *j = NULL;
    int rc;
    if (n == 0 || (n == 1 && strcmp(args[0], "list") == 0)) {
        char path[1024], q[768] = "", lim[24];
        snprintf(lim, sizeof(lim), "%ld", o->limit);
        qadd(q, sizeof(q), "after", o->after);
        qadd(q, sizeof(q), "limit", o->limit > 0 ? lim : NULL);
        snprintf(path, sizeof(path), "/api/v1/pending%s", q);
        if (call(cl, "GET", path, NULL, &j))
            return 1;
        if (!cl->json) {
            struct table t = {.head = {"DEVICE", "CLAIMED USER", "TYPE", "FROM", "FIRST SEEN",
                                       "LAST SEEN", "SEEN"},
                              .ncols = 7};
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(j, "pending"), i, v)
            {
                char b1[32], b2[32], cnt[24];
                snprintf(cnt, sizeof(cnt), "%lld",
                         (long long)json_integer_value(json_object_get(v, "count")));
                const char *row[] = {js(v, "device_id"),
                                     js(v, "user"),
                                     js(v, "device_type"),
                                     js(v, "client_addr"),
                                     when(json_object_get(v, "first_seen"), b1, sizeof(b1)),
                                     when(json_object_get(v, "last_seen"), b2, sizeof(b2)),
                                     cnt};
                t_add(&t, row);
            }
            t_print(&t);
            print_next(j, "--after");
        }
        rc = 0;
    } else if (n == 2 && strcmp(args[0], "approve") == 0) {
        char path[256];
        char *e = curl_easy_escape(NULL, args[1], 0);
        snprintf(path, sizeof(path), "/api/v1/pending/%s/approve", e ? e : "");
        curl_free(e);
        json_t *b = json_object();
        if (o->user)
            json_object_set_new(b, "user", json_string(o->user));
        if (o->allow)
            json_object_set_new(b, "allow", json_true());
        if (o->note)
            json_object_set_new(b, "note", json_string(o->note));
        rc = call(cl, "POST", path, b, &j);
        json_decref(b);
        if (!rc && !cl->json)
            printf("%s: approved, registered: %s (%s), user %s\n", js(j, "device_id"),
                   js(j, "state"), js(j, "reason"), *js(j, "user") ? js(j, "user") : "(none)");
    } else {
        fprintf(stderr, "easgate admin pending: list [--limit N] [--after ID] | approve ID "
                        "[--user U] [--allow [--note TEXT]]\n");
        return CLI_USAGE;
    }
    json_decref(j);
    return rc;
}

static int cmd_checkin(const struct client *cl, const struct aopts *o, int n, char **args)
{
    if (n != 1) {
        fprintf(stderr, "easgate admin checkin: give one DeviceId\n");
        return 2;
    }
    json_t *pc, *en, *jb;
    if (tri_arg(o->passcode, &pc) < 0 || tri_arg(o->encrypted, &en) < 0 ||
        tri_arg(o->jailbroken, &jb) < 0) {
        fprintf(stderr,
                "easgate admin checkin: --passcode/--encrypted/--jailbroken take yes or no\n");
        return 2;
    }
    json_t *b = json_pack("{s:s}", "device_id", args[0]);
    if (o->os)
        json_object_set_new(b, "os", json_string(o->os));
    if (o->os_version)
        json_object_set_new(b, "os_version", json_string(o->os_version));
    if (o->agent_version)
        json_object_set_new(b, "agent_version", json_string(o->agent_version));
    if (pc)
        json_object_set_new(b, "passcode", pc);
    if (en)
        json_object_set_new(b, "encrypted", en);
    if (jb)
        json_object_set_new(b, "jailbroken", jb);
    json_t *j;
    int rc = call(cl, "POST", "/api/v1/checkin", b, &j);
    json_decref(b);
    if (!rc && !cl->json)
        printf("%s: %s (%s), version %lld\n", js(j, "device_id"), js(j, "state"), js(j, "reason"),
               (long long)json_integer_value(json_object_get(j, "version")));
    json_decref(j);
    return rc;
}

static int cmd_login(const struct client *cl, const struct aopts *o)
{
    if (!o->user) {
        fprintf(stderr, "easgate admin login: --user NAME is required\n");
        return CLI_USAGE;
    }
    char pw[PW_MAX];
    if (cli_read_password("password: ", pw, sizeof(pw)) < 0) {
        fprintf(stderr, "easgate admin login: no password given\n");
        return 1;
    }
    json_t *b = json_pack("{s:s,s:s}", "user", o->user, "password", pw);
    memset(pw, 0, sizeof(pw));
    json_t *j;
    int rc = call(cl, "POST", "/api/v1/login", b, &j);
    json_decref(b);
    if (!rc && !cl->json)
        printf("%s\n", js(j, "token"));
    json_decref(j);
    return rc;
}

static int cmd_token(const struct client *cl, const struct aopts *o, int n, char **args)
{
    json_t *j;
    int rc;
    if (n == 1 && strcmp(args[0], "new") == 0) {
        if (!o->role) {
            fprintf(stderr, "easgate admin token new: --role admin|viewer|device is required\n");
            return CLI_USAGE;
        }
        json_t *b = json_pack("{s:s}", "role", o->role);
        if (o->name)
            json_object_set_new(b, "name", json_string(o->name));
        rc = call(cl, "POST", "/api/v1/tokens", b, &j);
        json_decref(b);
        if (!rc && !cl->json) {
            printf("%s\n", js(j, "token"));
            fprintf(stderr, "token %lld (%s); it is shown only this once\n",
                    (long long)json_integer_value(json_object_get(j, "id")), js(j, "role"));
        }
    } else if (n == 2 && strcmp(args[0], "revoke") == 0) {
        char path[256];
        char *e = curl_easy_escape(NULL, args[1], 0);
        snprintf(path, sizeof(path), "/api/v1/tokens/%s", e);
        curl_free(e);
        rc = call(cl, "DELETE", path, NULL, &j);
        if (!rc && !cl->json)
            printf("token %s revoked\n", args[1]);
    } else if (n == 1 && strcmp(args[0], "list") == 0) {
        char path[512] = "/api/v1/tokens", q[400] = "";
        qadd(q, sizeof(q), "account", o->user);
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s", q);
        rc = call(cl, "GET", path, NULL, &j);
        if (!rc && !cl->json) {
            struct table t = {
                .head = {"ID", "ACCOUNT", "ROLE", "NAME", "CREATED", "LAST USED", "STATE"},
                .ncols = 7};
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(j, "tokens"), i, v)
            {
                char id[24], b1[32], b2[32];
                snprintf(id, sizeof(id), "%lld",
                         (long long)json_integer_value(json_object_get(v, "id")));
                const char *row[] = {id,
                                     js(v, "account"),
                                     js(v, "role"),
                                     js(v, "name"),
                                     when(json_object_get(v, "created"), b1, sizeof(b1)),
                                     when(json_object_get(v, "last_used"), b2, sizeof(b2)),
                                     json_is_true(json_object_get(v, "revoked")) ? "revoked"
                                                                                 : "active"};
                t_add(&t, row);
            }
            t_print(&t);
        }
    } else {
        fprintf(stderr, "easgate admin token: new --role R [--name L] | revoke ID | list "
                        "[--user ACCOUNT]\n");
        return CLI_USAGE;
    }
    json_decref(j);
    return rc;
}

/* ---- admin accounts ------------------------------------------------------------------- */

/* A new password from stdin, twice on a terminal. 0, or 1 with the error printed. */
static int new_password(const char *what, char *pw, size_t n)
{
    char again[PW_MAX];
    if (cli_read_password("new password: ", pw, n) < 0 || !pw[0]) {
        fprintf(stderr, "easgate admin %s: no password given\n", what);
        return 1;
    }
    if (isatty(STDIN_FILENO) &&
        (cli_read_password("again: ", again, sizeof(again)) < 0 || strcmp(pw, again) != 0)) {
        fprintf(stderr, "easgate admin %s: the passwords differ\n", what);
        return 1;
    }
    return 0;
}

static int cmd_admins(const struct client *cl, const struct aopts *o, int n, char **args)
{
    json_t *j = NULL;
    int rc;
    char path[512];
    const char *verb = n ? args[0] : "";
    char *name = n == 2 ? curl_easy_escape(NULL, args[1], 0) : NULL;
    if (n == 1 && strcmp(verb, "list") == 0) {
        rc = call(cl, "GET", "/api/v1/admins", NULL, &j);
        if (!rc && !cl->json) {
            struct table t = {.head = {"NAME", "ROLE", "CREATED", "STATE"}, .ncols = 4};
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(j, "admins"), i, v)
            {
                char b[32];
                const char *row[] = {
                    js(v, "name"), js(v, "role"), when(json_object_get(v, "created"), b, sizeof(b)),
                    json_is_true(json_object_get(v, "disabled")) ? "disabled" : "enabled"};
                t_add(&t, row);
            }
            t_print(&t);
        }
    } else if (n == 2 && strcmp(verb, "create") == 0) {
        char pw[PW_MAX];
        if (new_password("admins create", pw, sizeof(pw))) {
            curl_free(name);
            return 1;
        }
        json_t *b = json_pack("{s:s,s:s,s:s}", "name", args[1], "role", o->role ? o->role : "admin",
                              "password", pw);
        memset(pw, 0, sizeof(pw));
        rc = call(cl, "POST", "/api/v1/admins", b, &j);
        json_decref(b);
        if (!rc && !cl->json)
            printf("account '%s' created with role %s\n", js(j, "name"), js(j, "role"));
    } else if (n == 2 && (strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0)) {
        snprintf(path, sizeof(path), "/api/v1/admins/%s/%s", name, verb);
        json_t *b = json_object();
        rc = call(cl, "POST", path, b, &j);
        json_decref(b);
        if (!rc && !cl->json)
            printf("account '%s' %sd\n", args[1], verb);
    } else if (n == 2 && strcmp(verb, "delete") == 0) {
        snprintf(path, sizeof(path), "/api/v1/admins/%s", name);
        rc = call(cl, "DELETE", path, NULL, &j);
        if (!rc && !cl->json)
            printf("account '%s' deleted; its sessions ended and its tokens revoked\n", args[1]);
    } else if (n == 2 && strcmp(verb, "reset-password") == 0) {
        char pw[PW_MAX];
        if (new_password("admins reset-password", pw, sizeof(pw))) {
            curl_free(name);
            return 1;
        }
        snprintf(path, sizeof(path), "/api/v1/admins/%s/password", name);
        json_t *b = json_pack("{s:s}", "password", pw);
        memset(pw, 0, sizeof(pw));
        rc = call(cl, "POST", path, b, &j);
        json_decref(b);
        if (!rc && !cl->json)
            printf("password of '%s' reset; its sessions ended\n", args[1]);
    } else {
        fprintf(stderr, "easgate admin admins: list | create NAME [--role admin|viewer] | "
                        "disable NAME | enable NAME | delete NAME | reset-password NAME\n");
        curl_free(name);
        return CLI_USAGE;
    }
    curl_free(name);
    json_decref(j);
    return rc;
}

/* The login back-off: who waits now, and lifting it. */
static int cmd_lockouts(const struct client *cl, int n, char **args)
{
    json_t *j = NULL;
    int rc;
    if (n == 0 || (n == 1 && strcmp(args[0], "list") == 0)) {
        rc = call(cl, "GET", "/api/v1/lockouts", NULL, &j);
        if (!rc && !cl->json) {
            struct table t = {.head = {"KIND", "WHO", "FAILURES", "REFUSED", "UNTIL"}, .ncols = 5};
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(j, "lockouts"), i, v)
            {
                char f[24], r[24], u[32];
                snprintf(f, sizeof(f), "%lld",
                         (long long)json_integer_value(json_object_get(v, "failures")));
                snprintf(r, sizeof(r), "%lld",
                         (long long)json_integer_value(json_object_get(v, "refused")));
                const char *row[] = {js(v, "kind"), js(v, "key"), f, r,
                                     when(json_object_get(v, "until"), u, sizeof(u))};
                t_add(&t, row);
            }
            t_print(&t);
        }
    } else if (n == 3 && strcmp(args[0], "lift") == 0 &&
               (strcmp(args[1], "account") == 0 || strcmp(args[1], "address") == 0)) {
        json_t *b = json_pack("{s:s}", args[1], args[2]);
        rc = call(cl, "POST", "/api/v1/lockouts/lift", b, &j);
        json_decref(b);
        if (!rc && !cl->json)
            printf("%s %s: %s\n", args[1], args[2],
                   json_integer_value(json_object_get(j, "lifted")) ? "lifted"
                                                                    : "had no failures to lift");
    } else {
        fprintf(stderr, "easgate admin lockouts: [list] | lift account NAME | lift address ADDR\n");
        return CLI_USAGE;
    }
    json_decref(j);
    return rc;
}

/* Change one's own password: the old one first (stdin: old, then new). */
static int cmd_password(const struct client *cl)
{
    char old[PW_MAX], pw[PW_MAX];
    if (cli_read_password("old password: ", old, sizeof(old)) < 0 || !old[0]) {
        fprintf(stderr, "easgate admin password: no old password given\n");
        return 1;
    }
    if (new_password("password", pw, sizeof(pw))) {
        memset(old, 0, sizeof(old));
        return 1;
    }
    json_t *b = json_pack("{s:s,s:s}", "old_password", old, "password", pw), *j;
    memset(old, 0, sizeof(old));
    memset(pw, 0, sizeof(pw));
    int rc = call(cl, "POST", "/api/v1/password", b, &j);
    json_decref(b);
    if (!rc && !cl->json)
        printf("password of '%s' changed; every session of it ended: log in again\n",
               js(j, "name"));
    json_decref(j);
    return rc;
}

/* ---- invitations: the enrollment server's admin routes ------------------------------ */

/* The base64 PNG of an answer into path (mode 0600: the code holds the key). 0 or 1. */
static int write_qr(const char *b64, const char *path)
{
    size_t bl = strlen(b64), n = 0;
    unsigned char *png = malloc(b64_decoded_max(bl));
    if (!png || b64_decode(b64, bl, png, b64_decoded_max(bl), 0, &n) < 0) {
        free(png);
        fprintf(stderr, "easgate admin invite: the server's QR code is not valid base64\n");
        return 1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    int rc = f && fwrite(png, 1, n, f) == n ? 0 : 1;
    if (f ? fclose(f) != 0 : (fd >= 0 && close(fd) != 0))
        rc = 1;
    free(png);
    if (rc)
        fprintf(stderr, "easgate admin invite: cannot write %s\n", path);
    return rc;
}

static int cmd_invite(const struct client *cl, const struct aopts *o, char **args)
{
    json_t *body = json_pack("{s:s}", "email", args[0]);
    if (o->user)
        json_object_set_new(body, "user", json_string(o->user));
    if (o->max_uses)
        json_object_set_new(body, "max_uses", json_integer(o->max_uses));
    if (o->expires)
        json_object_set_new(body, "expires", json_string(o->expires));
    json_t *j;
    int rc = call(cl, "POST", "/enroll/v1/invitations", body, &j);
    json_decref(body);
    if (rc)
        return rc;
    if (cl->json)
        printf("\n");
    else
        printf("invitation %lld\nemail:    %s\nuser:     %s\nkey:      %s\nmax uses: %lld\n"
               "expires:  %s\nurl:      %s\n",
               (long long)json_integer_value(json_object_get(j, "id")), js(j, "email"),
               js(j, "user"), js(j, "key"),
               (long long)json_integer_value(json_object_get(j, "max_uses")), js(j, "expires"),
               js(j, "url")[0] ? js(j, "url") : "(the server has no enroll.url)");
    fprintf(stderr, "easgate admin invite: the key is shown only this once; give it to the user "
                    "now\n");
    if (o->qr) {
        const char *q = js(j, "qr_png");
        if (!q[0]) {
            fprintf(stderr, "easgate admin invite: no QR code: the server has no enroll.url to "
                            "make an invitation URL from\n");
            rc = 1;
        } else {
            rc = write_qr(q, o->qr);
        }
    }
    json_decref(j);
    return rc;
}

static int cmd_invitations(const struct client *cl, const struct aopts *o)
{
    char path[1024] = "/enroll/v1/invitations", q[768] = "";
    qadd(q, sizeof(q), "email", o->email);
    snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s", q);
    json_t *j;
    int rc = call(cl, "GET", path, NULL, &j);
    if (rc || cl->json) {
        json_decref(j);
        return rc;
    }
    struct table t = {.head = {"ID", "EMAIL", "USER", "USES", "EXPIRES", "CREATED", "STATE"},
                      .ncols = 7};
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "invitations"), i, v)
    {
        char id[24], uses[48];
        snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(v, "id")));
        snprintf(uses, sizeof(uses), "%lld/%lld",
                 (long long)json_integer_value(json_object_get(v, "uses")),
                 (long long)json_integer_value(json_object_get(v, "max_uses")));
        const char *row[] = {id,
                             js(v, "email"),
                             js(v, "user"),
                             uses,
                             js(v, "expires"),
                             js(v, "created"),
                             js(v, "state")};
        t_add(&t, row);
    }
    t_print(&t);
    json_decref(j);
    return 0;
}

static int cmd_uninvite(const struct client *cl, int n, char **args)
{
    char *end;
    if (n != 1 || strtoll(args[0], &end, 10) <= 0 || *end) {
        fprintf(stderr, "easgate admin uninvite: '%s' is not an invitation id\n", n ? args[0] : "");
        return CLI_USAGE;
    }
    char path[128];
    snprintf(path, sizeof(path), "/enroll/v1/invitations/%s", args[0]);
    json_t *j;
    int rc = call(cl, "DELETE", path, NULL, &j);
    if (!rc && !cl->json)
        printf("invitation %s withdrawn: its key no longer works\n", args[0]);
    else if (!rc)
        printf("\n");
    json_decref(j);
    return rc;
}

/* ---- the commands ---------------------------------------------------------------- */

/* What every `easgate admin` command parses: the options, then its words. */
struct admin {
    struct client cl;
    struct yt_doc *file;       /* admin.yaml, when read: the strings below point into it */
    const char *enroll_cacert; /* NULL: --cacert serves the enrollment server too */
    struct aopts o;
    const char *token_file;
    char tokbuf[256];
    int n;       /* words after the command's name */
    char **args; /* ... and they */
    bool curl;   /* curl_global_init done */
};

/* The first line of a file (a token file), into out. */
static int read_token_file(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *r = fgets(out, (int)n, f);
    fclose(f);
    if (!r)
        return -1;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/*
 * admin.yaml: where the API is, so that no command needs --url and --cacert
 * (`easgate init` writes one). $EASGATE_ADMIN_CONFIG names it, else
 * $XDG_CONFIG_HOME/easgate/admin.yaml, else ~/.config/easgate/admin.yaml;
 * only a file named by $EASGATE_ADMIN_CONFIG must exist. Options win over
 * environment variables, which win over the file. Keys are checked like
 * easgate.yaml's (FILE:LINE:COL, "did you mean").
 */
struct admin_file {
    const char *url, *cacert, *token_file, *enroll_url, *enroll_cacert;
};
#define AF(f) offsetof(struct admin_file, f)
static const struct yt_key admin_file_keys[] = {
    {.name = "url", .type = YK_STR, .off = AF(url)},
    {.name = "cacert", .type = YK_PATH, .off = AF(cacert)},
    {.name = "token_file", .type = YK_PATH, .off = AF(token_file)},
    {.name = "enroll_url", .type = YK_STR, .off = AF(enroll_url)},
    {.name = "enroll_cacert", .type = YK_PATH, .off = AF(enroll_cacert)},
    {0},
};

static int admin_file_load(struct admin *a, struct admin_file *f)
{
    char path[4096], dir[4096], err[1024];
    const char *named = getenv("EASGATE_ADMIN_CONFIG"), *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    memset(f, 0, sizeof(*f));
    if (named && *named)
        snprintf(path, sizeof(path), "%s", named);
    else if (xdg && *xdg)
        snprintf(path, sizeof(path), "%s/easgate/admin.yaml", xdg);
    else if (home && *home)
        snprintf(path, sizeof(path), "%s/.config/easgate/admin.yaml", home);
    else
        return 0;
    if (!(named && *named) && access(path, F_OK) != 0)
        return 0;
    if (yt_load_file(path, &a->file, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s%s\n", named && *named ? "easgate admin: EASGATE_ADMIN_CONFIG: " : "",
                err);
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    struct yt_ctx ctx = {
        .doc = a->file, .dir = slash ? dir : ".", .err = err, .errlen = sizeof(err)};
    const struct yt_node *root = yt_root(a->file);
    if ((root && yt_want(&ctx, root, YT_MAP, "admin.yaml") < 0) ||
        yt_apply(admin_file_keys, root, f, &ctx) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    return 0;
}

/* Options anywhere (GNU getopt permutes): 0, 2 after a bad value, CLI_USAGE. */
static int admin_parse(struct admin *a, int argc, char **argv)
{
    enum {
        O_URL = 256,
        O_TOKEN,
        O_TOKEN_FILE,
        O_CACERT,
        O_JSON,
        O_OSV,
        O_AGENT,
        O_ACCOUNT,
        O_ENROLL_URL,
        O_EMAIL,
        O_MAX_USES,
        O_EXPIRES,
        O_QR,
        O_COMPLIANCE,
        O_TARGET,
        O_FORMAT,
        O_OUTPUT,
        O_DRY_RUN,
        O_CREATE_USERS,
        O_BATCH,
        O_UA,
        O_EASVER,
        O_ALLOW
    };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"token", required_argument, NULL, O_TOKEN},
        {"token-file", required_argument, NULL, O_TOKEN_FILE},
        {"cacert", required_argument, NULL, O_CACERT},
        {"json", no_argument, NULL, O_JSON},
        {"user", required_argument, NULL, 'u'},
        {"state", required_argument, NULL, 's'},
        {"type", required_argument, NULL, 't'},
        {"managed", required_argument, NULL, 'm'},
        {"after", required_argument, NULL, 'a'},
        {"before", required_argument, NULL, 'b'},
        {"limit", required_argument, NULL, 'l'},
        {"note", required_argument, NULL, 'n'},
        {"role", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'N'},
        {"os", required_argument, NULL, 'O'},
        {"os-version", required_argument, NULL, O_OSV},
        {"agent-version", required_argument, NULL, O_AGENT},
        {"account-only", no_argument, NULL, O_ACCOUNT},
        {"passcode", required_argument, NULL, 'P'},
        {"encrypted", required_argument, NULL, 'E'},
        {"jailbroken", required_argument, NULL, 'J'},
        {"enroll-url", required_argument, NULL, O_ENROLL_URL},
        {"email", required_argument, NULL, O_EMAIL},
        {"max-uses", required_argument, NULL, O_MAX_USES},
        {"expires", required_argument, NULL, O_EXPIRES},
        {"qr", required_argument, NULL, O_QR},
        {"compliance", required_argument, NULL, O_COMPLIANCE},
        {"target", required_argument, NULL, O_TARGET},
        {"format", required_argument, NULL, O_FORMAT},
        {"output", required_argument, NULL, O_OUTPUT},
        {"dry-run", no_argument, NULL, O_DRY_RUN},
        {"create-users", no_argument, NULL, O_CREATE_USERS},
        {"batch", required_argument, NULL, O_BATCH},
        {"ua", required_argument, NULL, O_UA},
        {"version", required_argument, NULL, O_EASVER},
        {"allow", no_argument, NULL, O_ALLOW},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof(*a));
    a->cl.url = getenv("EASGATE_URL");
    a->cl.token = getenv("EASGATE_TOKEN");
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case O_URL:
            a->cl.url = optarg;
            break;
        case O_TOKEN:
            a->cl.token = optarg;
            break;
        case O_TOKEN_FILE:
            a->token_file = optarg;
            break;
        case O_CACERT:
            a->cl.cacert = optarg;
            break;
        case O_JSON:
            a->cl.json = true;
            break;
        case 'u':
            a->o.user = optarg;
            break;
        case 's':
            a->o.state = optarg;
            break;
        case 't':
            a->o.type = optarg;
            break;
        case 'm':
            a->o.managed = optarg;
            break;
        case 'a':
            a->o.after = optarg;
            break;
        case 'b':
            a->o.before = optarg;
            break;
        case 'l':
            a->o.limit = strtol(optarg, &end, 10);
            if (*end || a->o.limit <= 0) {
                fprintf(stderr, "easgate admin: --limit takes a positive number\n");
                return 2;
            }
            break;
        case 'n':
            a->o.note = optarg;
            break;
        case 'r':
            a->o.role = optarg;
            break;
        case 'N':
            a->o.name = optarg;
            break;
        case 'O':
            a->o.os = optarg;
            break;
        case O_OSV:
            a->o.os_version = optarg;
            break;
        case O_AGENT:
            a->o.agent_version = optarg;
            break;
        case O_ACCOUNT:
            a->o.account_only = true;
            break;
        case 'P':
            a->o.passcode = optarg;
            break;
        case 'E':
            a->o.encrypted = optarg;
            break;
        case 'J':
            a->o.jailbroken = optarg;
            break;
        case O_ENROLL_URL:
            a->o.enroll_url = optarg;
            break;
        case O_EMAIL:
            a->o.email = optarg;
            break;
        case O_MAX_USES:
            a->o.max_uses = strtol(optarg, &end, 10);
            if (*end || a->o.max_uses <= 0) {
                fprintf(stderr, "easgate admin: --max-uses takes a positive number\n");
                return 2;
            }
            break;
        case O_EXPIRES:
            a->o.expires = optarg;
            break;
        case O_QR:
            a->o.qr = optarg;
            break;
        case O_COMPLIANCE:
            a->o.compliance = optarg;
            break;
        case O_TARGET:
            a->o.target = optarg;
            break;
        case O_FORMAT:
            a->o.format = optarg;
            break;
        case O_OUTPUT:
            a->o.output = optarg;
            break;
        case O_DRY_RUN:
            a->o.dry_run = true;
            break;
        case O_CREATE_USERS:
            a->o.create_users = true;
            break;
        case O_UA:
            a->o.ua = optarg;
            break;
        case O_EASVER:
            a->o.eas_version = optarg;
            break;
        case O_ALLOW:
            a->o.allow = true;
            break;
        case O_BATCH:
            a->o.batch = strtol(optarg, &end, 10);
            if (*end || a->o.batch <= 0 || a->o.batch > 1000) {
                fprintf(stderr, "easgate admin: --batch takes a number from 1 to 1000\n");
                return 2;
            }
            break;
        default:
            return CLI_USAGE; /* getopt said which option */
        }
    }
    a->n = argc - optind;
    a->args = argv + optind;
    /* What the options left open: the environment, then admin.yaml. */
    struct admin_file f;
    int rc = admin_file_load(a, &f);
    if (rc)
        return rc;
    const char *env_cacert = getenv("EASGATE_CACERT"), *env_enroll = getenv("EASGATE_ENROLL_URL");
    if (!a->cl.url)
        a->cl.url = f.url;
    if (!a->cl.cacert)
        a->cl.cacert = env_cacert && *env_cacert ? env_cacert : f.cacert;
    if (!a->cl.token && !a->token_file)
        a->token_file = f.token_file;
    if (!a->o.enroll_url)
        a->o.enroll_url = env_enroll && *env_enroll ? env_enroll : f.enroll_url;
    /* The enrollment server may have another certificate than the API's. */
    const char *env_ecacert = getenv("EASGATE_ENROLL_CACERT");
    a->enroll_cacert = env_ecacert && *env_ecacert ? env_ecacert : f.enroll_cacert;
    return 0;
}

/*
 * Parse, check the number of words (lo..hi) and the token (unless the
 * command logs in), start libcurl. 0, or an exit status with the error
 * printed; admin_close either way.
 */
static int admin_open(struct admin *a, int argc, char **argv, int lo, int hi, bool need_token)
{
    int rc = admin_parse(a, argc, argv);
    if (rc)
        return rc;
    if (a->n > hi) {
        fprintf(stderr, "easgate admin %s: unexpected argument '%s'\n", argv[0], a->args[hi]);
        return CLI_USAGE;
    }
    if (a->n < lo) {
        fprintf(stderr, "easgate admin %s: missing arguments\n", argv[0]);
        return CLI_USAGE;
    }
    if (a->token_file) {
        if (read_token_file(a->token_file, a->tokbuf, sizeof(a->tokbuf)) < 0) {
            fprintf(stderr, "easgate admin: cannot read a token from %s\n", a->token_file);
            return 2;
        }
        a->cl.token = a->tokbuf;
    }
    if (!a->cl.url)
        a->cl.url = ADMIN_DEFAULT_URL;
    if (!a->cl.token && need_token) {
        fprintf(stderr, "easgate admin: no token: give --token, --token-file or EASGATE_TOKEN "
                        "(mint one with `easgate core token` or `easgate admin login`)\n");
        return CLI_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "easgate admin: cannot start libcurl\n");
        return 1;
    }
    a->curl = true;
    return 0;
}

static int admin_close(struct admin *a, int rc)
{
    yt_free(a->file);
    a->file = NULL;
    if (conn)
        curl_easy_cleanup(conn);
    conn = NULL;
    if (a->curl)
        curl_global_cleanup();
    return rc;
}

/* Invitations live on the enrollment server, not the admin API. */
static int enroll_client(struct admin *a, const char *what)
{
    a->cl.url = a->o.enroll_url;
    if (a->enroll_cacert)
        a->cl.cacert = a->enroll_cacert;
    if (!a->cl.url) {
        fprintf(stderr,
                "easgate admin %s: give --enroll-url URL, EASGATE_ENROLL_URL or enroll_url in "
                "admin.yaml (the enrollment server, enroll.listen)\n",
                what);
        return CLI_USAGE;
    }
    return 0;
}

static int run_devices(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 1, 2, true);
    if (rc == 0)
        rc = cmd_devices(&a.cl, &a.o, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_users(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 2, true);
    if (rc == 0)
        rc = cmd_users(&a.cl, &a.o, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_audit(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 1, true);
    if (rc == 0)
        rc = cmd_audit(&a.cl, &a.o, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_notify(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 1, true);
    if (rc == 0)
        rc = cmd_notify(&a.cl, &a.o, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_pending(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 2, true);
    if (rc == 0)
        rc = cmd_pending(&a.cl, &a.o, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_checkin(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 1, 1, true);
    if (rc == 0)
        rc = cmd_checkin(&a.cl, &a.o, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_login(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 0, false);
    if (rc == 0)
        rc = cmd_login(&a.cl, &a.o);
    return admin_close(&a, rc);
}

static int run_token(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 1, 2, true);
    if (rc == 0)
        rc = cmd_token(&a.cl, &a.o, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_admins(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 1, 2, true);
    if (rc == 0)
        rc = cmd_admins(&a.cl, &a.o, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_lockouts(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 3, true);
    if (rc == 0)
        rc = cmd_lockouts(&a.cl, a.n, a.args);
    return admin_close(&a, rc);
}

static int run_password(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 0, true);
    if (rc == 0)
        rc = cmd_password(&a.cl);
    return admin_close(&a, rc);
}

static int run_whoami(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 0, true);
    if (rc == 0) {
        json_t *j;
        rc = call(&a.cl, "GET", "/api/v1/whoami", NULL, &j);
        if (!rc && !a.cl.json)
            printf("%s (%s)\n", js(j, "user"), js(j, "role"));
        json_decref(j);
    }
    return admin_close(&a, rc);
}

static int run_invite(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 1, 1, true);
    if (rc == 0)
        rc = enroll_client(&a, argv[0]);
    if (rc == 0)
        rc = cmd_invite(&a.cl, &a.o, a.args);
    return admin_close(&a, rc);
}

static int run_invitations(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 0, 0, true);
    if (rc == 0)
        rc = enroll_client(&a, argv[0]);
    if (rc == 0)
        rc = cmd_invitations(&a.cl, &a.o);
    return admin_close(&a, rc);
}

static int run_uninvite(int argc, char **argv)
{
    struct admin a;
    int rc = admin_open(&a, argc, argv, 1, 1, true);
    if (rc == 0)
        rc = enroll_client(&a, argv[0]);
    if (rc == 0)
        rc = cmd_uninvite(&a.cl, a.n, a.args);
    return admin_close(&a, rc);
}

#define ENROLL_URL_NOTE                                                                            \
    "  (on the enrollment server: --enroll-url URL or $EASGATE_ENROLL_URL,\n"                      \
    "   e.g. https://enroll.example.org:8444; the same tokens work there)\n"

static const struct cli_cmd admin_devices = {
    "devices", "list devices, show one, or act on one",
    "usage: easgate admin devices list [--user U] [--state S] [--type T] [--os OS]\n"
    "                                  [--managed yes|no]\n"
    "                                  [--compliance compliant|failing|grace|unchecked]\n"
    "                                  [--limit N] [--after CURSOR]\n"
    "       easgate admin devices show ID\n"
    "       easgate admin devices explain ID [--user U] [--ua UA] [--type T] [--version V]\n"
    "       easgate admin devices import FILE [--format csv|jsonl] [--dry-run] [--create-users]\n"
    "                                         [--batch N]\n"
    "       easgate admin devices export [--format csv|jsonl] [--output FILE] [list filters]\n"
    "       easgate admin devices ACTION ID [--note TEXT] [--user U (manage)]\n"
    "                                       [--account-only (wipe)]\n"
    "         ACTION: allow block quarantine wipe reset delete manage unmanage reprovision\n",
    run_devices, NULL};
static const struct cli_cmd admin_users = {
    "users", "list users and how many devices each has",
    "usage: easgate admin users [--limit N] [--after NAME]\n"
    "       easgate admin users import FILE [--format csv|jsonl] [--dry-run] [--batch N]\n",
    run_users, NULL};
static const struct cli_cmd admin_audit = {
    "audit", "the audit log, newest first",
    "usage: easgate admin audit [--limit N] [--before ID] [--target T]\n"
    "       easgate admin audit export [--format csv|jsonl] [--output FILE] [--target T]\n",
    run_audit, NULL};
static const struct cli_cmd admin_notify = {
    "notify", "the notification queue: mails and webhooks waiting, sent, failed",
    "usage: easgate admin notify [list] [--state queued|sent|failed] [--limit N] [--before ID]\n"
    "  newest first: channel, recipient or webhook, event, state, attempts, when queued,\n"
    "  the next attempt (queued) or when it ended, and the last error; then the number\n"
    "  of rows in each state (docs/notifications.md)\n",
    run_notify, NULL};
static const struct cli_cmd admin_pending = {
    "pending", "devices the proxy turned away: list them, or approve one",
    "usage: easgate admin pending [list] [--limit N] [--after ID]\n"
    "       easgate admin pending approve ID [--user U] [--allow [--note TEXT]]\n"
    "  devices seen but never accepted (requests the proxy answered itself, which\n"
    "  nobody authenticated) are kept apart from the registry, at most core.pending_max\n"
    "  for core.pending_ttl. The claimed user is what the request said, unchecked.\n"
    "  approve registers the device (unmanaged) and binds --user U if given, never the\n"
    "  claimed user; it needs the admin role and is audited (device.approve). An\n"
    "  unmanaged device gets unmanaged_devices (block under a strict policy): --allow\n"
    "  also gives it an admin allow override, as `devices allow` does (reset removes it)\n",
    run_pending, NULL};
static const struct cli_cmd admin_checkin = {
    "checkin", "report a device's facts, as its agent would",
    "usage: easgate admin checkin ID [--os OS] [--os-version V] [--passcode yes|no]\n"
    "                                [--encrypted yes|no] [--jailbroken yes|no] "
    "[--agent-version V]\n",
    run_checkin, NULL};
static const struct cli_cmd admin_login = {
    "login", "open a session: prints its token",
    "usage: easgate admin login --user NAME\n"
    "  the password is read from stdin (prompted for on a terminal)\n",
    run_login, NULL};
static const struct cli_cmd admin_token = {
    "token", "mint, list or revoke API tokens",
    "usage: easgate admin token new --role admin|viewer|device [--name LABEL]\n"
    "       easgate admin token revoke ID\n"
    "       easgate admin token list [--user ACCOUNT]\n"
    "  list: every API token with its account, name and last use (to the minute)\n",
    run_token, NULL};
static const struct cli_cmd admin_admins = {
    "admins", "the admin API's accounts: list, create, disable, enable, delete, reset a password",
    "usage: easgate admin admins list\n"
    "       easgate admin admins create NAME [--role admin|viewer]\n"
    "       easgate admin admins disable NAME | enable NAME | delete NAME\n"
    "       easgate admin admins reset-password NAME\n"
    "  passwords are read from stdin (prompted for twice on a terminal); disabling or\n"
    "  deleting ends the account's sessions and tokens; the last enabled admin cannot\n"
    "  be disabled or deleted. Needs the admin role; every change is audited\n",
    run_admins, NULL};
static const struct cli_cmd admin_lockouts = {
    "lockouts", "accounts and addresses the login back-off holds, and lifting them",
    "usage: easgate admin lockouts [list]\n"
    "       easgate admin lockouts lift account NAME | lift address ADDR\n"
    "  past core.login_free_failures, each failed login of an account or from an\n"
    "  address doubles the wait before the next (up to core.login_backoff_max);\n"
    "  lifting ends the wait and forgets the failures. A locked-out admin can lift\n"
    "  with a token (`easgate core token` on the core's host). Needs the admin role;\n"
    "  audited\n",
    run_lockouts, NULL};
static const struct cli_cmd admin_password = {
    "password", "change your own password (the old one is asked first)",
    "usage: easgate admin password\n"
    "  reads the old password, then the new one (twice on a terminal) from stdin;\n"
    "  every session of the account ends: log in again\n",
    run_password, NULL};
static const struct cli_cmd admin_whoami = {"whoami", "the account and role the token stands for",
                                            "usage: easgate admin whoami\n", run_whoami, NULL};
static const struct cli_cmd admin_invite = {
    "invite", "invite a user to enroll a device",
    "usage: easgate admin invite EMAIL [--user U] [--max-uses N] [--expires D|never]\n"
    "                            [--qr FILE.png]\n" ENROLL_URL_NOTE,
    run_invite, NULL};
static const struct cli_cmd admin_invitations = {
    "invitations", "list invitations, newest first",
    "usage: easgate admin invitations [--email E]\n" ENROLL_URL_NOTE, run_invitations, NULL};
static const struct cli_cmd admin_uninvite = {
    "uninvite", "withdraw an invitation: its key stops working",
    "usage: easgate admin uninvite ID   (ID from `easgate admin invitations`)\n" ENROLL_URL_NOTE,
    run_uninvite, NULL};

static const struct cli_cmd *const admin_cmds[] = {
    &admin_devices,     &admin_pending,  &admin_users,  &admin_audit,
    &admin_checkin,     &admin_login,    &admin_token,  &admin_admins,
    &admin_lockouts,    &admin_password, &admin_whoami, &admin_invite,
    &admin_invitations, &admin_uninvite, &admin_notify, NULL,
};

/* The options came before the command word: find it and hand over. */
static int admin_main(int argc, char **argv)
{
    struct admin a;
    int rc = admin_parse(&a, argc, argv);
    yt_free(a.file);
    if (rc)
        return rc;
    if (a.n == 0)
        return CLI_USAGE;
    return cli_redispatch(&cli_admin_cmd, "easgate admin", argc, argv, (int)(a.args - argv));
}

const struct cli_cmd cli_admin_cmd = {
    "admin", "administer devices, users, tokens and invitations over the API",
    "usage: easgate admin [--url URL] [--token T | --token-file F] [--cacert F] [--json] "
    "COMMAND ...\n"
    "  a command line over the admin API (and the enrollment server's invitations);\n"
    "  the options may come before or after the command\n"
    "Options win over $EASGATE_URL, $EASGATE_CACERT, $EASGATE_TOKEN and $EASGATE_ENROLL_URL,\n"
    "which win over admin.yaml ($EASGATE_ADMIN_CONFIG, else ~/.config/easgate/admin.yaml:\n"
    "url, cacert, token_file, enroll_url; easgate init writes one); URL defaults "
    "to\n" ADMIN_DEFAULT_URL ".\n"
    "--json prints the API's answer as it came.\n",
    admin_main, admin_cmds};
