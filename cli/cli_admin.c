/*
 * cli_admin: `easgate admin`, a command line over the admin API (libcurl),
 * and `easgate core init-admin|token`, which create the first account and
 * mint API tokens straight in the registry (no API needed: that is how the
 * first credentials come to exist).
 *
 *   easgate admin [--url URL] [--token T | --token-file F] [--cacert F] [--json]
 *                 devices list [filters] | devices show|allow|...|delete ID
 *                 users | audit | checkin ID [facts] | login --user U |
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

#include "common/b64.h"
#include "core/auth.h"
#include "core/ctx.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_DEFAULT_URL "https://127.0.0.1:8443"
#define ADMIN_TIMEOUT_S 30L
#define ADMIN_RESP_MAX (64L << 20)
#define PW_MAX 1100

/* ---- reading a password ------------------------------------------------------- */

/* One line from stdin; with a terminal, prompted and without echo. 0 or -1. */
static int read_password(const char *prompt, char *pw, size_t n)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *r = fgets(pw, (int)n, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!r)
        return -1;
    pw[strcspn(pw, "\r\n")] = '\0';
    return 0;
}

/* ---- easgate core init-admin | token ------------------------------------------ */

static void core_auth_usage(FILE *f)
{
    fprintf(f, "usage: easgate core init-admin -c FILE --user NAME [--role admin|viewer]\n"
               "         (the password is read from stdin, or prompted for twice)\n"
               "       easgate core token -c FILE --user NAME [--role admin|viewer|device]"
               " [--name LABEL]\n");
}

int cli_core_auth(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"user", required_argument, NULL, 'u'},
        {"role", required_argument, NULL, 'r'},   {"name", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *user = NULL, *role_s = NULL, *label = NULL;
    bool init = strcmp(argv[0], "init-admin") == 0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:u:r:n:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'r':
            role_s = optarg;
            break;
        case 'n':
            label = optarg;
            break;
        case 'h':
            core_auth_usage(stdout);
            return 0;
        default:
            core_auth_usage(stderr);
            return 2;
        }
    }
    if (!config || !user || optind != argc) {
        core_auth_usage(stderr);
        return 2;
    }
    int role = role_s ? core_role_parse(role_s) : CORE_ROLE_ADMIN;
    if (role < 0 || (init && role == CORE_ROLE_DEVICE)) {
        fprintf(stderr, "easgate core %s: --role must be admin or viewer%s\n", argv[0],
                init ? "" : " or device");
        return 2;
    }
    struct core_ctx c;
    char err[1024];
    int rc = core_ctx_open(&c, config, CORE_REDIS_NO, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "%s%s\n", rc == 1 ? "easgate core: " : "", err);
        core_ctx_close(&c);
        return rc;
    }
    struct core_auth *a = NULL;
    if (core_auth_open(c.reg, &a) < 0) {
        fprintf(stderr, "easgate core: cannot open the accounts tables\n");
        core_ctx_close(&c);
        return 1;
    }
    int64_t now = core_now_ms();
    rc = 0;
    if (init) {
        char pw[PW_MAX], pw2[PW_MAX];
        if (read_password("password: ", pw, sizeof(pw)) < 0) {
            fprintf(stderr, "easgate core init-admin: no password given (stdin was empty)\n");
            rc = 1;
        } else if (isatty(STDIN_FILENO) &&
                   (read_password("again: ", pw2, sizeof(pw2)) < 0 || strcmp(pw, pw2) != 0)) {
            fprintf(stderr, "easgate core init-admin: the passwords differ\n");
            rc = 1;
        } else if (core_auth_account_add(a, user, (enum core_role)role, pw, now, err, sizeof(err)) <
                   0) {
            fprintf(stderr, "easgate core init-admin: %s\n", err);
            rc = 1;
        } else {
            core_reg_audit_add(c.reg, "cli", "", "account.create", user,
                               core_role_name((enum core_role)role), now);
            printf("account '%s' created with role %s\n", user,
                   core_role_name((enum core_role)role));
        }
        memset(pw, 0, sizeof(pw));
    } else {
        char token[CORE_TOKEN_MAX];
        int64_t id = 0;
        int r = core_auth_token_mint(a, user, (enum core_role)role, label, now, token, &id);
        if (r == CORE_AUTH_ENOTFOUND) {
            fprintf(stderr, "easgate core token: no account '%s' (create it with init-admin)\n",
                    user);
            rc = 1;
        } else if (r == CORE_AUTH_EINVAL) {
            fprintf(stderr,
                    "easgate core token: '%s' is not an admin; it cannot mint an %s token\n", user,
                    core_role_name((enum core_role)role));
            rc = 1;
        } else if (r < 0) {
            fprintf(stderr, "easgate core token: minting failed (registry error)\n");
            rc = 1;
        } else {
            char target[32];
            snprintf(target, sizeof(target), "token:%lld", (long long)id);
            core_reg_audit_add(c.reg, "cli", "", "token.mint", target,
                               core_role_name((enum core_role)role), now);
            printf("%s\n", token);
            fprintf(stderr, "token %lld (%s, account %s); it is shown only this once\n",
                    (long long)id, core_role_name((enum core_role)role), user);
        }
    }
    core_auth_close(a);
    core_ctx_close(&c);
    return rc;
}

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
 * One call. On success (2xx) *out is the parsed answer and 0 is returned;
 * otherwise the error is printed and 1 is returned. With --json the answer
 * is printed as it came and *out is still set.
 */
static int call(const struct client *cl, const char *method, const char *path, json_t *body,
                json_t **out)
{
    *out = NULL;
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "easgate admin: cannot start libcurl\n");
        return 1;
    }
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
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    free(payload);
    int rc = 0;
    if (cc != CURLE_OK) {
        fprintf(stderr, "easgate admin: %s: %s\n", url, curl_easy_strerror(cc));
        rc = 1;
    } else {
        json_error_t e;
        json_t *j = rb.p ? json_loads(rb.p, 0, &e) : NULL;
        if (cl->json && rb.p)
            fputs(rb.p, stdout);
        if (status >= 200 && status < 300 && j) {
            *out = j;
        } else {
            const char *msg = json_string_value(json_object_get(j, "error"));
            fprintf(stderr, "easgate admin: %s (HTTP %ld)\n",
                    msg ? msg : "the server's answer is not the API's JSON", status);
            json_decref(j);
            rc = 1;
        }
    }
    free(rb.p);
    return rc;
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
        "device_id", "user",          "device_type",  "model",       "os",    "os_version",
        "imei",      "friendly_name", "phone_number", "user_agent",  "state", "reason",
        "override",  "agent_version", "wipe_kind",    "eas_version", NULL};
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
    const char *os, *os_version, *passcode, *encrypted, *jailbroken, *agent_version;
    long limit;
    bool account_only; /* devices wipe: {"kind":"account"} */
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

static int cmd_devices(const struct client *cl, const struct aopts *o, int n, char **args)
{
    char path[2048], q[1536] = "";
    json_t *j = NULL;
    if (n == 1 && strcmp(args[0], "list") == 0) {
        char lim[24];
        snprintf(lim, sizeof(lim), "%ld", o->limit);
        qadd(q, sizeof(q), "user", o->user);
        qadd(q, sizeof(q), "state", o->state);
        qadd(q, sizeof(q), "type", o->type);
        qadd(q, sizeof(q), "managed", o->managed);
        qadd(q, sizeof(q), "after", o->after);
        qadd(q, sizeof(q), "limit", o->limit > 0 ? lim : NULL);
        snprintf(path, sizeof(path), "/api/v1/devices%s", q);
        if (call(cl, "GET", path, NULL, &j))
            return 1;
        if (!cl->json) {
            print_devices(json_object_get(j, "devices"));
            print_next(j, "--after");
        }
        json_decref(j);
        return 0;
    }
    if (n != 2) {
        fprintf(stderr, "easgate admin devices: give list, or an action and one DeviceId\n");
        return 2;
    }
    char *id = curl_easy_escape(NULL, args[1], 0);
    int rc;
    if (strcmp(args[0], "show") == 0) {
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

static int cmd_users(const struct client *cl, const struct aopts *o)
{
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

static int cmd_audit(const struct client *cl, const struct aopts *o)
{
    char path[1024], q[768] = "", lim[24];
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
        return 2;
    }
    char pw[PW_MAX];
    if (read_password("password: ", pw, sizeof(pw)) < 0) {
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
            return 2;
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
    } else {
        fprintf(stderr, "easgate admin token: new --role R [--name L] | revoke ID\n");
        return 2;
    }
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

static int cmd_invite(const struct client *cl, const struct aopts *o, int n, char **args)
{
    if (n != 1) {
        fprintf(stderr, "usage: easgate admin invite EMAIL [--user U] [--max-uses N] "
                        "[--expires D|never] [--qr FILE.png]\n");
        return 2;
    }
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
        fprintf(stderr,
                "usage: easgate admin uninvite ID   (ID from `easgate admin invitations`)\n");
        return 2;
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

static void usage(FILE *f)
{
    fprintf(f,
            "usage: easgate admin [--url URL] [--token T | --token-file F] [--cacert F] [--json] "
            "COMMAND\n"
            "  devices list [--user U] [--state S] [--type T] [--managed yes|no]\n"
            "               [--limit N] [--after CURSOR]\n"
            "  devices show ID\n"
            "  devices allow|block|quarantine|wipe|reset|delete|manage|unmanage|reprovision ID\n"
            "               [--note TEXT] [--user U (manage)] [--account-only (wipe)]\n"
            "  users [--limit N] [--after NAME]\n"
            "  audit [--limit N] [--before ID]\n"
            "  checkin ID [--os OS] [--os-version V] [--passcode yes|no] [--encrypted yes|no]\n"
            "             [--jailbroken yes|no] [--agent-version V]\n"
            "  login --user NAME          (password from stdin; prints a session token)\n"
            "  token new --role admin|viewer|device [--name LABEL] | token revoke ID\n"
            "  whoami\n"
            "  invite EMAIL [--user U] [--max-uses N] [--expires D|never] [--qr FILE.png]\n"
            "  invitations [--email E]\n"
            "  uninvite ID\n"
            "             (these three talk to the enrollment server: --enroll-url URL or\n"
            "              $EASGATE_ENROLL_URL, e.g. https://enroll.example.org:8444)\n"
            "URL defaults to $EASGATE_URL, then " ADMIN_DEFAULT_URL
            "; the token to $EASGATE_TOKEN.\n");
}

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

int cli_admin(int argc, char **argv)
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
        O_QR
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct client cl = {getenv("EASGATE_URL"), getenv("EASGATE_TOKEN"), NULL, false};
    struct aopts o = {0};
    const char *token_file = NULL;
    int ch;
    optind = 1;
    /* GNU getopt permutes: options may follow the command words. */
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case O_URL:
            cl.url = optarg;
            break;
        case O_TOKEN:
            cl.token = optarg;
            break;
        case O_TOKEN_FILE:
            token_file = optarg;
            break;
        case O_CACERT:
            cl.cacert = optarg;
            break;
        case O_JSON:
            cl.json = true;
            break;
        case 'u':
            o.user = optarg;
            break;
        case 's':
            o.state = optarg;
            break;
        case 't':
            o.type = optarg;
            break;
        case 'm':
            o.managed = optarg;
            break;
        case 'a':
            o.after = optarg;
            break;
        case 'b':
            o.before = optarg;
            break;
        case 'l':
            o.limit = strtol(optarg, &end, 10);
            if (*end || o.limit <= 0) {
                fprintf(stderr, "easgate admin: --limit takes a positive number\n");
                return 2;
            }
            break;
        case 'n':
            o.note = optarg;
            break;
        case 'r':
            o.role = optarg;
            break;
        case 'N':
            o.name = optarg;
            break;
        case 'O':
            o.os = optarg;
            break;
        case O_OSV:
            o.os_version = optarg;
            break;
        case O_AGENT:
            o.agent_version = optarg;
            break;
        case O_ACCOUNT:
            o.account_only = true;
            break;
        case 'P':
            o.passcode = optarg;
            break;
        case 'E':
            o.encrypted = optarg;
            break;
        case 'J':
            o.jailbroken = optarg;
            break;
        case O_ENROLL_URL:
            o.enroll_url = optarg;
            break;
        case O_EMAIL:
            o.email = optarg;
            break;
        case O_MAX_USES:
            o.max_uses = strtol(optarg, &end, 10);
            if (*end || o.max_uses <= 0) {
                fprintf(stderr, "easgate admin: --max-uses takes a positive number\n");
                return 2;
            }
            break;
        case O_EXPIRES:
            o.expires = optarg;
            break;
        case O_QR:
            o.qr = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int n = argc - optind;
    char **args = argv + optind;
    if (n < 1) {
        usage(stderr);
        return 2;
    }
    char tokbuf[256];
    if (token_file) {
        if (read_token_file(token_file, tokbuf, sizeof(tokbuf)) < 0) {
            fprintf(stderr, "easgate admin: cannot read a token from %s\n", token_file);
            return 2;
        }
        cl.token = tokbuf;
    }
    if (!cl.url)
        cl.url = ADMIN_DEFAULT_URL;
    bool login = strcmp(args[0], "login") == 0;
    if (!cl.token && !login) {
        fprintf(stderr, "easgate admin: no token: give --token, --token-file or EASGATE_TOKEN "
                        "(mint one with `easgate core token` or `easgate admin login`)\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "easgate admin: cannot start libcurl\n");
        return 1;
    }
    int rc;
    if (strcmp(args[0], "devices") == 0 && n >= 2) {
        rc = cmd_devices(&cl, &o, n - 1, args + 1);
    } else if (strcmp(args[0], "users") == 0 && n == 1) {
        rc = cmd_users(&cl, &o);
    } else if (strcmp(args[0], "audit") == 0 && n == 1) {
        rc = cmd_audit(&cl, &o);
    } else if (strcmp(args[0], "checkin") == 0) {
        rc = cmd_checkin(&cl, &o, n - 1, args + 1);
    } else if (login && n == 1) {
        rc = cmd_login(&cl, &o);
    } else if (strcmp(args[0], "token") == 0) {
        rc = cmd_token(&cl, &o, n - 1, args + 1);
    } else if (strcmp(args[0], "invite") == 0 || strcmp(args[0], "invitations") == 0 ||
               strcmp(args[0], "uninvite") == 0) {
        /* Invitations live on the enrollment server, not the admin API. */
        struct client ec = cl;
        ec.url = o.enroll_url ? o.enroll_url : getenv("EASGATE_ENROLL_URL");
        if (!ec.url) {
            fprintf(stderr,
                    "easgate admin %s: give --enroll-url URL or EASGATE_ENROLL_URL "
                    "(the enrollment server, enroll.listen)\n",
                    args[0]);
            rc = 2;
        } else if (args[0][0] == 'i' && args[0][6] == 0) {
            rc = cmd_invite(&ec, &o, n - 1, args + 1);
        } else if (args[0][0] == 'i') {
            rc = n == 1 ? cmd_invitations(&ec, &o) : 2;
            if (rc == 2)
                usage(stderr);
        } else {
            rc = cmd_uninvite(&ec, n - 1, args + 1);
        }
    } else if (strcmp(args[0], "whoami") == 0 && n == 1) {
        json_t *j;
        rc = call(&cl, "GET", "/api/v1/whoami", NULL, &j);
        if (!rc && !cl.json)
            printf("%s (%s)\n", js(j, "user"), js(j, "role"));
        json_decref(j);
    } else {
        usage(stderr);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
