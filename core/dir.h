/*
 * core_dir: users and groups from LDAP or Active Directory (core.directory,
 * docs/directory.md), over OpenLDAP's libldap.
 *
 * A lookup finds one user by name, UPN or e-mail address (attribute names
 * from the configuration, AD or generic LDAP defaults), tells whether the
 * account is disabled (a server-side filter: AD's userAccountControl bit 2
 * by default) and lists its groups, nested ones included (AD:
 * LDAP_MATCHING_RULE_IN_CHAIN in one search; OpenLDAP: member, followed
 * upward; or the memberOf attribute).
 *
 * Answers are cached. A fresh one (cache_ttl) is served without asking; when
 * the directory cannot be reached, a cached answer younger than max_stale is
 * served marked stale, and past that the lookup fails with
 * CORE_DIR_EUNAVAIL: callers refuse (an invitation is not made, a sync acts
 * on nobody). Nothing is ever assumed about a user the directory did not
 * answer for: there is no fail-open path.
 *
 * One struct core_dir per thread (a libldap handle is not shared). Calls
 * block for at most the configured timeout per server round trip; the
 * core's sync runs on a thread of its own, never on an event loop.
 *
 * Errors: 0 or CORE_DIR_E*, with a sentence in err.
 */
#ifndef EG_CORE_DIR_H
#define EG_CORE_DIR_H

#include "common/ytree.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    CORE_DIR_ENOTFOUND = -1, /* no such user (or group) */
    CORE_DIR_EUNAVAIL = -2,  /* the directory did not answer and nothing fresh enough is cached */
    CORE_DIR_EINVAL = -3,    /* bad input, or more than one entry matches */
    CORE_DIR_ENOMEM = -4
};

enum core_dir_schema { CORE_DIR_AD, CORE_DIR_LDAP };
enum core_dir_groups {
    CORE_DIR_G_AUTO,
    CORE_DIR_G_IN_CHAIN,
    CORE_DIR_G_MEMBER,
    CORE_DIR_G_MEMBEROF
};
enum core_dir_left { CORE_DIR_LEFT_NONE, CORE_DIR_LEFT_BLOCK, CORE_DIR_LEFT_WIPE };

struct core_dir_cfg {
    bool enabled; /* the section is present */
    const char *url;
    bool starttls; /* ldap:// only; ldaps:// is TLS from the start */
    const char *ca_file;
    bool verify;
    const char *bind_dn, *bind_password_file, *bind_password_env;
    const char *base_dn, *group_base_dn; /* group_base_dn NULL = base_dn */
    int schema;                          /* enum core_dir_schema: the defaults below */
    const char *user_filter, *group_filter, *disabled_filter; /* "" = no disabled accounts */
    struct {
        const char *name, *upn, *mail, *language, *group_name, *member_of;
    } attrs;
    int groups; /* enum core_dir_groups */
    int max_results;
    int64_t timeout_ms, cache_ttl_ms, max_stale_ms, sync_ms, wipe_grace_ms;
    int left_action; /* enum core_dir_left */
};

extern const struct yt_key core_dir_keys[];

#define CORE_DIR_MAX_GROUPS 64

struct core_dir_user {
    char dn[512], name[256], upn[256], mail[256], lang[16];
    bool disabled;
    char groups[CORE_DIR_MAX_GROUPS][128]; /* group names (the group_name attribute) */
    size_t n_groups;
    int64_t fetched_ms; /* when the directory said so */
    bool stale;         /* served from the cache because the directory is away */
};

struct core_dir;

/* Read the bind password; connect lazily (the first lookup). */
int core_dir_open(const struct core_dir_cfg *cfg, struct core_dir **out, char *err, size_t errlen);
void core_dir_close(struct core_dir *d);

/* The user whose name, UPN or mail is who. */
int core_dir_lookup(struct core_dir *d, const char *who, int64_t now_ms, struct core_dir_user *out,
                    char *err, size_t errlen);

/*
 * The users in group (by name), nested groups included (in_chain: AD's
 * matching rule over memberOf; otherwise the member values followed down),
 * each with mail, language and disabled; never cached (an admin action).
 * *out is malloc'd (the caller frees it); more than max_results is an error.
 */
int core_dir_group_members(struct core_dir *d, const char *group, struct core_dir_user **out,
                           size_t *n, char *err, size_t errlen);

/* Whether u is in group (by name, case-insensitive). */
bool core_dir_in_group(const struct core_dir_user *u, const char *group);

/* The filter that finds the groups of dn in chain mode (AD); for tests and docs. */
int core_dir_chain_filter(const struct core_dir_cfg *cfg, const char *dn, char *out, size_t n);

/* ---- the sync (core/dir_sync.c) ------------------------------------------- */

struct core_wr;

struct core_dir_sync_stats {
    size_t users, gone, disabled, unavailable, blocked, wiped;
};

/*
 * One pass from the CLI: every user with managed devices is looked up; the
 * devices of one the directory no longer has, or has disabled, get
 * left_action (block now; wipe once blocked by the directory for
 * wipe_grace), written through eng (its registry and Redis). The running
 * core does the same every sync on its own thread, through its writer.
 */
struct core_eng;
int core_dir_sync(struct core_dir *d, struct core_eng *eng, int64_t now_ms,
                  struct core_dir_sync_stats *st, char *err, size_t errlen);

/* The configuration d was opened with. */
const struct core_dir_cfg *core_dir_cfg_of(const struct core_dir *d);

struct core_dir_syncer;
/* The core's periodic sync on a thread of its own (sync_ms; 0 = none). */
int core_dir_syncer_start(const struct core_dir_cfg *cfg, const char *database, struct core_wr *wr,
                          struct core_dir_syncer **out, char *err, size_t errlen);
void core_dir_syncer_stop(struct core_dir_syncer *s);

/* ---- group membership for device rules (core/dir_groups.c) -------------- */

/*
 * One table per process. core_dirgrp_setup (core_ctx_open) turns it on
 * for cfg (a no-op without core.directory): lookups are then made inline,
 * on the caller's thread (the CLI). The running core calls
 * core_dirgrp_defer before its writer starts (misses are queued, never
 * asked on the writer) and core_dirgrp_start once it runs: a thread asks
 * the directory and has wr evaluate the users' devices again; warm_up
 * queues every user with devices first. core_dirgrp_stop ends the thread
 * (before the writer stops); core_dirgrp_release (core_ctx_close) undoes
 * one setup, and the last one frees the table.
 */
struct yt_strv;
int core_dirgrp_setup(const struct core_dir_cfg *cfg, char *err, size_t errlen);
void core_dirgrp_defer(void);
int core_dirgrp_start(const char *database, struct core_wr *wr, bool warm_up, char *err,
                      size_t errlen);
void core_dirgrp_stop(void);
void core_dirgrp_release(void);

/* enum pol_member: whether user is in one of groups, as of now_ms. */
int core_dirgrp_member(const char *user, const struct yt_strv *groups, int64_t now_ms);

#endif
