/*
 * core_auth: accounts, sessions and API tokens over the registry's SQLite
 * handle. See auth.h for the model. Statements are prepared once per
 * core_auth: a token check is on every API call (5,000 check-ins a second),
 * so it is one indexed lookup and a SHA-256, nothing slower.
 */
#include "core/auth.h"

#include "common/b64.h"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* argon2id cost: 2 passes over 19 MiB, one lane (the OWASP baseline); a
 * login costs tens of milliseconds, a guess as much. */
#define AUTH_T_COST 2
#define AUTH_M_COST_KIB 19456
#define AUTH_LANES 1
#define AUTH_SALT_LEN 16
#define AUTH_HASH_LEN 32
#define AUTH_PW_MIN 12
#define AUTH_PW_MAX 1024
#define AUTH_PW_DISTINCT 6
#define AUTH_TOKEN_BYTES 32

enum {
    S_ACC_GET,
    S_ACC_ADD,
    S_ACC_PW,
    S_ACC_COUNT,
    S_SES_ADD,
    S_SES_DEL,
    S_SES_PURGE,
    S_SES_TOUCH,
    S_SES_GET,
    S_TOK_ADD,
    S_TOK_REVOKE,
    S_TOK_GET,
    S_TOK_USED,
    S_ACC_LIST,
    S_ACC_DISABLE,
    S_ACC_DEL,
    S_ACC_SES_DEL,
    S_ACC_TOK_REVOKE,
    S_ADMINS_LEFT,
    S_TOK_LIST,
    S_TOK_LIST_ACC,
    S_TOK_ONE,
    S_COUNT_
};

static const char *const sql[S_COUNT_] = {
    [S_ACC_GET] = "SELECT role, pwhash, disabled FROM admin_accounts WHERE name = ?1",
    [S_ACC_ADD] = "INSERT INTO admin_accounts(name, role, pwhash, created_ms) VALUES(?1,?2,?3,?4)",
    [S_ACC_PW] = "UPDATE admin_accounts SET pwhash = ?2 WHERE name = ?1",
    [S_ACC_COUNT] = "SELECT COUNT(*) FROM admin_accounts",
    [S_SES_ADD] = "INSERT INTO admin_sessions(hash, account, created_ms, expires_ms) "
                  "VALUES(?1,?2,?3,?4)",
    [S_SES_DEL] = "DELETE FROM admin_sessions WHERE hash = ?1",
    [S_SES_PURGE] = "DELETE FROM admin_sessions WHERE expires_ms <= ?1",
    /* A console session's idle expiry moves on with its use, never past
     * its absolute one (created + ?3). */
    [S_SES_TOUCH] = "UPDATE admin_sessions SET expires_ms = MIN(created_ms + ?3, ?2 + ?4) "
                    "WHERE hash = ?1 AND expires_ms > ?2",
    [S_SES_GET] = "SELECT a.name, a.role, s.expires_ms FROM admin_sessions s JOIN admin_accounts a "
                  "ON a.name = s.account WHERE s.hash = ?1 AND s.expires_ms > ?2 "
                  "AND a.disabled = 0",
    [S_TOK_ADD] = "INSERT INTO api_tokens(hash, account, role, name, created_ms) "
                  "VALUES(?1,?2,?3,?4,?5)",
    [S_TOK_REVOKE] = "UPDATE api_tokens SET revoked = 1 WHERE id = ?1",
    [S_TOK_GET] = "SELECT t.id, a.name, t.role, t.last_used_ms FROM api_tokens t JOIN "
                  "admin_accounts a ON a.name = t.account WHERE t.hash = ?1 AND t.revoked = 0 "
                  "AND a.disabled = 0",
    [S_TOK_USED] = "UPDATE api_tokens SET last_used_ms = ?2 WHERE id = ?1",
    [S_ACC_LIST] = "SELECT name, role, created_ms, disabled FROM admin_accounts ORDER BY name "
                   "LIMIT ?1",
    [S_ACC_DISABLE] = "UPDATE admin_accounts SET disabled = ?2 WHERE name = ?1",
    [S_ACC_DEL] = "DELETE FROM admin_accounts WHERE name = ?1",
    [S_ACC_SES_DEL] = "DELETE FROM admin_sessions WHERE account = ?1",
    [S_ACC_TOK_REVOKE] = "UPDATE api_tokens SET revoked = 1 WHERE account = ?1",
    /* enabled admins other than ?1 */
    [S_ADMINS_LEFT] = "SELECT COUNT(*) FROM admin_accounts WHERE role = 'admin' AND disabled = 0 "
                      "AND name <> ?1",
    [S_TOK_LIST] = "SELECT id, account, role, name, created_ms, last_used_ms, revoked FROM "
                   "api_tokens ORDER BY id DESC LIMIT ?1",
    [S_TOK_LIST_ACC] = "SELECT id, account, role, name, created_ms, last_used_ms, revoked FROM "
                       "api_tokens WHERE account = ?2 ORDER BY id DESC LIMIT ?1",
    [S_TOK_ONE] = "SELECT id, account, role, name, created_ms, last_used_ms, revoked FROM "
                  "api_tokens WHERE id = ?1",
};

/* A token's last use is written at most this often (a write per request
 * would double the cost of a check-in). */
#define AUTH_USED_GRANULARITY_MS 60000

struct core_auth {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT_];
    struct core_auth_cache *cache;
    void (*used_sink)(void *arg, int64_t token_id, int64_t now_ms);
    void *used_arg;
};

/* ---- the cache of token checks -------------------------------------------------- */

#define CACHE_SLOTS 4096 /* a power of two; a full table is emptied, not grown */

struct cache_ent {
    char hash[65]; /* the token's SHA-256 in hex; "" = free */
    struct core_principal who;
    int64_t until_ms;
    int64_t used_ms; /* the token's last use as stored (or being stored) */
};

struct core_auth_cache {
    pthread_mutex_t mu;
    int64_t ttl_ms;
    size_t n;
    struct cache_ent e[CACHE_SLOTS];
};

struct core_auth_cache *core_auth_cache_new(int64_t ttl_ms)
{
    struct core_auth_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->ttl_ms = ttl_ms;
    return c;
}

void core_auth_cache_free(struct core_auth_cache *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void core_auth_cache_clear(struct core_auth_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        c->e[i].hash[0] = '\0';
    c->n = 0;
    pthread_mutex_unlock(&c->mu);
}

void core_auth_set_cache(struct core_auth *a, struct core_auth_cache *c)
{
    a->cache = c;
}

static size_t cache_slot(const char *hex)
{
    size_t h = 0;
    for (int i = 0; i < 8; i++) /* the hash is uniform already */
        h = h * 16 + (size_t)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
    return h & (CACHE_SLOTS - 1);
}

/* A hit fills who; for an API token whose stored last use is a minute old
 * it also claims the update (*due), so one caller a minute writes it. */
static bool cache_get(struct core_auth_cache *c, const char *hex, int64_t now_ms,
                      struct core_principal *who, bool *due)
{
    *due = false;
    if (!c)
        return false;
    bool hit = false;
    pthread_mutex_lock(&c->mu);
    for (size_t i = cache_slot(hex), k = 0; k < CACHE_SLOTS; i = (i + 1) & (CACHE_SLOTS - 1), k++) {
        struct cache_ent *x = &c->e[i];
        if (!x->hash[0])
            break;
        if (strcmp(x->hash, hex) == 0) {
            hit = now_ms < x->until_ms;
            if (hit) {
                *who = x->who;
                if (x->who.token_id && now_ms - x->used_ms >= AUTH_USED_GRANULARITY_MS) {
                    x->used_ms = now_ms;
                    *due = true;
                }
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

static void cache_put(struct core_auth_cache *c, const char *hex, int64_t now_ms,
                      int64_t expires_ms, int64_t used_ms, const struct core_principal *who)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->n >= CACHE_SLOTS / 2) { /* keep probes short: start over */
        for (size_t i = 0; i < CACHE_SLOTS; i++)
            c->e[i].hash[0] = '\0';
        c->n = 0;
    }
    size_t i = cache_slot(hex);
    while (c->e[i].hash[0] && strcmp(c->e[i].hash, hex) != 0)
        i = (i + 1) & (CACHE_SLOTS - 1);
    struct cache_ent *x = &c->e[i];
    if (!x->hash[0])
        c->n++;
    memcpy(x->hash, hex, sizeof(x->hash));
    x->who = *who;
    x->until_ms = now_ms + c->ttl_ms;
    x->used_ms = used_ms;
    if (expires_ms > 0 && expires_ms < x->until_ms)
        x->until_ms = expires_ms;
    pthread_mutex_unlock(&c->mu);
}

static const char *const role_names[] = {"viewer", "admin", "device"};

int core_role_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, role_names[i]) == 0)
            return i;
    return -1;
}

const char *core_role_name(enum core_role r)
{
    return (unsigned)r < 3 ? role_names[r] : "?";
}

int core_auth_open(struct core_reg *reg, struct core_auth **out)
{
    *out = NULL;
    struct core_auth *a = calloc(1, sizeof(*a));
    if (!a)
        return CORE_AUTH_ENOMEM;
    a->db = core_reg_sqlite(reg);
    for (int i = 0; i < S_COUNT_; i++) {
        if (sqlite3_prepare_v3(a->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &a->st[i], NULL) !=
            SQLITE_OK) {
            core_auth_close(a);
            return CORE_AUTH_EDB;
        }
    }
    *out = a;
    return 0;
}

void core_auth_close(struct core_auth *a)
{
    if (!a)
        return;
    for (int i = 0; i < S_COUNT_; i++)
        sqlite3_finalize(a->st[i]);
    free(a);
}

/* A statement ready for binding (reset from its last use). */
static sqlite3_stmt *stmt(struct core_auth *a, int i)
{
    sqlite3_stmt *s = a->st[i];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static void text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
}

/* Step a statement that returns no rows. */
static int run(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_CONSTRAINT)
        return CORE_AUTH_EEXIST;
    return rc == SQLITE_DONE ? 0 : CORE_AUTH_EDB;
}

static int seterr(char *why, size_t whylen, int rc, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", msg);
    return rc;
}

int core_auth_password_check(const char *name, const char *pw, char *why, size_t whylen)
{
    size_t n = pw ? strlen(pw) : 0;
    if (n < AUTH_PW_MIN)
        return seterr(why, whylen, CORE_AUTH_EINVAL,
                      "the password is too short: use at least 12 characters");
    if (n > AUTH_PW_MAX)
        return seterr(why, whylen, CORE_AUTH_EINVAL, "the password is longer than 1024 bytes");
    unsigned char seen[256] = {0};
    int distinct = 0;
    for (size_t i = 0; i < n; i++)
        if (!seen[(unsigned char)pw[i]]++)
            distinct++;
    if (distinct < AUTH_PW_DISTINCT)
        return seterr(why, whylen, CORE_AUTH_EINVAL,
                      "the password repeats too few characters: use at least 6 different ones");
    size_t nl = name ? strlen(name) : 0;
    for (size_t i = 0; nl >= 3 && i + nl <= n; i++)
        if (strncasecmp(pw + i, name, nl) == 0)
            return seterr(why, whylen, CORE_AUTH_EINVAL, "the password contains the account name");
    return 0;
}

static int name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n >= CORE_USER_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= ' ' || ch == 0x7f)
            return 0;
    }
    return 1;
}

static int pw_hash(const char *pw, char *enc, size_t enclen)
{
    unsigned char salt[AUTH_SALT_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return CORE_AUTH_EDB;
    int rc = argon2id_hash_encoded(AUTH_T_COST, AUTH_M_COST_KIB, AUTH_LANES, pw, strlen(pw), salt,
                                   sizeof(salt), AUTH_HASH_LEN, enc, enclen);
    return rc == ARGON2_OK ? 0 : CORE_AUTH_ENOMEM;
}

int core_auth_account_add(struct core_auth *a, const char *name, enum core_role role,
                          const char *password, int64_t now_ms, char *why, size_t whylen)
{
    if (!name_ok(name))
        return seterr(why, whylen, CORE_AUTH_EINVAL,
                      "an account name is 1-255 characters without spaces or control characters");
    if (role != CORE_ROLE_ADMIN && role != CORE_ROLE_VIEWER)
        return seterr(why, whylen, CORE_AUTH_EINVAL, "an account's role is admin or viewer");
    int rc = core_auth_password_check(name, password, why, whylen);
    if (rc < 0)
        return rc;
    char enc[256];
    if (pw_hash(password, enc, sizeof(enc)) < 0)
        return seterr(why, whylen, CORE_AUTH_ENOMEM, "hashing the password failed");
    sqlite3_stmt *s = stmt(a, S_ACC_ADD);
    text(s, 1, name);
    text(s, 2, core_role_name(role));
    text(s, 3, enc);
    sqlite3_bind_int64(s, 4, now_ms);
    rc = run(s);
    if (rc == CORE_AUTH_EEXIST)
        return seterr(why, whylen, rc, "an account of that name exists already");
    if (rc < 0)
        return seterr(why, whylen, rc, sqlite3_errmsg(a->db));
    return 0;
}

int core_auth_account_passwd(struct core_auth *a, const char *name, const char *password, char *why,
                             size_t whylen)
{
    int rc = core_auth_password_check(name, password, why, whylen);
    if (rc < 0)
        return rc;
    char enc[256];
    if (pw_hash(password, enc, sizeof(enc)) < 0)
        return seterr(why, whylen, CORE_AUTH_ENOMEM, "hashing the password failed");
    sqlite3_stmt *s = stmt(a, S_ACC_PW);
    text(s, 1, name);
    text(s, 2, enc);
    core_auth_cache_clear(a->cache);
    if (run(s) < 0)
        return seterr(why, whylen, CORE_AUTH_EDB, sqlite3_errmsg(a->db));
    if (sqlite3_changes(a->db) == 0)
        return seterr(why, whylen, CORE_AUTH_ENOTFOUND, "no such account");
    return 0;
}

int64_t core_auth_account_count(struct core_auth *a)
{
    sqlite3_stmt *s = stmt(a, S_ACC_COUNT);
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : CORE_AUTH_EDB;
    sqlite3_reset(s);
    return n;
}

/* ---- tokens ---------------------------------------------------------------- */

static int token_new(const char *prefix, char *token)
{
    unsigned char r[AUTH_TOKEN_BYTES];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return CORE_AUTH_EDB;
    /* base64url without padding: the token is safe in a URL and a header. */
    size_t pl = strlen(prefix);
    memcpy(token, prefix, pl);
    return b64_encode(r, sizeof(r), token + pl, CORE_TOKEN_MAX - pl, B64_URL | B64_NOPAD, NULL) < 0
               ? CORE_AUTH_EDB
               : 0;
}

/* SHA-256 of the token as 64 hex digits: what the database keeps. */
static void token_hash(const char *token, char hex[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL);
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

int core_auth_login(struct core_auth *a, const char *name, const char *password, int64_t ttl_ms,
                    int64_t now_ms, char *token, struct core_principal *who)
{
    struct core_principal p;
    int rc = core_auth_verify(a, name, password, &p);
    if (rc == 0)
        rc = core_auth_session_open(a, &p, ttl_ms, now_ms, token);
    if (rc == 0 && who)
        *who = p;
    return rc;
}

/*
 * A name without an account costs the same argon2 work as one with: a
 * verification against this hash of nothing anyone knows (same cost
 * parameters, made once). Answered in 2.5 ms instead of 20, unknown names
 * could be told from real ones by timing alone.
 */
static char dummy_enc[256];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_make(void)
{
    unsigned char r[AUTH_SALT_LEN];
    char pw[2 * AUTH_SALT_LEN + 1];
    if (RAND_bytes(r, sizeof(r)) != 1) {
        dummy_enc[0] = '\0';
        return;
    }
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(pw + 2 * i, 3, "%02x", r[i]);
    if (pw_hash(pw, dummy_enc, sizeof(dummy_enc)) < 0)
        dummy_enc[0] = '\0';
}

static void dummy_verify(const char *password)
{
    pthread_once(&dummy_once, dummy_make);
    if (dummy_enc[0])
        (void)argon2id_verify(dummy_enc, password, strlen(password));
}

int core_auth_verify(struct core_auth *a, const char *name, const char *password,
                     struct core_principal *who)
{
    if (!password || strlen(password) > AUTH_PW_MAX)
        return CORE_AUTH_EDENIED;
    if (!name_ok(name)) { /* no account has such a name, but it costs the same */
        dummy_verify(password);
        return CORE_AUTH_EDENIED;
    }
    sqlite3_stmt *s = stmt(a, S_ACC_GET);
    text(s, 1, name);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        if (rc == SQLITE_DONE)
            dummy_verify(password);
        return rc == SQLITE_DONE ? CORE_AUTH_EDENIED : CORE_AUTH_EDB;
    }
    int role = core_role_parse((const char *)sqlite3_column_text(s, 0));
    char enc[256];
    snprintf(enc, sizeof(enc), "%s", (const char *)sqlite3_column_text(s, 1));
    int disabled = sqlite3_column_int(s, 2);
    sqlite3_reset(s);
    /* The password is checked first: a disabled account answers in the
     * same time as any other wrong password. */
    bool pw_ok = argon2id_verify(enc, password, strlen(password)) == ARGON2_OK;
    if (!pw_ok || disabled || role < 0)
        return CORE_AUTH_EDENIED;
    if (who) {
        snprintf(who->name, sizeof(who->name), "%s", name);
        who->role = (enum core_role)role;
        who->token_id = 0;
    }
    return 0;
}

static int session_open(struct core_auth *a, const char *prefix, const struct core_principal *who,
                        int64_t ttl_ms, int64_t now_ms, char *token)
{
    sqlite3_stmt *s = stmt(a, S_SES_PURGE);
    sqlite3_bind_int64(s, 1, now_ms);
    run(s);
    if (token_new(prefix, token) < 0)
        return CORE_AUTH_EDB;
    char hex[65];
    token_hash(token, hex);
    s = stmt(a, S_SES_ADD);
    text(s, 1, hex);
    text(s, 2, who->name);
    sqlite3_bind_int64(s, 3, now_ms);
    sqlite3_bind_int64(s, 4, now_ms + ttl_ms);
    return run(s) < 0 ? CORE_AUTH_EDB : 0;
}

int core_auth_session_open(struct core_auth *a, const struct core_principal *who, int64_t ttl_ms,
                           int64_t now_ms, char *token)
{
    return session_open(a, "egs_", who, ttl_ms, now_ms, token);
}

int core_auth_console_open(struct core_auth *a, const struct core_principal *who, int64_t ttl_ms,
                           int64_t idle_ms, int64_t now_ms, char *token)
{
    return session_open(a, "egc_", who, idle_ms < ttl_ms ? idle_ms : ttl_ms, now_ms, token);
}

int core_auth_console_touch(struct core_auth *a, const char *token, int64_t ttl_ms, int64_t idle_ms,
                            int64_t now_ms)
{
    char hex[65];
    token_hash(token, hex);
    sqlite3_stmt *s = stmt(a, S_SES_TOUCH);
    text(s, 1, hex);
    sqlite3_bind_int64(s, 2, now_ms);
    sqlite3_bind_int64(s, 3, ttl_ms);
    sqlite3_bind_int64(s, 4, idle_ms);
    return run(s) < 0 ? CORE_AUTH_EDB : 0;
}

/* The CSRF token is derived, not stored: SHA-256 over a label and the
 * session token, so it names the session without revealing it (the
 * session token stays in its HttpOnly cookie, out of the page's reach)
 * and needs no table. */
void core_auth_csrf(const char *token, char out[CORE_CSRF_LEN + 1])
{
    static const char label[] = "easgate console csrf\n";
    unsigned char md[32];
    unsigned int len = 0;
    EVP_MD_CTX *x = EVP_MD_CTX_new();
    if (!x || EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(x, label, sizeof(label) - 1) != 1 ||
        EVP_DigestUpdate(x, token, strlen(token)) != 1 || EVP_DigestFinal_ex(x, md, &len) != 1)
        memset(md, 0, sizeof(md)); /* never matches: see core_auth_csrf_ok */
    EVP_MD_CTX_free(x);
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < CORE_CSRF_LEN / 2; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[CORE_CSRF_LEN] = '\0';
}

bool core_auth_csrf_ok(const char *token, const char *got)
{
    if (!got || strlen(got) != CORE_CSRF_LEN)
        return false;
    char want[CORE_CSRF_LEN + 1];
    core_auth_csrf(token, want);
    if (strspn(want, "0") == CORE_CSRF_LEN)
        return false;
    return CRYPTO_memcmp(want, got, CORE_CSRF_LEN) == 0;
}

int core_auth_logout(struct core_auth *a, const char *token)
{
    char hex[65];
    token_hash(token, hex);
    sqlite3_stmt *s = stmt(a, S_SES_DEL);
    text(s, 1, hex);
    core_auth_cache_clear(a->cache);
    return run(s);
}

int core_auth_token_mint(struct core_auth *a, const char *account, enum core_role role,
                         const char *label, int64_t now_ms, char *token, int64_t *id)
{
    sqlite3_stmt *s = stmt(a, S_ACC_GET);
    text(s, 1, account);
    int rc = sqlite3_step(s);
    int arole = rc == SQLITE_ROW ? core_role_parse((const char *)sqlite3_column_text(s, 0)) : -1;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? CORE_AUTH_ENOTFOUND : CORE_AUTH_EDB;
    if ((unsigned)role > CORE_ROLE_DEVICE || (role == CORE_ROLE_ADMIN && arole != CORE_ROLE_ADMIN))
        return CORE_AUTH_EINVAL;
    if (token_new("egt_", token) < 0)
        return CORE_AUTH_EDB;
    char hex[65];
    token_hash(token, hex);
    s = stmt(a, S_TOK_ADD);
    text(s, 1, hex);
    text(s, 2, account);
    text(s, 3, core_role_name(role));
    text(s, 4, label ? label : "");
    sqlite3_bind_int64(s, 5, now_ms);
    if (run(s) < 0)
        return CORE_AUTH_EDB;
    if (id)
        *id = sqlite3_last_insert_rowid(a->db);
    return 0;
}

int core_auth_token_revoke(struct core_auth *a, int64_t id)
{
    sqlite3_stmt *s = stmt(a, S_TOK_REVOKE);
    sqlite3_bind_int64(s, 1, id);
    core_auth_cache_clear(a->cache);
    if (run(s) < 0)
        return CORE_AUTH_EDB;
    return sqlite3_changes(a->db) ? 0 : CORE_AUTH_ENOTFOUND;
}

void core_auth_set_used_sink(struct core_auth *a,
                             void (*fn)(void *arg, int64_t token_id, int64_t now_ms), void *arg)
{
    a->used_sink = fn;
    a->used_arg = arg;
}

int core_auth_token_used(struct core_auth *a, int64_t token_id, int64_t now_ms)
{
    sqlite3_stmt *s = stmt(a, S_TOK_USED);
    sqlite3_bind_int64(s, 1, token_id);
    sqlite3_bind_int64(s, 2, now_ms);
    return run(s);
}

/* Note an API token's use (to the minute: AUTH_USED_GRANULARITY_MS). */
static void used_write(struct core_auth *a, int64_t token_id, int64_t now_ms)
{
    if (a->used_sink) { /* a read-only connection: the writer stores it */
        a->used_sink(a->used_arg, token_id, now_ms);
        return;
    }
    sqlite3_stmt *s = stmt(a, S_TOK_USED);
    sqlite3_bind_int64(s, 1, token_id);
    sqlite3_bind_int64(s, 2, now_ms);
    run(s); /* bookkeeping: a failure here does not refuse the call */
}

int core_auth_check(struct core_auth *a, const char *authz, int64_t now_ms,
                    struct core_principal *who)
{
    if (!authz || strncasecmp(authz, "Bearer ", 7) != 0)
        return CORE_AUTH_EDENIED;
    const char *t = authz + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    if (n < 5 || n >= CORE_TOKEN_MAX)
        return CORE_AUTH_EDENIED;
    int session = strncmp(t, "egs_", 4) == 0 || strncmp(t, "egc_", 4) == 0;
    if (!session && strncmp(t, "egt_", 4) != 0)
        return CORE_AUTH_EDENIED;
    char hex[65];
    token_hash(t, hex);
    bool due;
    if (cache_get(a->cache, hex, now_ms, who, &due)) {
        if (due)
            used_write(a, who->token_id, now_ms);
        return 0;
    }
    sqlite3_stmt *s = stmt(a, session ? S_SES_GET : S_TOK_GET);
    text(s, 1, hex);
    if (session)
        sqlite3_bind_int64(s, 2, now_ms);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? CORE_AUTH_EDENIED : CORE_AUTH_EDB;
    }
    int c = 0;
    who->token_id = session ? 0 : sqlite3_column_int64(s, c++);
    snprintf(who->name, sizeof(who->name), "%s", (const char *)sqlite3_column_text(s, c++));
    int role = core_role_parse((const char *)sqlite3_column_text(s, c++));
    int64_t expires = session ? sqlite3_column_int64(s, c) : 0;
    who->expires_ms = expires;
    int64_t used = session ? now_ms : sqlite3_column_int64(s, c);
    sqlite3_reset(s);
    if (role < 0)
        return CORE_AUTH_EDENIED;
    who->role = (enum core_role)role;
    bool stale = !session && now_ms - used >= AUTH_USED_GRANULARITY_MS;
    cache_put(a->cache, hex, now_ms, expires, stale ? now_ms : used, who);
    if (stale)
        used_write(a, who->token_id, now_ms);
    return 0;
}

/* ---- the accounts' lifecycle -------------------------------------------------- */

int core_auth_account_list(struct core_auth *a, struct core_account *out, size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = stmt(a, S_ACC_LIST);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max) {
        struct core_account *o = &out[(*n)++];
        snprintf(o->name, sizeof(o->name), "%s", (const char *)sqlite3_column_text(s, 0));
        int role = core_role_parse((const char *)sqlite3_column_text(s, 1));
        o->role = role < 0 ? CORE_ROLE_VIEWER : (enum core_role)role;
        o->created_ms = sqlite3_column_int64(s, 2);
        o->disabled = sqlite3_column_int(s, 3) != 0;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : CORE_AUTH_EDB;
}

/* The role of name (ENOTFOUND), and whether another enabled admin remains. */
static int account_role(struct core_auth *a, const char *name, int *role, bool *others)
{
    sqlite3_stmt *s = stmt(a, S_ACC_GET);
    text(s, 1, name);
    int rc = sqlite3_step(s);
    *role = rc == SQLITE_ROW ? core_role_parse((const char *)sqlite3_column_text(s, 0)) : -1;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? CORE_AUTH_ENOTFOUND : CORE_AUTH_EDB;
    s = stmt(a, S_ADMINS_LEFT);
    text(s, 1, name);
    rc = sqlite3_step(s);
    *others = rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : CORE_AUTH_EDB;
}

int core_auth_account_disable(struct core_auth *a, const char *name, bool disabled)
{
    int role;
    bool others;
    int rc = account_role(a, name, &role, &others);
    if (rc < 0)
        return rc;
    if (disabled && role == CORE_ROLE_ADMIN && !others)
        return CORE_AUTH_ELAST;
    sqlite3_stmt *s = stmt(a, S_ACC_DISABLE);
    text(s, 1, name);
    sqlite3_bind_int(s, 2, disabled);
    core_auth_cache_clear(a->cache); /* its sessions and tokens stop at once */
    return run(s);
}

int core_auth_account_delete(struct core_auth *a, const char *name)
{
    int role;
    bool others;
    int rc = account_role(a, name, &role, &others);
    if (rc < 0)
        return rc;
    if (role == CORE_ROLE_ADMIN && !others)
        return CORE_AUTH_ELAST;
    core_auth_cache_clear(a->cache);
    /* One transaction: no half-deleted account with live tokens. */
    if (sqlite3_exec(a->db, "SAVEPOINT auth_del", NULL, NULL, NULL) != SQLITE_OK)
        return CORE_AUTH_EDB;
    const int steps[] = {S_ACC_SES_DEL, S_ACC_TOK_REVOKE, S_ACC_DEL};
    rc = 0;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && rc == 0; i++) {
        sqlite3_stmt *s = stmt(a, steps[i]);
        text(s, 1, name);
        rc = run(s);
    }
    sqlite3_exec(a->db, rc == 0 ? "RELEASE auth_del" : "ROLLBACK TO auth_del; RELEASE auth_del",
                 NULL, NULL, NULL);
    return rc;
}

int core_auth_sessions_end(struct core_auth *a, const char *name)
{
    sqlite3_stmt *s = stmt(a, S_ACC_SES_DEL);
    text(s, 1, name);
    core_auth_cache_clear(a->cache);
    return run(s);
}

/* ---- tokens --------------------------------------------------------------------- */

static void row_token(sqlite3_stmt *s, struct core_token *t)
{
    t->id = sqlite3_column_int64(s, 0);
    snprintf(t->account, sizeof(t->account), "%s", (const char *)sqlite3_column_text(s, 1));
    int role = core_role_parse((const char *)sqlite3_column_text(s, 2));
    t->role = role < 0 ? CORE_ROLE_VIEWER : (enum core_role)role;
    snprintf(t->name, sizeof(t->name), "%s", (const char *)sqlite3_column_text(s, 3));
    t->created_ms = sqlite3_column_int64(s, 4);
    t->last_used_ms = sqlite3_column_int64(s, 5);
    t->revoked = sqlite3_column_int(s, 6) != 0;
}

int core_auth_token_list(struct core_auth *a, const char *account, struct core_token *out,
                         size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = stmt(a, account ? S_TOK_LIST_ACC : S_TOK_LIST);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
    if (account)
        text(s, 2, account);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
        row_token(s, &out[(*n)++]);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : CORE_AUTH_EDB;
}

int core_auth_token_get(struct core_auth *a, int64_t id, struct core_token *out)
{
    sqlite3_stmt *s = stmt(a, S_TOK_ONE);
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        row_token(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? CORE_AUTH_ENOTFOUND : CORE_AUTH_EDB;
}
