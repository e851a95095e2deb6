/*
 * core_dir: lookups over libldap, and their cache. See dir.h.
 *
 * The handle connects on first use and again after any failure (the next
 * call reconnects; a directory that came back is used at once). Referrals
 * are not chased, so a lookup never wanders to a server the configuration
 * did not name: a base answered with a referral is an error naming it. A
 * subtree search that also returns continuation references (AD's domain
 * root always does: DomainDnsZones, ForestDnsZones, Configuration) is
 * answered by the entries this server has; but a user or group looked up
 * by name and not found here while the search was referred elsewhere is an
 * error ("cannot say"), never "no such user": the sync would take that
 * for a user who left and block the devices. Every
 * search carries a size limit (max_results) and the timeout; a result
 * larger than the limit is an error, not a truncated answer.
 *
 * The cache is a small array, oldest entry replaced when full: it holds the
 * users a core asks about (invitations, the sync), a few thousand at most.
 */
#include "core/dir.h"

#include "common/log.h"

#include <ldap.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DIR_CACHE_MAX 4096
#define DIR_NEST_MAX 10 /* member mode: nesting followed this deep */
#define DIR_FILTER_MAX 8192
#define DIR_SECRET_MAX 1024

struct dir_cached {
    char key[256];
    int rc; /* 0 or CORE_DIR_ENOTFOUND: "not there" is an answer too */
    struct core_dir_user u;
};

struct core_dir {
    const struct core_dir_cfg *cfg;
    char *password;
    LDAP *ld;
    struct dir_cached *cache;
    size_t n_cache;
    bool referred; /* the last search returned continuation references */
};

int core_dir_open(const struct core_dir_cfg *cfg, struct core_dir **out, char *err, size_t errlen)
{
    *out = NULL;
    struct core_dir *d = calloc(1, sizeof(*d));
    if (!d || !(d->cache = calloc(DIR_CACHE_MAX, sizeof(*d->cache)))) {
        free(d);
        return CORE_DIR_ENOMEM;
    }
    d->cfg = cfg;
    if (cfg->bind_password_env) {
        const char *v = getenv(cfg->bind_password_env);
        if (!v || !*v) {
            eg_errf(err, errlen, "core.directory: the environment variable %s is not set",
                    cfg->bind_password_env);
            core_dir_close(d);
            return CORE_DIR_EINVAL;
        }
        d->password = strdup(v);
    } else if (cfg->bind_password_file) {
        FILE *f = fopen(cfg->bind_password_file, "r");
        char buf[DIR_SECRET_MAX];
        size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
        if (!f || !*buf) {
            eg_errf(err, errlen, "core.directory: cannot read the bind password from %s: %s",
                    cfg->bind_password_file, f ? "empty" : strerror(errno));
            core_dir_close(d);
            return CORE_DIR_EINVAL;
        }
        d->password = strdup(buf);
    }
    *out = d;
    return 0;
}

static void disconnect(struct core_dir *d)
{
    if (d->ld)
        ldap_unbind_ext_s(d->ld, NULL, NULL);
    d->ld = NULL;
}

void core_dir_close(struct core_dir *d)
{
    if (!d)
        return;
    disconnect(d);
    if (d->password) {
        memset(d->password, 0, strlen(d->password));
        free(d->password);
    }
    free(d->cache);
    free(d);
}

static int connect_dir(struct core_dir *d, char *err, size_t errlen)
{
    const struct core_dir_cfg *c = d->cfg;
    if (d->ld)
        return 0;
    LDAP *ld = NULL;
    int rc = ldap_initialize(&ld, c->url);
    if (rc != LDAP_SUCCESS) {
        eg_errf(err, errlen, "directory %s: %s", c->url, ldap_err2string(rc));
        return CORE_DIR_EUNAVAIL;
    }
    int v3 = LDAP_VERSION3, req = c->verify ? LDAP_OPT_X_TLS_DEMAND : LDAP_OPT_X_TLS_NEVER,
        zero = 0;
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
    ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &req);
    if (c->ca_file)
        ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, c->ca_file);
    /* The TLS options above apply to this handle only once its context is new. */
    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
    if (strncmp(c->url, "ldap://", 7) == 0 && c->starttls &&
        (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
        eg_errf(err, errlen, "directory %s: StartTLS failed: %s", c->url, ldap_err2string(rc));
        ldap_unbind_ext_s(ld, NULL, NULL);
        return CORE_DIR_EUNAVAIL;
    }
    struct berval cred = {d->password ? strlen(d->password) : 0, d->password};
    rc = ldap_sasl_bind_s(ld, c->bind_dn ? c->bind_dn : "", LDAP_SASL_SIMPLE, &cred, NULL, NULL,
                          NULL);
    if (rc != LDAP_SUCCESS) {
        eg_errf(err, errlen, "directory %s: bind as '%s' failed: %s", c->url,
                c->bind_dn ? c->bind_dn : "(anonymous)", ldap_err2string(rc));
        ldap_unbind_ext_s(ld, NULL, NULL);
        return CORE_DIR_EUNAVAIL;
    }
    d->ld = ld;
    return 0;
}

/* RFC 4515 escaping of a value inside a filter. */
static int esc(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (o + 4 >= n)
            return -1;
        if (*p == '*' || *p == '(' || *p == ')' || *p == '\\' || *p < 0x20)
            o += (size_t)snprintf(out + o, n - o, "\\%02x", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = 0;
    return 0;
}

/* One search; *res the result (the caller frees) on 0. */
static int search(struct core_dir *d, const char *base, int scope, const char *filter, char **attrs,
                  LDAPMessage **res, char *err, size_t errlen)
{
    const struct core_dir_cfg *c = d->cfg;
    *res = NULL;
    int rc = connect_dir(d, err, errlen);
    if (rc < 0)
        return rc;
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    rc = ldap_search_ext_s(d->ld, base, scope, filter, attrs, 0, NULL, NULL, &tv, c->max_results,
                           res);
    d->referred = false;
    if (rc == LDAP_SUCCESS) {
        /* A continuation reference points at another server: not followed;
         * the entries of this one answer (see the top of the file). */
        d->referred = ldap_first_reference(d->ld, *res) != NULL;
        return 0;
    }
    ldap_msgfree(*res);
    *res = NULL;
    if (rc == LDAP_SIZELIMIT_EXCEEDED) {
        eg_errf(err, errlen, "directory: more than %d entries match %s under '%s' (max_results)",
                c->max_results, filter, base);
        return CORE_DIR_EINVAL;
    }
    if (rc == LDAP_REFERRAL) {
        eg_errf(err, errlen, "directory: '%s' is answered with a referral (not followed)", base);
        return CORE_DIR_EINVAL;
    }
    if (rc == LDAP_NO_SUCH_OBJECT)
        return CORE_DIR_ENOTFOUND;
    eg_errf(err, errlen, "directory %s: search failed: %s", c->url, ldap_err2string(rc));
    disconnect(d); /* reconnect next time: the server may be gone or back */
    return CORE_DIR_EUNAVAIL;
}

static void first_value(LDAP *ld, LDAPMessage *e, const char *attr, char *out, size_t n)
{
    *out = 0;
    if (!attr || !*attr)
        return;
    struct berval **v = ldap_get_values_len(ld, e, attr);
    if (v && v[0])
        snprintf(out, n, "%.*s", (int)v[0]->bv_len, v[0]->bv_val);
    ldap_value_free_len(v);
}

static void add_group(struct core_dir_user *u, const char *name)
{
    for (size_t i = 0; i < u->n_groups; i++)
        if (strcasecmp(u->groups[i], name) == 0)
            return;
    if (u->n_groups < CORE_DIR_MAX_GROUPS)
        snprintf(u->groups[u->n_groups++], sizeof(u->groups[0]), "%s", name);
}

int core_dir_chain_filter(const struct core_dir_cfg *cfg, const char *dn, char *out, size_t n)
{
    char e[1024];
    if (esc(dn, e, sizeof(e)) < 0)
        return CORE_DIR_EINVAL;
    /* 1.2.840.113556.1.4.1941: LDAP_MATCHING_RULE_IN_CHAIN (AD walks the nesting). */
    int k = snprintf(out, n, "(&%s(member:1.2.840.113556.1.4.1941:=%s))", cfg->group_filter, e);
    return k < 0 || (size_t)k >= n ? CORE_DIR_EINVAL : 0;
}

/* Groups of u (u->dn known): names into u->groups. */
static int groups_of(struct core_dir *d, struct core_dir_user *u, LDAPMessage *entry, char *err,
                     size_t errlen)
{
    const struct core_dir_cfg *c = d->cfg;
    char *attrs[] = {(char *)c->attrs.group_name, NULL};
    char name[128];
    if (c->groups == CORE_DIR_G_MEMBEROF) {
        struct berval **v = ldap_get_values_len(d->ld, entry, c->attrs.member_of);
        for (size_t i = 0; v && v[i]; i++) {
            /* the first RDN's value: "cn=Sales,ou=..." -> Sales */
            const char *s = memchr(v[i]->bv_val, '=', v[i]->bv_len);
            if (!s)
                continue;
            size_t l = strcspn(s + 1, ",");
            snprintf(name, sizeof(name), "%.*s", (int)l, s + 1);
            add_group(u, name);
        }
        ldap_value_free_len(v);
        return 0;
    }
    char *filter = malloc(DIR_FILTER_MAX);
    if (!filter)
        return CORE_DIR_ENOMEM;
    int rc = 0;
    if (c->groups == CORE_DIR_G_IN_CHAIN) {
        LDAPMessage *res;
        if ((rc = core_dir_chain_filter(c, u->dn, filter, DIR_FILTER_MAX)) == 0 &&
            (rc = search(d, c->group_base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, &res, err,
                         errlen)) == 0) {
            for (LDAPMessage *e = ldap_first_entry(d->ld, res); e; e = ldap_next_entry(d->ld, e)) {
                first_value(d->ld, e, c->attrs.group_name, name, sizeof(name));
                if (*name)
                    add_group(u, name);
            }
            ldap_msgfree(res);
        }
        free(filter);
        return rc == CORE_DIR_ENOTFOUND ? 0 : rc;
    }
    /* member: the groups naming the user, then the groups naming those, ... */
    char(*frontier)[512] = calloc(CORE_DIR_MAX_GROUPS + 1, sizeof(*frontier));
    char(*seen)[512] = calloc(CORE_DIR_MAX_GROUPS, sizeof(*seen));
    size_t nf = 1, ns = 0;
    if (!frontier || !seen) {
        free(frontier);
        free(seen);
        free(filter);
        return CORE_DIR_ENOMEM;
    }
    snprintf(frontier[0], sizeof(frontier[0]), "%s", u->dn);
    for (int depth = 0; depth < DIR_NEST_MAX && nf && rc == 0; depth++) {
        size_t k = (size_t)snprintf(filter, DIR_FILTER_MAX, "(&%s(|", c->group_filter);
        for (size_t i = 0; i < nf && k < DIR_FILTER_MAX; i++) {
            char e[1100];
            if (esc(frontier[i], e, sizeof(e)) == 0)
                k += (size_t)snprintf(filter + k, DIR_FILTER_MAX - k, "(member=%s)", e);
        }
        if (k + 3 >= DIR_FILTER_MAX) {
            eg_errf(err, errlen, "directory: group nesting too wide to follow");
            rc = CORE_DIR_EINVAL;
            break;
        }
        snprintf(filter + k, DIR_FILTER_MAX - k, "))");
        LDAPMessage *res;
        rc = search(d, c->group_base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, &res, err, errlen);
        if (rc == CORE_DIR_ENOTFOUND) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        nf = 0;
        for (LDAPMessage *e = ldap_first_entry(d->ld, res); e; e = ldap_next_entry(d->ld, e)) {
            char *dn = ldap_get_dn(d->ld, e);
            bool old = false;
            for (size_t i = 0; dn && i < ns; i++)
                old |= strcasecmp(seen[i], dn) == 0;
            if (dn && !old && ns < CORE_DIR_MAX_GROUPS) {
                snprintf(seen[ns++], sizeof(seen[0]), "%s", dn);
                snprintf(frontier[nf++], sizeof(frontier[0]), "%s", dn);
                first_value(d->ld, e, c->attrs.group_name, name, sizeof(name));
                if (*name)
                    add_group(u, name);
            }
            ldap_memfree(dn);
        }
        ldap_msgfree(res);
    }
    free(frontier);
    free(seen);
    free(filter);
    return rc;
}

static void fill_user(struct core_dir *d, LDAPMessage *entry, struct core_dir_user *u)
{
    const struct core_dir_cfg *c = d->cfg;
    char *dn = ldap_get_dn(d->ld, entry);
    snprintf(u->dn, sizeof(u->dn), "%s", dn ? dn : "");
    ldap_memfree(dn);
    first_value(d->ld, entry, c->attrs.name, u->name, sizeof(u->name));
    first_value(d->ld, entry, c->attrs.upn, u->upn, sizeof(u->upn));
    first_value(d->ld, entry, c->attrs.mail, u->mail, sizeof(u->mail));
    first_value(d->ld, entry, c->attrs.language, u->lang, sizeof(u->lang));
}

/* The server decides (AD's bit test runs there): the entry matches or not. */
static int check_disabled(struct core_dir *d, struct core_dir_user *u, char *err, size_t errlen)
{
    if (!*d->cfg->disabled_filter)
        return 0;
    char *none[] = {"1.1", NULL};
    LDAPMessage *res;
    int rc = search(d, u->dn, LDAP_SCOPE_BASE, d->cfg->disabled_filter, none, &res, err, errlen);
    if (rc < 0)
        return rc;
    u->disabled = ldap_count_entries(d->ld, res) > 0;
    ldap_msgfree(res);
    return 0;
}

/* Ask the directory. */
static int fetch(struct core_dir *d, const char *who, int64_t now_ms, struct core_dir_user *u,
                 char *err, size_t errlen)
{
    const struct core_dir_cfg *c = d->cfg;
    memset(u, 0, sizeof(*u));
    char e[768], filter[2048];
    if (esc(who, e, sizeof(e)) < 0)
        return CORE_DIR_EINVAL;
    int k = snprintf(filter, sizeof(filter), "(&%s(|(%s=%s)", c->user_filter, c->attrs.name, e);
    if (*c->attrs.upn)
        k += snprintf(filter + k, sizeof(filter) - (size_t)k, "(%s=%s)", c->attrs.upn, e);
    if (*c->attrs.mail)
        k += snprintf(filter + k, sizeof(filter) - (size_t)k, "(%s=%s)", c->attrs.mail, e);
    if (k < 0 || (size_t)k + 3 >= sizeof(filter))
        return CORE_DIR_EINVAL;
    snprintf(filter + k, sizeof(filter) - (size_t)k, "))");
    char *attrs[] = {(char *)c->attrs.name,     (char *)c->attrs.upn,       (char *)c->attrs.mail,
                     (char *)c->attrs.language, (char *)c->attrs.member_of, NULL};
    LDAPMessage *res;
    int rc = search(d, c->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, &res, err, errlen);
    if (rc < 0)
        return rc;
    int n = ldap_count_entries(d->ld, res);
    if (n != 1) {
        ldap_msgfree(res);
        if (n == 0 && d->referred) {
            eg_errf(err, errlen,
                    "directory: '%s' is not under '%s' on this server, and the search was "
                    "referred to another (not followed): the directory cannot say; point base_dn "
                    "at the naming context that holds the users",
                    who, c->base_dn);
            return CORE_DIR_EINVAL;
        }
        if (n == 0)
            return CORE_DIR_ENOTFOUND;
        eg_errf(err, errlen, "directory: %d entries match '%s'; names must be unique", n, who);
        return CORE_DIR_EINVAL;
    }
    LDAPMessage *entry = ldap_first_entry(d->ld, res);
    fill_user(d, entry, u);
    rc = groups_of(d, u, entry, err, errlen);
    ldap_msgfree(res);
    if (rc == 0)
        rc = check_disabled(d, u, err, errlen);
    u->fetched_ms = now_ms;
    return rc;
}

static struct dir_cached *cache_find(struct core_dir *d, const char *key)
{
    for (size_t i = 0; i < d->n_cache; i++)
        if (strcasecmp(d->cache[i].key, key) == 0)
            return &d->cache[i];
    return NULL;
}

static void cache_put(struct core_dir *d, const char *key, int rc, const struct core_dir_user *u)
{
    struct dir_cached *c = cache_find(d, key);
    if (!c && d->n_cache < DIR_CACHE_MAX)
        c = &d->cache[d->n_cache++];
    if (!c) { /* full: the oldest answer goes */
        c = &d->cache[0];
        for (size_t i = 1; i < d->n_cache; i++)
            if (d->cache[i].u.fetched_ms < c->u.fetched_ms)
                c = &d->cache[i];
    }
    snprintf(c->key, sizeof(c->key), "%s", key);
    c->rc = rc;
    c->u = *u;
}

int core_dir_lookup(struct core_dir *d, const char *who, int64_t now_ms, struct core_dir_user *out,
                    char *err, size_t errlen)
{
    if (!who || !*who || strlen(who) > 255) {
        eg_errf(err, errlen, "directory: no user name to look up");
        return CORE_DIR_EINVAL;
    }
    struct dir_cached *c = cache_find(d, who);
    if (c && now_ms - c->u.fetched_ms < d->cfg->cache_ttl_ms) {
        *out = c->u;
        return c->rc;
    }
    int rc = fetch(d, who, now_ms, out, err, errlen);
    if (rc == 0 || rc == CORE_DIR_ENOTFOUND) {
        out->fetched_ms = now_ms;
        cache_put(d, who, rc, out);
        if (rc == CORE_DIR_ENOTFOUND)
            eg_errf(err, errlen, "'%s' is not in the directory", who);
        return rc;
    }
    if (rc == CORE_DIR_EUNAVAIL && c && now_ms - c->u.fetched_ms < d->cfg->max_stale_ms) {
        eg_warn("directory: %s; answering for '%s' from the cache (%lld s old)", err, who,
                (long long)((now_ms - c->u.fetched_ms) / 1000));
        *out = c->u;
        out->stale = true;
        return c->rc;
    }
    return rc;
}

bool core_dir_in_group(const struct core_dir_user *u, const char *group)
{
    for (size_t i = 0; i < u->n_groups; i++)
        if (strcasecmp(u->groups[i], group) == 0)
            return true;
    return false;
}

const struct core_dir_cfg *core_dir_cfg_of(const struct core_dir *d)
{
    return d->cfg;
}

/* ---- a group's members ------------------------------------------------------ */

struct members {
    struct core_dir_user *v;
    size_t n, cap;
};

static int members_add(struct members *m, const struct core_dir_user *u)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcasecmp(m->v[i].dn, u->dn) == 0)
            return 0;
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 32;
        struct core_dir_user *v = realloc(m->v, cap * sizeof(*v));
        if (!v)
            return CORE_DIR_ENOMEM;
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n++] = *u;
    return 0;
}

/* dn as a user entry (user_filter), into *u: 0, ENOTFOUND when it is not one. */
static int user_at(struct core_dir *d, const char *dn, struct core_dir_user *u, char *err,
                   size_t errlen)
{
    const struct core_dir_cfg *c = d->cfg;
    char *attrs[] = {(char *)c->attrs.name, (char *)c->attrs.upn, (char *)c->attrs.mail,
                     (char *)c->attrs.language, NULL};
    LDAPMessage *res;
    int rc = search(d, dn, LDAP_SCOPE_BASE, c->user_filter, attrs, &res, err, errlen);
    if (rc < 0)
        return rc;
    LDAPMessage *e = ldap_first_entry(d->ld, res);
    if (!e) {
        ldap_msgfree(res);
        return CORE_DIR_ENOTFOUND;
    }
    memset(u, 0, sizeof(*u));
    fill_user(d, e, u);
    ldap_msgfree(res);
    return check_disabled(d, u, err, errlen);
}

/* member mode: the group's member values, groups among them followed down. */
static int members_down(struct core_dir *d, const char *group_dn, struct members *m, char *err,
                        size_t errlen)
{
    const struct core_dir_cfg *c = d->cfg;
    char(*queue)[512] = calloc(CORE_DIR_MAX_GROUPS, sizeof(*queue));
    if (!queue)
        return CORE_DIR_ENOMEM;
    size_t nq = 0, head = 0;
    snprintf(queue[nq++], sizeof(queue[0]), "%s", group_dn);
    int rc = 0;
    while (head < nq && rc == 0) {
        char *attrs[] = {"member", NULL};
        LDAPMessage *res;
        rc = search(d, queue[head++], LDAP_SCOPE_BASE, "(objectClass=*)", attrs, &res, err, errlen);
        if (rc < 0)
            break;
        LDAPMessage *e = ldap_first_entry(d->ld, res);
        struct berval **v = e ? ldap_get_values_len(d->ld, e, "member") : NULL;
        for (size_t i = 0; v && v[i] && rc == 0; i++) {
            char dn[512];
            snprintf(dn, sizeof(dn), "%.*s", (int)v[i]->bv_len, v[i]->bv_val);
            struct core_dir_user u;
            rc = user_at(d, dn, &u, err, errlen);
            if (rc == 0) {
                if (m->n >= (size_t)c->max_results) {
                    eg_errf(err, errlen,
                            "directory: the group has more than %d members "
                            "(max_results)",
                            c->max_results);
                    rc = CORE_DIR_EINVAL;
                } else {
                    rc = members_add(m, &u);
                }
                continue;
            }
            if (rc != CORE_DIR_ENOTFOUND)
                break;
            rc = 0; /* not a user: a nested group? */
            LDAPMessage *g;
            char *none[] = {"1.1", NULL};
            int grc = search(d, dn, LDAP_SCOPE_BASE, c->group_filter, none, &g, err, errlen);
            if (grc == 0 && ldap_first_entry(d->ld, g)) {
                bool seen = false;
                for (size_t k = 0; k < nq; k++)
                    seen |= strcasecmp(queue[k], dn) == 0;
                if (!seen && nq < CORE_DIR_MAX_GROUPS)
                    snprintf(queue[nq++], sizeof(queue[0]), "%s", dn);
            }
            if (grc == 0)
                ldap_msgfree(g);
            else if (grc != CORE_DIR_ENOTFOUND)
                rc = grc;
        }
        ldap_value_free_len(v);
        ldap_msgfree(res);
    }
    free(queue);
    return rc;
}

/* in_chain mode: one search for the users in the group at any depth. */
static int members_chain(struct core_dir *d, const char *group_dn, struct members *m, char *err,
                         size_t errlen)
{
    const struct core_dir_cfg *c = d->cfg;
    char e[1100], filter[2048];
    if (esc(group_dn, e, sizeof(e)) < 0)
        return CORE_DIR_EINVAL;
    snprintf(filter, sizeof(filter), "(&%s(%s:1.2.840.113556.1.4.1941:=%s))", c->user_filter,
             c->attrs.member_of, e);
    char *attrs[] = {(char *)c->attrs.name, (char *)c->attrs.upn, (char *)c->attrs.mail,
                     (char *)c->attrs.language, NULL};
    LDAPMessage *res;
    int rc = search(d, c->base_dn, LDAP_SCOPE_SUBTREE, filter, attrs, &res, err, errlen);
    if (rc < 0)
        return rc == CORE_DIR_ENOTFOUND ? 0 : rc;
    for (LDAPMessage *x = ldap_first_entry(d->ld, res); x && rc == 0;
         x = ldap_next_entry(d->ld, x)) {
        struct core_dir_user u;
        memset(&u, 0, sizeof(u));
        fill_user(d, x, &u);
        rc = members_add(m, &u);
    }
    ldap_msgfree(res);
    for (size_t i = 0; i < m->n && rc == 0; i++)
        rc = check_disabled(d, &m->v[i], err, errlen);
    return rc;
}

int core_dir_group_members(struct core_dir *d, const char *group, struct core_dir_user **out,
                           size_t *n, char *err, size_t errlen)
{
    const struct core_dir_cfg *c = d->cfg;
    *out = NULL;
    *n = 0;
    char e[768], filter[1024];
    if (!group || !*group || esc(group, e, sizeof(e)) < 0) {
        eg_errf(err, errlen, "directory: no group name");
        return CORE_DIR_EINVAL;
    }
    snprintf(filter, sizeof(filter), "(&%s(%s=%s))", c->group_filter, c->attrs.group_name, e);
    char *none[] = {"1.1", NULL};
    LDAPMessage *res;
    int rc = search(d, c->group_base_dn, LDAP_SCOPE_SUBTREE, filter, none, &res, err, errlen);
    if (rc < 0) {
        if (rc == CORE_DIR_ENOTFOUND)
            eg_errf(err, errlen, "no group '%s' in the directory", group);
        return rc;
    }
    int cnt = ldap_count_entries(d->ld, res);
    char dn[512] = "";
    if (cnt == 1) {
        char *x = ldap_get_dn(d->ld, ldap_first_entry(d->ld, res));
        snprintf(dn, sizeof(dn), "%s", x ? x : "");
        ldap_memfree(x);
    }
    ldap_msgfree(res);
    if (cnt != 1) {
        if (cnt)
            eg_errf(err, errlen, "directory: %d groups are named '%s'", cnt, group);
        else if (d->referred)
            eg_errf(err, errlen,
                    "directory: no group '%s' on this server, and the search was referred to "
                    "another (not followed): the directory cannot say",
                    group);
        else
            eg_errf(err, errlen, "no group '%s' in the directory", group);
        return cnt || d->referred ? CORE_DIR_EINVAL : CORE_DIR_ENOTFOUND;
    }
    struct members m = {0};
    rc = c->groups == CORE_DIR_G_IN_CHAIN ? members_chain(d, dn, &m, err, errlen)
                                          : members_down(d, dn, &m, err, errlen);
    if (rc < 0) {
        free(m.v);
        return rc;
    }
    *out = m.v;
    *n = m.n;
    return 0;
}
