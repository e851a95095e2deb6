/*
 * core_dir: the key table of core.directory and the schema defaults. See
 * dir.h and docs/directory.md.
 */
#include "core/dir.h"

#include <stddef.h>
#include <string.h>

#define SEC 1000
#define DAY (24LL * 3600 * SEC)

#define DO(f) offsetof(struct core_dir_cfg, f)
#define DA(f) (offsetof(struct core_dir_cfg, attrs.f) - offsetof(struct core_dir_cfg, attrs))

static const char *const schema_names[] = {"ad", "ldap", NULL};
static const char *const group_modes[] = {"auto", "in_chain", "member", "memberof", NULL};
static const char *const left_names[] = {"none", "block", "wipe", NULL};

/* Attributes not given take the schema's names (set by dir_check, which
 * sees the schema). */
static const struct yt_key attr_keys[] = {
    {.name = "name", .type = YK_STR, .off = DA(name)},
    {.name = "upn", .type = YK_STR, .off = DA(upn)},
    {.name = "mail", .type = YK_STR, .off = DA(mail)},
    {.name = "language", .type = YK_STR, .off = DA(language)},
    {.name = "group_name", .type = YK_STR, .off = DA(group_name)},
    {.name = "member_of", .type = YK_STR, .off = DA(member_of)},
    {0},
};

static void dflt(const char **f, const char *v)
{
    if (!*f)
        *f = v;
}

static int dir_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct core_dir_cfg *c = obj;
    c->enabled = map != NULL;
    if (!c->enabled)
        return 0;
    if (!c->url || (strncmp(c->url, "ldap://", 7) != 0 && strncmp(c->url, "ldaps://", 8) != 0))
        return yt_err(ctx, map, "directory.url: give ldap://HOST:PORT or ldaps://HOST:PORT");
    if (!c->base_dn)
        return yt_err(ctx, map, "directory.base_dn is required (where users are searched)");
    if (c->bind_password_file && c->bind_password_env)
        return yt_err(ctx, map,
                      "directory: give bind_password_file or bind_password_env, not both");
    if ((c->bind_password_file || c->bind_password_env) && !c->bind_dn)
        return yt_err(ctx, map, "directory: a bind password needs bind_dn");
    bool ad = c->schema == CORE_DIR_AD;
    dflt(&c->attrs.name, ad ? "sAMAccountName" : "uid");
    dflt(&c->attrs.upn, ad ? "userPrincipalName" : "");
    dflt(&c->attrs.mail, "mail");
    dflt(&c->attrs.language, "preferredLanguage");
    dflt(&c->attrs.group_name, "cn");
    dflt(&c->attrs.member_of, "memberOf");
    dflt(&c->user_filter,
         ad ? "(&(objectCategory=person)(objectClass=user))" : "(objectClass=inetOrgPerson)");
    dflt(&c->group_filter, ad ? "(objectClass=group)" : "(objectClass=groupOfNames)");
    /* AD: ACCOUNTDISABLE (0x2) of userAccountControl, by the bitwise-AND
     * matching rule (OpenLDAP's slapd knows it too). */
    dflt(&c->disabled_filter, ad ? "(userAccountControl:1.2.840.113556.1.4.803:=2)" : "");
    dflt(&c->group_base_dn, c->base_dn);
    if (c->groups == CORE_DIR_G_AUTO)
        c->groups = ad ? CORE_DIR_G_IN_CHAIN : CORE_DIR_G_MEMBER;
    return 0;
}

const struct yt_key core_dir_keys[] = {
    {.name = "url", .type = YK_STR, .off = DO(url)},
    {.name = "starttls", .type = YK_BOOL, .off = DO(starttls), .def = "true"},
    {.name = "ca_file", .type = YK_PATH, .off = DO(ca_file)},
    {.name = "verify", .type = YK_BOOL, .off = DO(verify), .def = "true"},
    {.name = "bind_dn", .type = YK_STR, .off = DO(bind_dn)},
    {.name = "bind_password_file", .type = YK_PATH, .off = DO(bind_password_file)},
    {.name = "bind_password_env", .type = YK_STR, .off = DO(bind_password_env)},
    {.name = "base_dn", .type = YK_STR, .off = DO(base_dn)},
    {.name = "group_base_dn", .type = YK_STR, .off = DO(group_base_dn)},
    {.name = "schema", .type = YK_ENUM, .off = DO(schema), .def = "ad", .enums = schema_names},
    {.name = "user_filter", .type = YK_STR, .off = DO(user_filter)},
    {.name = "group_filter", .type = YK_STR, .off = DO(group_filter)},
    {.name = "disabled_filter", .type = YK_STR, .off = DO(disabled_filter)},
    {.name = "attributes", .type = YK_MAP, .off = DO(attrs), .sub = attr_keys},
    {.name = "groups", .type = YK_ENUM, .off = DO(groups), .def = "auto", .enums = group_modes},
    {.name = "max_results",
     .type = YK_INT,
     .off = DO(max_results),
     .def = "1000",
     .min = 1,
     .max = 100000},
    {.name = "timeout",
     .type = YK_DUR,
     .off = DO(timeout_ms),
     .def = "5s",
     .min = 100,
     .max = 120 * SEC},
    {.name = "cache_ttl",
     .type = YK_DUR,
     .off = DO(cache_ttl_ms),
     .def = "5m",
     .min = 0,
     .max = DAY},
    {.name = "max_stale",
     .type = YK_DUR,
     .off = DO(max_stale_ms),
     .def = "4h",
     .min = 0,
     .max = 30 * DAY},
    {.name = "sync", .type = YK_DUR, .off = DO(sync_ms), .def = "1h", .min = 0, .max = 30 * DAY},
    {.name = "left_action",
     .type = YK_ENUM,
     .off = DO(left_action),
     .def = "block",
     .enums = left_names},
    {.name = "wipe_grace",
     .type = YK_DUR,
     .off = DO(wipe_grace_ms),
     .def = "7d",
     .min = 0,
     .max = 365 * DAY},
    {.check = dir_check},
};
