/*
 * conf: easgate.yaml declared as key tables (nginx style) and applied by
 * ytree in one place. Each table row is a key, its type, where it lands in
 * struct conf, its default and its range; docs/configuration.md mirrors these
 * tables row for row. What a table cannot say (both cert and key or neither,
 * distinct ports, url syntax) lives in the small check and handler functions
 * next to it, and still reports FILE:LINE:COL.
 */
#include "common/conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CONF_MAX_SECTIONS 6
#define CONF_WORKERS_MAX 256
#define CONF_NAME_MAX 64
#define CONF_HOST_MAX 256
#define CONF_REDIS_PORT 6379
#define CONF_REDIS_DB_MAX 1023

#define SEC (1000LL)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define KIB (1024LL)
#define MIB (1024 * KIB)

static const struct conf_section *registry[CONF_MAX_SECTIONS];
static size_t n_registry;

/* Top-level sections other roles own; accepted unparsed until registered. */
static const char *const reserved_sections[] = {"core", "enroll"};

/* A relative path is relative to the configuration file's directory, so the
 * same file works whatever the working directory of the service is. */
static const char *resolve(struct yt_ctx *ctx, const char *s)
{
    if (s[0] == '/' || !ctx->dir || strcmp(ctx->dir, ".") == 0)
        return s;
    size_t dl = strlen(ctx->dir), sl = strlen(s);
    char *p = yt_alloc(ctx->doc, dl + sl + 2);
    if (p)
        snprintf(p, dl + sl + 2, "%s/%s", ctx->dir, s);
    return p;
}

/* ---- Handlers --------------------------------------------------------------- */

static int workers_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    const char *s;
    int rc = yt_scalar_str(ctx, n, &s);
    if (rc)
        return rc;
    if (strcasecmp(s, "auto") == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        *(int *)field = cpus < 1 ? 1 : cpus > CONF_WORKERS_MAX ? CONF_WORKERS_MAX : (int)cpus;
        return 0;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (!isdigit((unsigned char)*s) || *end || v < 1 || v > CONF_WORKERS_MAX)
        return yt_err(ctx, n, "workers: expected auto or a number from 1 to %d", CONF_WORKERS_MAX);
    *(int *)field = (int)v;
    return 0;
}

static void int_print(FILE *f, const void *field)
{
    fprintf(f, "%d", *(const int *)field);
}

/* admin_listen: an address, or "off". */
static int admin_listen_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    struct conf_proxy *p =
        (struct conf_proxy *)((char *)field - offsetof(struct conf_proxy, admin_listen));
    const char *s, *why;
    int rc = yt_scalar_str(ctx, n, &s);
    if (rc)
        return rc;
    if (strcasecmp(s, "off") == 0) {
        p->has_admin = false;
        return 0;
    }
    if (units_parse_addr(s, &p->admin_listen, &why))
        return yt_err(ctx, n, "admin_listen: bad address '%s': %s (or \"off\")", s, why);
    p->has_admin = true;
    return 0;
}

static void admin_listen_print(FILE *f, const void *field)
{
    const struct units_addr *a = field;
    fputs(a->port ? a->text : "off", f);
}

/* A path on the server the proxy may send requests to: absolute, plain
 * characters only (no percent-encoding, query or fragment, nothing a server
 * might decode into another path), no empty, "." or ".." segment, no
 * trailing slash. NULL, or why not. */
static const char *server_path_why(const char *p)
{
    if (p[0] != '/')
        return "must start with /";
    if (strlen(p) > CONF_PATH_MAX)
        return "is too long";
    for (const char *c = p; *c; c++) {
        if (!isalnum((unsigned char)*c) && !strchr("/-._~!$&'()*+,;=:@", *c))
            return *c == '%'   ? "may not use percent-encoding"
                   : *c == '?' ? "may not carry a query"
                   : *c == '#'
                       ? "may not carry a fragment"
                       : "holds a character other than letters, digits and -._~!$&'()*+,;=:@/";
        if (*c == '/') {
            size_t seg = strcspn(c + 1, "/");
            if (seg == 0)
                return c[1] ? "has an empty segment (//)" : "ends with /";
            if ((seg == 1 && c[1] == '.') || (seg == 2 && c[1] == '.' && c[2] == '.'))
                return "has a . or .. segment";
        }
    }
    return NULL;
}

/* "http[s]://host[:port][/path]": no userinfo, query or fragment; the path,
 * if any, is the prefix the server lives under (SOGo: /SOGo), put before
 * the client's path (upstream.paths). The proxy never forwards anywhere
 * else, so it cannot be an open proxy. */
static int parse_url(struct yt_ctx *ctx, const struct yt_node *n, struct conf_url *u)
{
    const char *s;
    int rc = yt_scalar_str(ctx, n, &s);
    if (rc)
        return rc;
    u->url = s;
    const char *p;
    if (strncasecmp(s, "https://", 8) == 0) {
        u->tls = true;
        u->port = 443;
        p = s + 8;
    } else if (strncasecmp(s, "http://", 7) == 0) {
        u->tls = false;
        u->port = 80;
        p = s + 7;
    } else {
        return yt_err(ctx, n, "url: '%s' must start with https:// or http://", s);
    }
    size_t hl = strcspn(p, "/?#");
    const char *rest = p + hl;
    if (*rest == '?' || *rest == '#')
        return yt_err(ctx, n, "url: '%s': no query or fragment; give scheme, host, port and path",
                      s);
    u->path = "";
    if (*rest == '/' && rest[1]) {
        size_t pl = strlen(rest);
        if (rest[pl - 1] == '/')
            pl--; /* "/SOGo/" is "/SOGo" */
        char *path = yt_alloc(ctx->doc, pl + 1);
        if (!path)
            return yt_err(ctx, n, "out of memory");
        memcpy(path, rest, pl);
        path[pl] = '\0';
        const char *why = server_path_why(path);
        if (why)
            return yt_err(ctx, n, "url: '%s': the path %s", s, why);
        u->path = path;
    }
    if (memchr(p, '@', hl))
        return yt_err(ctx, n, "url: '%s': credentials in the url are not supported", s);
    char hp[CONF_HOST_MAX + 8];
    if (hl == 0 || hl >= sizeof(hp))
        return yt_err(ctx, n, "url: '%s': missing or too long host", s);
    memcpy(hp, p, hl);
    hp[hl] = '\0';
    /* With no port, add the scheme's default so host:port parsing is shared. */
    bool has_port = hp[0] == '[' ? strstr(hp, "]:") != NULL : strchr(hp, ':') != NULL;
    if (!has_port) {
        size_t l = strlen(hp);
        snprintf(hp + l, sizeof(hp) - l, ":%d", u->port);
    }
    char host[CONF_HOST_MAX];
    const char *why;
    if (units_parse_hostport(hp, host, sizeof(host), &u->port, &why))
        return yt_err(ctx, n, "url: '%s': %s", s, why);
    if (!(u->host = yt_strdup(ctx->doc, host)))
        return yt_err(ctx, n, "out of memory");
    return 0;
}

static int urls_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    struct conf_upstream *up = field;
    const struct yt_node *const *items = (const struct yt_node *const *)&n;
    size_t cnt = 1;
    if (n->type == YT_MAP)
        return yt_err(ctx, n, "url: expected a url or a list of urls, got a map");
    if (n->type == YT_SEQ) {
        items = (const struct yt_node *const *)n->items;
        cnt = n->n;
        if (cnt == 0)
            return yt_err(ctx, n, "url: the list is empty; give at least one url");
    }
    if (!(up->urls = yt_alloc(ctx->doc, cnt * sizeof(*up->urls))))
        return yt_err(ctx, n, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        if (items[i]->type != YT_SCALAR)
            return yt_err(ctx, items[i], "url: list entries must be urls, not a %s",
                          yt_type_name(items[i]->type));
        int rc = parse_url(ctx, items[i], &up->urls[i]);
        if (rc)
            return rc;
    }
    up->n_urls = cnt;
    return 0;
}

static void urls_print(FILE *f, const void *field)
{
    const struct conf_upstream *up = field;
    if (up->n_urls == 1) {
        fprintf(f, "\"%s\"", up->urls[0].url);
        return;
    }
    fputc('[', f);
    for (size_t i = 0; i < up->n_urls; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", up->urls[i].url);
    fputc(']', f);
}

int conf_ip16(const char *text, size_t len, uint8_t out[16])
{
    char buf[INET6_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(buf) || memchr(text, '\0', len))
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    memset(out, 0, 16);
    if (inet_pton(AF_INET, buf, out + 12) == 1) {
        out[10] = out[11] = 0xff;
        return 0;
    }
    return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
}

bool conf_net_match(const struct conf_net *nets, size_t n, const uint8_t addr[16])
{
    for (size_t i = 0; i < n; i++) {
        int bits = nets[i].bits, whole = bits / 8, rest = bits % 8;
        if (memcmp(nets[i].addr, addr, (size_t)whole) != 0)
            continue;
        if (rest && ((nets[i].addr[whole] ^ addr[whole]) & (0xff00 >> rest) & 0xff))
            continue;
        return true;
    }
    return false;
}

/* trusted_proxies: an address or network, or a list of them. */
static int nets_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    struct conf_net **v = field;
    size_t *count = (size_t *)((char *)field + offsetof(struct conf_instance, trusted_proxies.n) -
                               offsetof(struct conf_instance, trusted_proxies.v));
    const struct yt_node *const *items = (const struct yt_node *const *)&n;
    size_t cnt = 1;
    if (n->type == YT_MAP)
        return yt_err(ctx, n, "trusted_proxies: expected an address or network, or a list of them");
    if (n->type == YT_SEQ) {
        items = (const struct yt_node *const *)n->items;
        cnt = n->n;
    }
    if (cnt && !(*v = yt_alloc(ctx->doc, cnt * sizeof(**v))))
        return yt_err(ctx, n, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        const char *t;
        int rc = yt_scalar_str(ctx, items[i], &t);
        if (rc)
            return rc;
        struct conf_net *net = &(*v)[i];
        const char *slash = strchr(t, '/');
        size_t alen = slash ? (size_t)(slash - t) : strlen(t);
        if (conf_ip16(t, alen, net->addr) < 0)
            return yt_err(ctx, items[i], "trusted_proxies: '%s' is not an IP address or network",
                          t);
        int is4 = memcmp(net->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 && !strchr(t, ':');
        int max = is4 ? 32 : 128, bits = max;
        if (slash) {
            char *end;
            long b = strtol(slash + 1, &end, 10);
            if (!slash[1] || *end || b < 0 || b > max)
                return yt_err(ctx, items[i], "trusted_proxies: '%s': prefix length must be 0 to %d",
                              t, max);
            bits = (int)b;
        }
        net->bits = is4 ? 96 + bits : bits;
        /* the address must be the network's first: "10.1.2.3/8" is a typo */
        for (int b = net->bits; b < 128; b++)
            if (net->addr[b / 8] & (0x80 >> (b % 8)))
                return yt_err(ctx, items[i],
                              "trusted_proxies: '%s' has host bits set (did you mean the network?)",
                              t);
        net->text = t;
    }
    *count = cnt;
    return 0;
}

static void nets_print(FILE *f, const void *field)
{
    const struct conf_net *const *v = field;
    size_t n =
        *(const size_t *)((const char *)field + offsetof(struct conf_instance, trusted_proxies.n) -
                          offsetof(struct conf_instance, trusted_proxies.v));
    fputc('[', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", (*v)[i].text);
    fputc(']', f);
}

/* log.access: a path, "-" for stdout, "off" for none. */
static int access_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    const char *s;
    int rc = yt_scalar_str(ctx, n, &s);
    if (rc)
        return rc;
    if (strcasecmp(s, "off") == 0) {
        *(const char **)field = NULL;
        return 0;
    }
    if (!*s)
        return yt_err(ctx, n, "access: empty path (use \"-\" for stdout or \"off\")");
    if (strcmp(s, "-") != 0 && !(s = resolve(ctx, s)))
        return yt_err(ctx, n, "out of memory");
    *(const char **)field = s;
    return 0;
}

static void access_print(FILE *f, const void *field)
{
    const char *s = *(const char *const *)field;
    if (s)
        fprintf(f, "\"%s\"", s);
    else
        fputs("off", f);
}

/* redis://[:password@]host[:port][/db] */
static int redis_url_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    struct conf_redis *r = field;
    const char *s;
    int rc = yt_scalar_str(ctx, n, &s);
    if (rc)
        return rc;
    r->url = s;
    if (strncasecmp(s, "rediss://", 9) == 0)
        return yt_err(ctx, n,
                      "url: TLS to Redis (rediss://) is not supported; see "
                      "docs/configuration.md, redis section");
    if (strncasecmp(s, "redis://", 8) != 0)
        return yt_err(ctx, n, "url: '%s' must look like redis://[:password@]host:port/db", s);
    const char *p = s + 8;
    const char *at = strrchr(p, '@');
    r->password = NULL;
    if (at) {
        if (*p != ':')
            return yt_err(ctx, n, "url: write the password as redis://:PASSWORD@host:port");
        if (!(r->password = yt_strndup(ctx->doc, p + 1, (size_t)(at - p - 1))))
            return yt_err(ctx, n, "out of memory");
        p = at + 1;
    }
    size_t hl = strcspn(p, "/");
    char hp[CONF_HOST_MAX + 8];
    if (hl == 0 || hl >= sizeof(hp))
        return yt_err(ctx, n, "url: missing or too long host");
    memcpy(hp, p, hl);
    hp[hl] = '\0';
    bool has_port = hp[0] == '[' ? strstr(hp, "]:") != NULL : strchr(hp, ':') != NULL;
    if (!has_port) {
        size_t l = strlen(hp);
        snprintf(hp + l, sizeof(hp) - l, ":%d", CONF_REDIS_PORT);
    }
    char host[CONF_HOST_MAX];
    const char *why;
    if (units_parse_hostport(hp, host, sizeof(host), &r->port, &why))
        return yt_err(ctx, n, "url: %s", why);
    if (!(r->host = yt_strdup(ctx->doc, host)))
        return yt_err(ctx, n, "out of memory");
    r->db = 0;
    const char *db = p + hl;
    if (*db == '/' && db[1]) {
        char *end;
        long v = strtol(db + 1, &end, 10);
        if (!isdigit((unsigned char)db[1]) || *end || v < 0 || v > CONF_REDIS_DB_MAX)
            return yt_err(ctx, n, "url: database must be a number from 0 to %d", CONF_REDIS_DB_MAX);
        r->db = (int)v;
    }
    return 0;
}

static void redis_url_print(FILE *f, const void *field)
{
    const struct conf_redis *r = field;
    bool v6 = strchr(r->host, ':') != NULL;
    fprintf(f, "\"redis://%s%s%s%s:%d/%d\"", r->password ? ":***@" : "", v6 ? "[" : "", r->host,
            v6 ? "]" : "", r->port, r->db);
}

/* ---- Checks that span several keys --------------------------------------- */

static int tls_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct conf_instance *in =
        (struct conf_instance *)((char *)obj - offsetof(struct conf_instance, tls));
    /* Neither set (absent, or printed back as "~") means plain HTTP. */
    if (!map || (!in->tls.cert && !in->tls.key))
        return 0;
    if (!in->tls.cert || !in->tls.key)
        return yt_err(ctx, map, "tls: give both cert and key (or leave tls out for plain HTTP)");
    return 0;
}

/* A host name glob: letters, digits, '-', '.', '*' ('[', ']', ':' for an
 * IPv6 literal), no port (the port is never compared). */
static int server_names_check(const struct conf_instance *in, const struct yt_node *at,
                              struct yt_ctx *ctx)
{
    for (size_t i = 0; i < in->server_names.n; i++) {
        const char *g = in->server_names.v[i];
        int v6 = g[0] == '[';
        for (const char *p = g; *p; p++)
            if (!isalnum((unsigned char)*p) && !strchr("-.*", *p) && !(v6 && strchr("[]:", *p)))
                return yt_err(ctx, at,
                              "server_names: '%s' is not a host name pattern (letters, digits, "
                              "'-', '.', '*'; no port)",
                              g);
        if (!*g)
            return yt_err(ctx, at, "server_names: an empty name");
    }
    return 0;
}

static int instance_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct conf_instance *in = obj;
    for (const char *p = in->name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return yt_err(ctx, yt_get(map, "name"),
                          "name: '%s' may hold only letters, digits, '-', '_' and '.'", in->name);
    if (!*in->name || strlen(in->name) > CONF_NAME_MAX)
        return yt_err(ctx, yt_get(map, "name"), "name: 1 to %d characters", CONF_NAME_MAX);
    const struct yt_node *ca = yt_get(map, "client_auth");
    if (in->client_auth.required && !in->client_auth.ca)
        return yt_err(ctx, ca, "client_auth: required: true needs a ca to verify against");
    if (in->client_auth.crl && !in->client_auth.ca)
        return yt_err(ctx, ca, "client_auth: a crl needs the ca it belongs to");
    if (in->client_auth.ca && !in->tls.cert)
        return yt_err(ctx, ca, "client_auth needs tls (client certificates come with TLS)");
    return server_names_check(in, yt_get(map, "server_names"), ctx);
}

static bool same_addr(const struct units_addr *a, const struct units_addr *b)
{
    return a->port == b->port && strcmp(a->text, b->text) == 0;
}

static int proxy_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct conf_proxy *p = obj;
    const struct yt_node *list = yt_get(map, "instances");
    if (!map)
        return 0;
    if (p->n_instances == 0)
        return yt_err(ctx, list ? list : map, "instances: give at least one instance");
    /* Metrics count requests per instance in fixed tables (proxy/metrics.h). */
    if (p->n_instances > CONF_INSTANCES_MAX)
        return yt_err(ctx, list, "instances: at most %d in one process (run another proxy)",
                      CONF_INSTANCES_MAX);
    for (size_t i = 0; i < p->n_instances; i++) {
        const struct yt_node *at = list->items[i];
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->instances[i].name, p->instances[j].name) == 0)
                return yt_err(ctx, yt_get(at, "name"), "instance name '%s' is used twice",
                              p->instances[i].name);
            /* Same port on different addresses can still clash (a wildcard
             * covers the rest), so ports must differ, as the issue asks. */
            if (p->instances[i].listen.port == p->instances[j].listen.port)
                return yt_err(ctx, yt_get(at, "listen"),
                              "listen: port %d is already used by instance '%s'",
                              p->instances[i].listen.port, p->instances[j].name);
        }
        if (p->has_admin && (same_addr(&p->instances[i].listen, &p->admin_listen) ||
                             p->instances[i].listen.port == p->admin_listen.port))
            return yt_err(ctx, yt_get(at, "listen"), "listen: port %d is the admin_listen port",
                          p->admin_listen.port);
    }
    return 0;
}

static int sentinel_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct conf_redis *r =
        (struct conf_redis *)((char *)obj - offsetof(struct conf_redis, sentinel));
    const struct yt_node *nodes = yt_get(map, "nodes");
    if (!map || (!r->sentinel.master && r->sentinel.nodes.n == 0))
        return 0; /* no Sentinel */
    if (!r->sentinel.master)
        return yt_err(ctx, map, "sentinel: master (the monitored master's name) is required");
    if (r->sentinel.nodes.n == 0)
        return yt_err(ctx, nodes ? nodes : map, "sentinel: nodes needs at least one host:port");
    for (size_t i = 0; i < r->sentinel.nodes.n; i++) {
        char host[CONF_HOST_MAX];
        int port;
        const char *why;
        if (units_parse_hostport(r->sentinel.nodes.v[i], host, sizeof(host), &port, &why))
            return yt_err(ctx, nodes->type == YT_SEQ ? nodes->items[i] : nodes, "nodes: '%s': %s",
                          r->sentinel.nodes.v[i], why);
    }
    return 0;
}

/* ---- Tables ---------------------------------------------------------------- */

/* Offset of a member of an anonymous nested struct, relative to that struct. */
#define SUBOFF(st, outer, fld) (offsetof(st, outer.fld) - offsetof(st, outer))

static const struct yt_key tls_sub[] = {
    {.name = "cert", .type = YK_PATH, .off = SUBOFF(struct conf_instance, tls, cert)},
    {.name = "key", .type = YK_PATH, .off = SUBOFF(struct conf_instance, tls, key)},
    {.check = tls_check},
};

static const struct yt_key client_auth_sub[] = {
    {.name = "ca", .type = YK_PATH, .off = SUBOFF(struct conf_instance, client_auth, ca)},
    {.name = "crl", .type = YK_PATH, .off = SUBOFF(struct conf_instance, client_auth, crl)},
    {.name = "required",
     .type = YK_BOOL,
     .off = SUBOFF(struct conf_instance, client_auth, required),
     .def = "false"},
    {0},
};

/* One of upstream.paths: a path on the server. */
static int server_path_fn(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    const char *s;
    int rc = yt_scalar_str(ctx, n, &s);
    if (rc)
        return rc;
    const char *why = server_path_why(s);
    if (why)
        return yt_err(ctx, n, "paths: '%s': the path %s", s, why);
    *(const char **)field = s;
    return 0;
}

static void server_path_print(FILE *f, const void *field)
{
    fputs(*(const char *const *)field, f);
}

#define PA(f) offsetof(struct conf_paths, f)
static const struct yt_key paths_keys[] = {
    {.name = "activesync",
     .type = YK_FN,
     .off = PA(activesync),
     .fn = server_path_fn,
     .print = server_path_print},
    {.name = "autodiscover",
     .type = YK_FN,
     .off = PA(autodiscover),
     .fn = server_path_fn,
     .print = server_path_print},
    {.name = "ews",
     .type = YK_FN,
     .off = PA(ews),
     .fn = server_path_fn,
     .print = server_path_print},
    {0},
};

/* A route's path on the server: the file's, else the url's prefix before
 * the client's own. */
static int path_default(struct yt_ctx *ctx, const char *prefix, const char *client,
                        const char **out)
{
    if (*out)
        return 0;
    if (!*prefix) {
        *out = client;
        return 0;
    }
    size_t l = strlen(prefix) + strlen(client) + 1;
    char *p = yt_alloc(ctx->doc, l);
    if (!p)
        return yt_err(ctx, NULL, "out of memory");
    snprintf(p, l, "%s%s", prefix, client);
    if (l - 1 > CONF_PATH_MAX)
        return yt_err(ctx, NULL, "url: the path '%s' is too long (at most %d bytes with %s)",
                      prefix, CONF_PATH_MAX - (int)strlen(client), client);
    *out = p;
    return 0;
}

/* Every url of an instance is the same server (round robin, failover), so
 * they carry the same prefix; the paths not given follow from it. */
static int upstream_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct conf_upstream *up = obj;
    if (!up->urls)
        return 0;
    const char *prefix = up->urls[0].path;
    for (size_t i = 1; i < up->n_urls; i++)
        if (strcmp(up->urls[i].path, prefix) != 0) {
            const struct yt_node *at = yt_get(map, "url");
            return yt_err(ctx, at ? at : map,
                          "url: '%s' and '%s' carry different paths; the urls of an instance "
                          "are the same server (give each its own instance)",
                          up->urls[0].url, up->urls[i].url);
        }
    int rc = path_default(ctx, prefix, CONF_PATH_ACTIVESYNC, &up->paths.activesync);
    if (!rc)
        rc = path_default(ctx, prefix, CONF_PATH_AUTODISCOVER, &up->paths.autodiscover);
    if (!rc)
        rc = path_default(ctx, prefix, CONF_PATH_EWS, &up->paths.ews);
    return rc;
}

#define UP(f) offsetof(struct conf_upstream, f)
static const struct yt_key upstream_keys[] = {
    {.name = "url", .type = YK_FN, .fn = urls_fn, .print = urls_print, .flags = YK_REQUIRED},
    {.name = "ca", .type = YK_PATH, .off = UP(ca)},
    {.name = "verify", .type = YK_BOOL, .off = UP(verify), .def = "true"},
    {.name = "pool_size", .type = YK_INT, .off = UP(pool_size), .def = "64", .max = 100000},
    {.name = "pool_idle",
     .type = YK_DUR,
     .off = UP(pool_idle_ms),
     .def = "60s",
     .min = SEC,
     .max = HOUR},
    {.name = "retry_after",
     .type = YK_DUR,
     .off = UP(retry_after_ms),
     .def = "10s",
     .min = SEC,
     .max = HOUR},
    {.name = "down_time",
     .type = YK_DUR,
     .off = UP(down_ms),
     .def = "10s",
     .min = SEC,
     .max = HOUR},
    {.name = "paths", .type = YK_MAP, .off = UP(paths), .sub = paths_keys},
    {.check = upstream_check},
};

#define IN(f) offsetof(struct conf_instance, f)
static const struct yt_key instance_keys[] = {
    {.name = "name", .type = YK_STR, .off = IN(name), .flags = YK_REQUIRED},
    {.name = "listen", .type = YK_ADDR, .off = IN(listen), .flags = YK_REQUIRED},
    {.name = "tls", .type = YK_MAP, .off = IN(tls), .sub = tls_sub},
    {.name = "client_auth", .type = YK_MAP, .off = IN(client_auth), .sub = client_auth_sub},
    {.name = "proxy_protocol", .type = YK_BOOL, .off = IN(proxy_protocol), .def = "false"},
    {.name = "server_names", .type = YK_STRLIST, .off = IN(server_names)},
    {.name = "trusted_proxies",
     .type = YK_FN,
     .off = IN(trusted_proxies.v),
     .fn = nets_fn,
     .print = nets_print},
    {.name = "upstream",
     .type = YK_MAP,
     .off = IN(upstream),
     .sub = upstream_keys,
     .flags = YK_REQUIRED},
    {.check = instance_check},
};

#define TO(f) offsetof(struct conf_timeouts, f)
static const struct yt_key timeout_keys[] = {
    {.name = "handshake",
     .type = YK_DUR,
     .off = TO(handshake_ms),
     .def = "30s",
     .min = SEC,
     .max = 10 * MIN},
    {.name = "header",
     .type = YK_DUR,
     .off = TO(header_ms),
     .def = "15s",
     .min = SEC,
     .max = 10 * MIN},
    {.name = "body", .type = YK_DUR, .off = TO(body_ms), .def = "60s", .min = SEC, .max = HOUR},
    {.name = "keepalive", .type = YK_DUR, .off = TO(keepalive_ms), .def = "75s", .max = HOUR},
    {.name = "long_poll_margin",
     .type = YK_DUR,
     .off = TO(long_poll_margin_ms),
     .def = "60s",
     .max = 10 * MIN},
    {.name = "upstream_connect",
     .type = YK_DUR,
     .off = TO(upstream_connect_ms),
     .def = "5s",
     .min = 100,
     .max = 5 * MIN},
    {.name = "upstream_response",
     .type = YK_DUR,
     .off = TO(upstream_response_ms),
     .def = "120s",
     .min = SEC,
     .max = HOUR},
    {.name = "drain_grace", .type = YK_DUR, .off = TO(drain_grace_ms), .def = "30s", .max = HOUR},
    {.name = "max_connection_age",
     .type = YK_DUR,
     .off = TO(max_connection_age_ms),
     .def = "24h",
     .max = 30 * DAY},
    {0},
};

#define LI(f) offsetof(struct conf_limits, f)
static const struct yt_key limit_keys[] = {
    {.name = "max_header_size",
     .type = YK_SIZE,
     .off = LI(max_header_size),
     .def = "16k",
     .min = KIB,
     .max = MIB},
    {.name = "max_body_read",
     .type = YK_SIZE,
     .off = LI(max_body_read),
     .def = "64k",
     .min = KIB,
     .max = 16 * MIB},
    {.name = "max_connections",
     .type = YK_INT,
     .off = LI(max_connections),
     .def = "100000",
     .min = 1,
     .max = 10000000},
    {.name = "max_connections_per_client",
     .type = YK_INT,
     .off = LI(max_connections_per_client),
     .def = "0",
     .max = 10000000},
    {.name = "max_heartbeat",
     .type = YK_DUR,
     .off = LI(max_heartbeat_ms),
     .def = "3540s",
     .min = SEC,
     .max = 2 * HOUR},
    {.name = "max_requests_per_connection",
     .type = YK_I64,
     .off = LI(max_requests_per_connection),
     .def = "10000",
     .max = 1000000000},
    {0},
};

#define PX(f) offsetof(struct conf_proxy, f)
static const struct yt_key proxy_keys[] = {
    {.name = "workers",
     .type = YK_FN,
     .off = PX(workers),
     .def = "auto",
     .fn = workers_fn,
     .print = int_print},
    {.name = "admin_listen",
     .type = YK_FN,
     .off = PX(admin_listen),
     .def = "127.0.0.1:9090",
     .fn = admin_listen_fn,
     .print = admin_listen_print},
    {.name = "timeouts", .type = YK_MAP, .off = PX(timeouts), .sub = timeout_keys},
    {.name = "limits", .type = YK_MAP, .off = PX(limits), .sub = limit_keys},
    {.name = "instances",
     .type = YK_SEQ,
     .off = PX(instances),
     .off2 = PX(n_instances),
     .elem_size = sizeof(struct conf_instance),
     .sub = instance_keys,
     .flags = YK_REQUIRED},
    {.check = proxy_check},
};

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};

#define LG(f) offsetof(struct conf_log, f)
static const struct yt_key log_keys[] = {
    {.name = "access",
     .type = YK_FN,
     .off = LG(access),
     .def = "-",
     .fn = access_fn,
     .print = access_print},
    {.name = "error",
     .type = YK_FN,
     .off = LG(error),
     .def = "-",
     .fn = access_fn,
     .print = access_print},
    {.name = "level", .type = YK_ENUM, .off = LG(level), .def = "info", .enums = log_levels},
    {0},
};

static const struct yt_key sentinel_keys[] = {
    {.name = "master", .type = YK_STR, .off = SUBOFF(struct conf_redis, sentinel, master)},
    {.name = "nodes", .type = YK_STRLIST, .off = SUBOFF(struct conf_redis, sentinel, nodes)},
    {.check = sentinel_check},
};

#define RD(f) offsetof(struct conf_redis, f)
static const struct yt_key redis_keys[] = {
    {.name = "url",
     .type = YK_FN,
     .def = "redis://127.0.0.1:6379/0",
     .fn = redis_url_fn,
     .print = redis_url_print},
    {.name = "sentinel", .type = YK_MAP, .off = RD(sentinel), .sub = sentinel_keys},
    {.name = "max_stale",
     .type = YK_DUR,
     .off = RD(max_stale_ms),
     .def = "24h",
     .min = SEC,
     .max = 30 * DAY},
    {.name = "lookup_timeout",
     .type = YK_DUR,
     .off = RD(lookup_timeout_ms),
     .def = "50ms",
     .min = 1,
     .max = 10 * SEC},
    {.name = "sighting_interval",
     .type = YK_DUR,
     .off = RD(sighting_interval_ms),
     .def = "1h",
     .min = SEC,
     .max = 7 * DAY},
    {.name = "stream_maxlen",
     .type = YK_I64,
     .off = RD(stream_maxlen),
     .def = "100000",
     .min = 100,
     .max = 100000000},
    {0},
};

/* ---- Loading ---------------------------------------------------------------- */

static struct conf_redis redis_defaults;
static struct yt_doc *redis_defaults_doc; /* holds the strings; kept for the process */
static pthread_once_t redis_defaults_once = PTHREAD_ONCE_INIT;

static void redis_defaults_load(void)
{
    char err[256];
    if (yt_load_buf("(defaults)", "{}", 2, &redis_defaults_doc, err, sizeof(err)) != 0)
        return; /* out of memory: zeros, and max_stale 0 fails closed */
    struct yt_ctx ctx = {.doc = redis_defaults_doc, .err = err, .errlen = sizeof(err)};
    if (yt_apply(redis_keys, NULL, &redis_defaults, &ctx) != 0)
        memset(&redis_defaults, 0, sizeof(redis_defaults));
}

const struct conf_redis *conf_redis_defaults(void)
{
    pthread_once(&redis_defaults_once, redis_defaults_load);
    return &redis_defaults;
}

int conf_register_section(const struct conf_section *s)
{
    for (size_t i = 0; i < n_registry; i++)
        if (strcmp(registry[i]->name, s->name) == 0)
            return registry[i] == s ? 0 : -EEXIST;
    if (n_registry == CONF_MAX_SECTIONS)
        return -ENOSPC;
    registry[n_registry++] = s;
    return 0;
}

static const char *const own_sections[] = {"proxy", "policy", "log", "redis"};
#define N_OWN (sizeof(own_sections) / sizeof(own_sections[0]))
#define N_RESERVED (sizeof(reserved_sections) / sizeof(reserved_sections[0]))

static bool top_known(const char *name)
{
    for (size_t i = 0; i < N_OWN; i++)
        if (strcmp(name, own_sections[i]) == 0)
            return true;
    for (size_t i = 0; i < N_RESERVED; i++)
        if (strcmp(name, reserved_sections[i]) == 0)
            return true;
    for (size_t i = 0; i < n_registry; i++)
        if (strcmp(name, registry[i]->name) == 0)
            return true;
    return false;
}

static int check_top(const struct yt_node *root, struct yt_ctx *ctx)
{
    const char *cand[N_OWN + N_RESERVED + CONF_MAX_SECTIONS];
    size_t nc = 0;
    for (size_t i = 0; i < N_OWN; i++)
        cand[nc++] = own_sections[i];
    for (size_t i = 0; i < N_RESERVED; i++)
        cand[nc++] = reserved_sections[i];
    for (size_t i = 0; i < n_registry; i++)
        cand[nc++] = registry[i]->name;
    for (size_t i = 0; i < root->n; i++) {
        const char *name = root->keys[i]->str;
        if (top_known(name))
            continue;
        const char *hint = yt_suggest(name, cand, nc);
        if (hint)
            return yt_err(ctx, root->keys[i], "unknown section '%s' (did you mean '%s'?)", name,
                          hint);
        return yt_err(ctx, root->keys[i],
                      "unknown section '%s' (known: proxy, policy, log, redis, core, enroll)",
                      name);
    }
    return 0;
}

/* "redis:" with nothing after it means the section with all its defaults. */
static const struct yt_node *section_map(const struct yt_node *n)
{
    return n && n->type == YT_SCALAR && n->null ? NULL : n;
}

static int load_tree(struct conf *c, struct yt_ctx *ctx)
{
    const struct yt_node *root = yt_root(c->doc);
    int rc;
    if (!root || (root->type == YT_SCALAR && root->null))
        return yt_err(ctx, NULL, "the configuration is empty");
    if (root->type != YT_MAP)
        return yt_err(ctx, root, "the configuration must be a map of sections, not a %s",
                      yt_type_name(root->type));
    if ((rc = check_top(root, ctx)))
        return rc;

    const struct yt_node *n = yt_get(root, "proxy");
    c->has_proxy = n != NULL;
    if (n && n->type != YT_MAP && !n->null)
        return yt_err(ctx, n, "proxy: expected a map, got a %s", yt_type_name(n->type));
    if (n && !section_map(n))
        return yt_err(ctx, n, "proxy: missing required key 'instances'");
    if (n && (rc = yt_apply(proxy_keys, n, &c->proxy, ctx)))
        return rc;

    if ((n = yt_get(root, "policy")) && !n->null) {
        const char *path;
        if (n->type != YT_SCALAR)
            return yt_err(ctx, n, "policy: expected the policy file's path, got a %s",
                          yt_type_name(n->type));
        if ((rc = yt_scalar_str(ctx, n, &path)))
            return rc;
        if (!*path)
            return yt_err(ctx, n, "policy: empty path");
        if (!(c->policy_path = resolve(ctx, path)))
            return yt_err(ctx, n, "out of memory");
    }

    if ((rc = yt_apply(log_keys, section_map(yt_get(root, "log")), &c->log, ctx)))
        return rc;

    n = yt_get(root, "redis");
    c->redis.enabled = n != NULL;
    if ((rc = yt_apply(redis_keys, section_map(n), &c->redis, ctx)))
        return rc;

    for (size_t i = 0; i < n_registry; i++) {
        n = yt_get(root, registry[i]->name);
        if (!n)
            continue;
        void *sec = yt_alloc(c->doc, registry[i]->size ? registry[i]->size : 1);
        if (!sec)
            return yt_err(ctx, n, "out of memory");
        if ((rc = yt_apply(registry[i]->keys, section_map(n), sec, ctx)))
            return rc;
        c->sections[i] = sec;
    }
    return 0;
}

static char *dir_of(struct yt_doc *doc, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return yt_strdup(doc, ".");
    if (slash == path)
        return yt_strdup(doc, "/");
    return yt_strndup(doc, path, (size_t)(slash - path));
}

static int finish(struct yt_doc *doc, const char *path, const char *dir, struct conf **out,
                  char *err, size_t errlen)
{
    struct conf *c = yt_alloc(doc, sizeof(*c));
    if (!c) {
        yt_free(doc);
        return -ENOMEM;
    }
    c->doc = doc;
    c->path = yt_doc_name(doc);
    c->dir = dir ? yt_strdup(doc, dir) : (path ? dir_of(doc, path) : NULL);
    struct yt_ctx ctx = {.doc = doc, .dir = c->dir, .err = err, .errlen = errlen};
    int rc = load_tree(c, &ctx);
    if (rc) {
        yt_free(doc);
        return rc;
    }
    *out = c;
    return 0;
}

int conf_load(const char *path, struct conf **out, char *err, size_t errlen)
{
    struct yt_doc *doc;
    *out = NULL;
    int rc = yt_load_file(path, &doc, err, errlen);
    if (rc)
        return rc;
    return finish(doc, path, NULL, out, err, errlen);
}

int conf_load_buf(const char *name, const char *dir, const char *buf, size_t len, struct conf **out,
                  char *err, size_t errlen)
{
    struct yt_doc *doc;
    *out = NULL;
    int rc = yt_load_buf(name, buf, len, &doc, err, errlen);
    if (rc)
        return rc;
    return finish(doc, NULL, dir, out, err, errlen);
}

void conf_free(struct conf *c)
{
    if (c)
        yt_free(c->doc); /* c itself lives in the doc's arena */
}

const void *conf_section(const struct conf *c, const char *name)
{
    for (size_t i = 0; i < n_registry; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return c->sections[i];
    return NULL;
}

const struct yt_node *conf_section_node(const struct conf *c, const char *name)
{
    return yt_get(yt_root(c->doc), name);
}

void conf_print(FILE *f, const struct conf *c)
{
    fprintf(f, "# effective configuration from %s (defaults included)\n", c->path);
    if (c->has_proxy) {
        fputs("proxy:\n", f);
        yt_print(f, proxy_keys, &c->proxy, 2);
    } else {
        fputs("# proxy: not configured\n", f);
    }
    if (c->policy_path)
        fprintf(f, "policy: \"%s\"\n", c->policy_path);
    else
        fputs("# policy: not configured\n", f);
    fputs("log:\n", f);
    yt_print(f, log_keys, &c->log, 2);
    if (c->redis.enabled) {
        fputs("redis:\n", f);
        yt_print(f, redis_keys, &c->redis, 2);
    } else {
        fputs("# redis: not configured (device state: unknown_devices applies)\n", f);
    }
    for (size_t i = 0; i < n_registry; i++) {
        if (!c->sections[i])
            continue;
        fprintf(f, "%s:\n", registry[i]->name);
        yt_print(f, registry[i]->keys, c->sections[i], 2);
    }
    for (size_t i = 0; i < N_RESERVED; i++) {
        bool registered = false;
        for (size_t j = 0; j < n_registry; j++)
            registered |= strcmp(registry[j]->name, reserved_sections[i]) == 0;
        if (!registered && conf_section_node(c, reserved_sections[i]))
            fprintf(f, "# %s: present, checked by its own role\n", reserved_sections[i]);
    }
}
