/*
 * compliance_load: the `compliance:` section of policy.yaml as a ytree key
 * table, so defaults live in one place, every error carries FILE:LINE:COL and
 * `easgate check` prints the effective values with the rest of the policy.
 */
#include "policy/compliance.h"

#include "common/ytree.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The shape yt_apply fills; plain int/bool fields so the table's types match. */
struct load {
    struct compliance_rules r;
    int unmanaged;
    int max_devices;
    int os_source;
};

static const char *const unmanaged_names[] = {"allow", "block", "quarantine", NULL};
/* In enum compliance_os_source's order. */
static const char *const os_source_names[] = {"authenticated", "eas_fallback", NULL};

static int load_os_min(const struct yt_node *n, void *field, struct yt_ctx *ctx)
{
    struct compliance_rules *r = field;
    int rc = yt_want(ctx, n, YT_MAP, "a map of OS family to version, e.g. { iOS: \"16.0\" }");
    if (rc < 0)
        return rc;
    if (n->n > COMPLIANCE_MAX_OS)
        return yt_err(ctx, n, "min_os_version: at most %d OS families", COMPLIANCE_MAX_OS);
    r->n_os_min = 0;
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *k = n->keys[i], *v = n->items[i];
        if (k->len == 0 || k->len >= COMPLIANCE_OS_FAMILY_MAX)
            return yt_err(ctx, k, "min_os_version: OS family must be 1 to %d characters",
                          COMPLIANCE_OS_FAMILY_MAX - 1);
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(r->os_min[j].family, k->str) == 0)
                return yt_err(ctx, k, "min_os_version: '%s' is listed twice (case is ignored)",
                              k->str);
        const char *text;
        rc = yt_scalar_str(ctx, v, &text);
        if (rc < 0)
            return rc;
        struct compliance_os_min *m = &r->os_min[r->n_os_min];
        if (compliance_ver_parse(text, &m->min) < 0)
            return yt_err(ctx, v,
                          "min_os_version %s: '%s' is not a version (want digits and dots, "
                          "e.g. \"16\", \"16.4\" or \"16.4.1\")",
                          k->str, text);
        memcpy(m->family, k->str, k->len + 1);
        r->n_os_min++;
    }
    return 0;
}

static void fmt_ver(const struct compliance_ver *v, char *buf, size_t len)
{
    size_t n = COMPLIANCE_VER_PARTS;
    while (n > 1 && v->part[n - 1] == 0)
        n--;
    size_t at = 0;
    for (size_t i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, i ? ".%u" : "%u", v->part[i]);
}

static void print_os_min(FILE *f, const void *field)
{
    const struct compliance_rules *r = field;
    fputs("{", f);
    for (size_t i = 0; i < r->n_os_min; i++) {
        char v[64];
        fmt_ver(&r->os_min[i].min, v, sizeof(v));
        fprintf(f, "%s %s: \"%s\"", i ? "," : "", r->os_min[i].family, v);
    }
    fputs(r->n_os_min ? " }" : "}", f);
}

static const struct yt_key compliance_keys[] = {
    {.name = "require_passcode",
     .type = YK_BOOL,
     .off = offsetof(struct load, r.require_passcode),
     .def = "false"},
    {.name = "require_encryption",
     .type = YK_BOOL,
     .off = offsetof(struct load, r.require_encryption),
     .def = "false"},
    {.name = "block_jailbroken",
     .type = YK_BOOL,
     .off = offsetof(struct load, r.block_jailbroken),
     .def = "false"},
    {.name = "min_os_version",
     .type = YK_FN,
     .off = offsetof(struct load, r),
     .fn = load_os_min,
     .print = print_os_min},
    {.name = "max_checkin_age",
     .type = YK_DUR,
     .off = offsetof(struct load, r.max_checkin_age_ms),
     .def = "0"},
    {.name = "grace_period",
     .type = YK_DUR,
     .off = offsetof(struct load, r.grace_period_ms),
     .def = "0"},
    {.name = "unmanaged_devices",
     .type = YK_ENUM,
     .off = offsetof(struct load, unmanaged),
     .def = "block",
     .enums = unmanaged_names},
    {.name = "max_devices_per_user",
     .type = YK_INT,
     .off = offsetof(struct load, max_devices),
     .def = "0",
     .min = 0,
     .max = 100000},
    {.name = "groups", .type = YK_STRLIST, .off = offsetof(struct load, r.groups)},
    {.name = "os_source",
     .type = YK_ENUM,
     .off = offsetof(struct load, os_source),
     .def = "authenticated",
     .enums = os_source_names},
    {.name = NULL},
};

int pol_compliance_load(const struct yt_node *node, struct yt_ctx *ctx,
                        struct compliance_rules *rules)
{
    if (node && !node->null) {
        int rc = yt_want(ctx, node, YT_MAP, "a map of compliance rules");
        if (rc < 0)
            return rc;
    }
    struct load l;
    memset(&l, 0, sizeof(l));
    compliance_rules_init(&l.r);
    int rc = yt_apply(compliance_keys, node && !node->null ? node : NULL, &l, ctx);
    if (rc < 0)
        return rc;
    const struct yt_node *g = node && node->type == YT_MAP ? yt_get(node, "groups") : NULL;
    for (size_t i = 0; g && i < l.r.groups.n; i++)
        if (!l.r.groups.v[i][0])
            return yt_err(ctx, g->type == YT_SEQ ? g->items[i] : g, "groups: empty entry");
    if (g && l.r.groups.n) {
        l.r.groups_line = g->line;
        l.r.groups_col = g->col;
    }
    *rules = l.r;
    rules->present = true;
    /* Table order (allow, block, quarantine) is the state enum's order. */
    rules->unmanaged = (enum compliance_state)l.unmanaged;
    rules->max_devices_per_user = (uint32_t)l.max_devices;
    rules->os_source = (enum compliance_os_source)l.os_source;
    return 0;
}

int pol_compliance_unify(struct compliance_rules *r, const struct yt_node *compliance,
                         enum compliance_state unknown, const struct yt_node *unknown_node,
                         struct yt_ctx *ctx)
{
    const struct yt_node *n =
        compliance && compliance->type == YT_MAP ? yt_get(compliance, "unmanaged_devices") : NULL;
    r->unmanaged_set = n != NULL;
    if (!n) {
        r->unmanaged = unknown;
        return 0;
    }
    if (unknown == COMPLIANCE_BLOCK || r->unmanaged == unknown)
        return 0; /* only devices an admin added or approved are unmanaged then */
    char where[32] = "its default";
    if (unknown_node)
        snprintf(where, sizeof(where), "line %d", unknown_node->line);
    return yt_err(ctx, n,
                  "unmanaged_devices: %s contradicts unknown_devices: %s (%s): a phone the proxy "
                  "lets through is recorded as unmanaged by its first answer from Exchange and "
                  "then gets %s; remove unmanaged_devices (it follows unknown_devices) or write "
                  "the same value in both",
                  compliance_state_name(r->unmanaged), compliance_state_name(unknown), where,
                  compliance_state_name(r->unmanaged));
}

void pol_compliance_print(FILE *f, const struct compliance_rules *rules, int indent)
{
    struct load l;
    memset(&l, 0, sizeof(l));
    l.r = *rules;
    l.unmanaged = (int)rules->unmanaged;
    l.max_devices = (int)rules->max_devices_per_user;
    l.os_source = (int)rules->os_source;
    yt_print(f, compliance_keys, &l, indent);
}
