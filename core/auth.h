/*
 * core_auth: who may use the admin API.
 *
 * Accounts have a name, one role and an argon2id password hash (libargon2;
 * the encoded form carries its own salt and cost, so costs can be raised
 * later without breaking old hashes). There is no default account and no
 * default password: `easgate core init-admin` creates the first admin.
 *
 * Two kinds of bearer tokens, both random (32 bytes from the OpenSSL RNG)
 * and stored only as their SHA-256: a token with 256 bits of entropy needs
 * no slow hash, and a stolen database yields no usable token.
 *   "egs_..." a login session, expiring after core.session_ttl;
 *   "egt_..." a long-lived API token, shown once when minted, until revoked.
 *
 * Roles: admin (everything), viewer (read only), device (an API token that
 * may only POST /api/v1/checkin: what a device agent or an MDM connector
 * holds). A token never has more rights than the account that minted it.
 *
 * The tables live in the registry (schema 3 in core/reg.c). One core_auth
 * per core_reg, same thread rules. Errors: 0 or a negative CORE_AUTH_E*.
 *
 * Token checks are on every API request; the core's threads (core/wr.h,
 * core/api.c) share a cache of recent answers (core_auth_cache), so a
 * device connector checking in ten thousand times a second costs a hash
 * and a lookup in memory, not a query each time. An entry lives
 * CORE_AUTH_CACHE_TTL_MS (never past its session's expiry); a logout, a
 * revocation or any account change through this process empties the cache
 * at once, so only a change made by another process (the CLI) can take
 * that long to be seen. An API token's last use (api_tokens.last_used_ms)
 * is written at most once a minute per token, hit or miss: the cache keeps
 * the stored time and the first check a minute later claims the write.
 */
#ifndef EG_CORE_AUTH_H
#define EG_CORE_AUTH_H

#include "core/reg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum core_role { CORE_ROLE_VIEWER, CORE_ROLE_ADMIN, CORE_ROLE_DEVICE };

/* -20..-29: core/'s range for auth (core/reg.h), apart from the registry's codes. */
enum core_auth_err {
    CORE_AUTH_EDB = -20,     /* SQLite failed */
    CORE_AUTH_EDENIED = -21, /* unknown account, wrong password, bad/expired/revoked token */
    CORE_AUTH_EINVAL = -22,  /* bad name, weak password, role above the account's */
    CORE_AUTH_EEXIST = -23,  /* the account exists already */
    CORE_AUTH_ENOMEM = -24,
    CORE_AUTH_ENOTFOUND = -25,
    CORE_AUTH_ELAST = -26, /* it would leave no enabled admin */
};

#define CORE_TOKEN_MAX 64 /* "egt_" + 43 base64url characters + NUL fits */
#define CORE_AUTH_CACHE_TTL_MS 2000

/* Who is calling, once authenticated. */
struct core_principal {
    char name[CORE_USER_MAX]; /* the account */
    enum core_role role;
    int64_t token_id;   /* API token id, 0 for a session */
    int64_t expires_ms; /* a session's expiry (the idle one for the console's); 0 = a token */
};

struct core_auth;
struct core_auth_cache;

int core_auth_open(struct core_reg *reg, struct core_auth **out);
void core_auth_close(struct core_auth *a);

/* A cache of token checks shared by threads (thread-safe); NULL when out of memory. */
struct core_auth_cache *core_auth_cache_new(int64_t ttl_ms);
void core_auth_cache_free(struct core_auth_cache *c);
void core_auth_cache_clear(struct core_auth_cache *c);
/* a checks tokens through c (borrowed, outlives a); NULL = no cache. */
void core_auth_set_cache(struct core_auth *a, struct core_auth_cache *c);
/* For an a over a read-only connection (an API reader's): a token's last
 * use, when due, goes to fn (which hands it to the writer) instead of an
 * UPDATE here. */
void core_auth_set_used_sink(struct core_auth *a,
                             void (*fn)(void *arg, int64_t token_id, int64_t now_ms), void *arg);
/* Store a token's last use (the writer's side of such a sink). */
int core_auth_token_used(struct core_auth *a, int64_t token_id, int64_t now_ms);

/* "admin" / "viewer" / "device", or -1. */
int core_role_parse(const char *s);
const char *core_role_name(enum core_role r);

/* 0 if acceptable, else CORE_AUTH_EINVAL and why in why[]: at least 12
 * characters, at least 6 different ones, not containing the account name. */
int core_auth_password_check(const char *name, const char *password, char *why, size_t whylen);

/* Create an account (role admin or viewer). EEXIST, EINVAL with why. */
int core_auth_account_add(struct core_auth *a, const char *name, enum core_role role,
                          const char *password, int64_t now_ms, char *why, size_t whylen);
/* Change a password (same checks). */
int core_auth_account_passwd(struct core_auth *a, const char *name, const char *password, char *why,
                             size_t whylen);
int64_t core_auth_account_count(struct core_auth *a);

/* ---- the accounts' lifecycle ---- */

struct core_account {
    char name[CORE_USER_MAX];
    enum core_role role;
    int64_t created_ms;
    bool disabled;
};

/* Every account, by name (at most max). */
int core_auth_account_list(struct core_auth *a, struct core_account *out, size_t max, size_t *n);
/*
 * Disable (sessions and tokens stop working at once; the account stays, its
 * audit trail too) or enable again. Delete removes the account, ends its
 * sessions and revokes its tokens. Both refuse (CORE_AUTH_ELAST) to leave
 * no enabled admin: nobody could administer the API any more.
 * ENOTFOUND for an unknown name.
 */
int core_auth_account_disable(struct core_auth *a, const char *name, bool disabled);
int core_auth_account_delete(struct core_auth *a, const char *name);
/* End every login session of name (after a password change or reset). */
int core_auth_sessions_end(struct core_auth *a, const char *name);

/* ---- tokens ---- */

struct core_token {
    int64_t id;
    char account[CORE_USER_MAX];
    enum core_role role;
    char name[CORE_USER_MAX];
    int64_t created_ms, last_used_ms; /* last use to the minute; 0 = never */
    bool revoked;
};

/* API tokens, newest first, of account (NULL = all), at most max. */
int core_auth_token_list(struct core_auth *a, const char *account, struct core_token *out,
                         size_t max, size_t *n);
/* One token by id (ENOTFOUND). */
int core_auth_token_get(struct core_auth *a, int64_t id, struct core_token *out);

/* Check the password and open a session: its token into token[CORE_TOKEN_MAX]. */
int core_auth_login(struct core_auth *a, const char *name, const char *password, int64_t ttl_ms,
                    int64_t now_ms, char *token, struct core_principal *who);
/* The two halves, for threads that split them: the password check (argon2,
 * tens of milliseconds; reads only: 0 when name/password is an enabled
 * account's, else CORE_AUTH_EDENIED; who may be NULL) and the session (one
 * write). */
int core_auth_verify(struct core_auth *a, const char *name, const char *password,
                     struct core_principal *who);
int core_auth_session_open(struct core_auth *a, const struct core_principal *who, int64_t ttl_ms,
                           int64_t now_ms, char *token);
/*
 * The console's sessions (docs/console.md): "egc_..." tokens in the same
 * table, carried by an HttpOnly cookie rather than a header. Each expires
 * idle_ms after its last use (core_auth_console_touch moves that on) and
 * never later than ttl_ms after it opened. The API accepts them only from
 * the cookie, and a state-changing call only with the session's CSRF token
 * (core_auth_csrf: derived from the session token, CORE_CSRF_LEN hex
 * digits), which the page holds and sends as X-CSRF-Token.
 */
#define CORE_CSRF_LEN 64
int core_auth_console_open(struct core_auth *a, const struct core_principal *who, int64_t ttl_ms,
                           int64_t idle_ms, int64_t now_ms, char *token);
int core_auth_console_touch(struct core_auth *a, const char *token, int64_t ttl_ms, int64_t idle_ms,
                            int64_t now_ms);
void core_auth_csrf(const char *token, char out[CORE_CSRF_LEN + 1]);
bool core_auth_csrf_ok(const char *token, const char *got);

/* End the session the token names (API tokens are revoked, not logged out). */
int core_auth_logout(struct core_auth *a, const char *token);

/* Mint an API token for account with role (at most the account's; device is
 * allowed for any account). The token into token[CORE_TOKEN_MAX]; shown once. */
int core_auth_token_mint(struct core_auth *a, const char *account, enum core_role role,
                         const char *label, int64_t now_ms, char *token, int64_t *id);
int core_auth_token_revoke(struct core_auth *a, int64_t id);

/* An Authorization header value ("Bearer egs_..." / "Bearer egt_...") into who. */
int core_auth_check(struct core_auth *a, const char *authorization, int64_t now_ms,
                    struct core_principal *who);

#endif
