/*
 * core_reg: the device registry over SQLite. See reg.h for the contract.
 *
 * Migrations are an append-only list of SQL scripts: index i brings the
 * schema from version i to i + 1. Never edit a released step; add a new one.
 * Statements the core runs often are prepared once and kept (stmt()).
 */
#include "core/reg.h"

#include "eas/easq.h"

#include <sqlite3.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A writer waits this long for another writer (e.g. the CLI) before giving up. */
#define REG_BUSY_TIMEOUT_MS 5000
/* Page cache (negative = KiB): a million devices' indexes stay in memory. */
#define REG_CACHE_KIB "-65536"
/* foreach() reads this many rows per page, then calls back with no statement open. */
#define REG_PAGE 512

static const char *const migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE users("
    "  name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE devices("
    "  id INTEGER PRIMARY KEY,"
    "  device_id TEXT NOT NULL UNIQUE,"
    "  device_type TEXT NOT NULL DEFAULT '',"
    "  model TEXT NOT NULL DEFAULT '',"
    "  os TEXT NOT NULL DEFAULT '',"
    "  os_version TEXT NOT NULL DEFAULT '',"
    "  imei TEXT NOT NULL DEFAULT '',"
    "  friendly_name TEXT NOT NULL DEFAULT '',"
    "  phone_number TEXT NOT NULL DEFAULT '',"
    "  user_agent TEXT NOT NULL DEFAULT '',"
    "  user TEXT NOT NULL DEFAULT '' COLLATE NOCASE,"
    "  first_seen_ms INTEGER NOT NULL,"
    "  last_seen_ms INTEGER NOT NULL,"
    "  last_checkin_ms INTEGER NOT NULL DEFAULT 0,"
    "  managed INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL DEFAULT 'block',"
    "  reason TEXT NOT NULL DEFAULT 'new',"
    "  version INTEGER NOT NULL DEFAULT 0,"
    "  updated_ms INTEGER NOT NULL DEFAULT 0,"
    "  non_compliant_since_ms INTEGER NOT NULL DEFAULT 0,"
    "  override TEXT NOT NULL DEFAULT 'none');"
    "CREATE INDEX devices_by_user ON devices(user, device_id);"
    "CREATE INDEX devices_by_state ON devices(state, device_id);"
    "CREATE INDEX devices_by_last_seen ON devices(last_seen_ms);"
    "CREATE TABLE meta(key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta(key, value) VALUES('state_version', 0);"
    "CREATE TABLE admin_actions("
    "  id INTEGER PRIMARY KEY,"
    "  device_id TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  note TEXT NOT NULL DEFAULT '',"
    "  at_ms INTEGER NOT NULL);"
    "CREATE INDEX admin_actions_by_device ON admin_actions(device_id, id);"
    "CREATE TABLE audit("
    "  id INTEGER PRIMARY KEY,"
    "  at_ms INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  address TEXT NOT NULL DEFAULT '',"
    "  action TEXT NOT NULL,"
    "  target TEXT NOT NULL DEFAULT '',"
    "  detail TEXT NOT NULL DEFAULT '');"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
    "  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",

    /* 2: what devices report at check-in, wipe acknowledgements, timers */
    "ALTER TABLE devices ADD COLUMN passcode INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE devices ADD COLUMN encrypted INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE devices ADD COLUMN jailbroken INTEGER NOT NULL DEFAULT -1;"
    "ALTER TABLE devices ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE devices ADD COLUMN wipe_acked_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN next_eval_ms INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX devices_by_next_eval ON devices(next_eval_ms) WHERE next_eval_ms > 0;"
    "CREATE INDEX devices_by_type ON devices(device_type COLLATE NOCASE, device_id);",

    /* 3: admin API accounts, login sessions and API tokens (core/auth.c);
     * secrets are stored only as hashes */
    "CREATE TABLE admin_accounts("
    "  name TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,"
    "  role TEXT NOT NULL CHECK(role IN ('admin','viewer')),"
    "  pwhash TEXT NOT NULL DEFAULT '',"
    "  created_ms INTEGER NOT NULL,"
    "  disabled INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE admin_sessions("
    "  hash TEXT NOT NULL PRIMARY KEY,"
    "  account TEXT NOT NULL COLLATE NOCASE,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL);"
    "CREATE INDEX admin_sessions_by_expiry ON admin_sessions(expires_ms);"
    "CREATE TABLE api_tokens("
    "  id INTEGER PRIMARY KEY,"
    "  hash TEXT NOT NULL UNIQUE,"
    "  account TEXT NOT NULL COLLATE NOCASE,"
    "  role TEXT NOT NULL CHECK(role IN ('admin','viewer','device')),"
    "  name TEXT NOT NULL DEFAULT '',"
    "  created_ms INTEGER NOT NULL,"
    "  revoked INTEGER NOT NULL DEFAULT 0);",

    /* 4: enrollment (enroll/): invitations with hashed keys, issued device certificates */
    "CREATE TABLE enroll_invitations("
    "  id INTEGER PRIMARY KEY,"
    "  key_hash BLOB NOT NULL UNIQUE,"
    "  email TEXT NOT NULL COLLATE NOCASE,"
    "  user TEXT NOT NULL COLLATE NOCASE,"
    "  max_uses INTEGER NOT NULL DEFAULT 1,"
    "  uses INTEGER NOT NULL DEFAULT 0,"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  created_by TEXT NOT NULL DEFAULT '',"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX enroll_invitations_by_email ON enroll_invitations(email, id);"
    "CREATE TABLE enroll_certs("
    "  serial TEXT NOT NULL PRIMARY KEY,"
    "  device_id TEXT NOT NULL,"
    "  user TEXT NOT NULL COLLATE NOCASE,"
    "  invitation_id INTEGER NOT NULL DEFAULT 0,"
    "  not_before_ms INTEGER NOT NULL,"
    "  not_after_ms INTEGER NOT NULL,"
    "  issued_ms INTEGER NOT NULL,"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0,"
    "  revoke_reason TEXT NOT NULL DEFAULT '',"
    "  pem TEXT NOT NULL);"
    "CREATE INDEX enroll_certs_by_device ON enroll_certs(device_id, not_after_ms);"
    "CREATE INDEX enroll_certs_revoked ON enroll_certs(revoked_ms) WHERE revoked_ms > 0;"
    "INSERT INTO meta(key, value) VALUES('crl_number', 0);",

    /* 5: the server role's per-device facts: which wipe the admin ordered,
     * the ActiveSync version the device last spoke, the provisioning epoch
     * mixed into its policy keys (bumped by "reprovision"), and the final
     * key a proxy last issued to it and when */
    "ALTER TABLE devices ADD COLUMN wipe_kind TEXT NOT NULL DEFAULT 'full';"
    "ALTER TABLE devices ADD COLUMN eas_version TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE devices ADD COLUMN pk_epoch INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN policy_key INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN provisioned_ms INTEGER NOT NULL DEFAULT 0;",

    /* 6: when each API token was last used (core/auth.c, to the minute), so
     * admins can tell a forgotten token from one in use before revoking */
    "ALTER TABLE api_tokens ADD COLUMN last_used_ms INTEGER NOT NULL DEFAULT 0;",
};

#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(N_MIGRATIONS == CORE_REG_SCHEMA, "CORE_REG_SCHEMA must match the migrations");

/* The device columns in the order row_device() reads them. */
#define DEV_COLS                                                                                   \
    "device_id, device_type, model, os, os_version, imei, friendly_name, phone_number, "           \
    "user_agent, user, first_seen_ms, last_seen_ms, last_checkin_ms, managed, passcode, "          \
    "encrypted, jailbroken, agent_version, wipe_acked_ms, state, reason, version, updated_ms, "    \
    "non_compliant_since_ms, override, next_eval_ms, wipe_kind, eas_version, pk_epoch, "           \
    "policy_key, provisioned_ms"

enum stmt_id {
    S_DEV_GET,
    S_DEV_EXISTS,
    S_DEV_INSERT,
    S_DEV_MERGE,
    S_USER_ADD,
    S_CHECKIN,
    S_SET_MANAGED,
    S_SET_OVERRIDE,
    S_WIPE_ACK,
    S_WIPE_KIND,
    S_TOUCH,
    S_PROVISIONED,
    S_STATE_GET,
    S_SEQ_NEXT,
    S_STATE_SET,
    S_NCS_SET,
    S_DEV_DELETE,
    S_DUE,
    S_META_GET,
    S_META_SET,
    S_RANK,
    S_COUNT,
    S_ACTION_ADD,
    S_ACTION_LIST,
    S_AUDIT_ADD,
    S_AUDIT_LIST,
    S_USER_LIST,
    S_COUNT_
};

static const char *const stmt_sql[S_COUNT_] = {
    [S_DEV_GET] = "SELECT " DEV_COLS " FROM devices WHERE device_id = ?1",
    [S_DEV_EXISTS] = "SELECT user FROM devices WHERE device_id = ?1",
    [S_DEV_INSERT] = "INSERT INTO devices(device_id, device_type, model, os, os_version, imei, "
                     "friendly_name, phone_number, user_agent, user, first_seen_ms, last_seen_ms, "
                     "eas_version) "
                     "VALUES(?1, COALESCE(?2,''), COALESCE(?3,''), COALESCE(?4,''), "
                     "COALESCE(?5,''), COALESCE(?6,''), COALESCE(?7,''), COALESCE(?8,''), "
                     "COALESCE(?9,''), COALESCE(?10,''), ?11, ?11, COALESCE(?12,''))",
    [S_DEV_MERGE] = "UPDATE devices SET device_type = COALESCE(?2, device_type), "
                    "model = COALESCE(?3, model), os = COALESCE(?4, os), "
                    "os_version = COALESCE(?5, os_version), imei = COALESCE(?6, imei), "
                    "friendly_name = COALESCE(?7, friendly_name), "
                    "phone_number = COALESCE(?8, phone_number), "
                    "user_agent = COALESCE(?9, user_agent), "
                    "eas_version = CASE WHEN ?11 >= last_seen_ms THEN COALESCE(?12, eas_version) "
                    "ELSE eas_version END, "
                    "user = CASE WHEN user = '' THEN COALESCE(?10, '') ELSE user END, "
                    "last_seen_ms = MAX(last_seen_ms, ?11) WHERE device_id = ?1",
    [S_USER_ADD] = "INSERT OR IGNORE INTO users(name, created_ms) VALUES(?1, ?2)",
    [S_CHECKIN] =
        "UPDATE devices SET os = COALESCE(?2, os), os_version = COALESCE(?3, os_version), "
        "agent_version = COALESCE(?4, agent_version), "
        "passcode = CASE WHEN ?5 < 0 THEN passcode ELSE ?5 END, "
        "encrypted = CASE WHEN ?6 < 0 THEN encrypted ELSE ?6 END, "
        "jailbroken = CASE WHEN ?7 < 0 THEN jailbroken ELSE ?7 END, "
        "last_checkin_ms = MAX(last_checkin_ms, ?8), "
        "last_seen_ms = MAX(last_seen_ms, ?8) WHERE device_id = ?1",
    [S_SET_MANAGED] = "UPDATE devices SET managed = ?2, user = COALESCE(?3, user) "
                      "WHERE device_id = ?1",
    [S_SET_OVERRIDE] = "UPDATE devices SET override = ?2 WHERE device_id = ?1",
    [S_WIPE_ACK] = "UPDATE devices SET wipe_acked_ms = MAX(wipe_acked_ms, ?2) WHERE device_id = ?1",
    [S_WIPE_KIND] = "UPDATE devices SET wipe_kind = ?2 WHERE device_id = ?1",
    [S_TOUCH] = "UPDATE devices SET version = ?2, updated_ms = ?3, pk_epoch = pk_epoch + ?4 "
                "WHERE device_id = ?1",
    [S_PROVISIONED] = "UPDATE devices SET policy_key = ?2, provisioned_ms = ?3 "
                      "WHERE device_id = ?1 AND provisioned_ms <= ?3",
    [S_STATE_GET] = "SELECT state, reason, version, non_compliant_since_ms, next_eval_ms "
                    "FROM devices WHERE device_id = ?1",
    [S_SEQ_NEXT] = "UPDATE meta SET value = value + 1 WHERE key = 'state_version' RETURNING value",
    [S_STATE_SET] = "UPDATE devices SET state = ?2, reason = ?3, version = ?4, updated_ms = ?5, "
                    "non_compliant_since_ms = ?6, next_eval_ms = ?7 WHERE device_id = ?1",
    [S_NCS_SET] = "UPDATE devices SET non_compliant_since_ms = ?2, next_eval_ms = ?3 "
                  "WHERE device_id = ?1",
    [S_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [S_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [S_DUE] = "SELECT device_id FROM devices WHERE next_eval_ms > 0 AND next_eval_ms <= ?1 "
              "ORDER BY next_eval_ms LIMIT ?2",
    [S_DEV_DELETE] = "DELETE FROM devices WHERE device_id = ?1",
    [S_RANK] = "SELECT COUNT(*) FROM devices d, devices me WHERE me.device_id = ?1 "
               "AND me.user <> '' AND d.user = me.user AND (d.managed = 1 OR d.id = me.id) "
               "AND (d.first_seen_ms < me.first_seen_ms "
               "OR (d.first_seen_ms = me.first_seen_ms AND d.device_id <= me.device_id))",
    [S_COUNT] = "SELECT COUNT(*) FROM devices",
    [S_ACTION_ADD] = "INSERT INTO admin_actions(device_id, action, actor, note, at_ms) "
                     "VALUES(?1, ?2, ?3, COALESCE(?4,''), ?5)",
    [S_ACTION_LIST] = "SELECT id, at_ms, device_id, action, actor, note FROM admin_actions "
                      "WHERE device_id = ?1 AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3",
    [S_AUDIT_ADD] = "INSERT INTO audit(at_ms, actor, address, action, target, detail) "
                    "VALUES(?1, ?2, COALESCE(?3,''), ?4, COALESCE(?5,''), COALESCE(?6,''))",
    [S_AUDIT_LIST] = "SELECT id, at_ms, actor, address, action, target, detail FROM audit "
                     "WHERE (?1 = 0 OR id < ?1) ORDER BY id DESC LIMIT ?2",
    [S_USER_LIST] = "SELECT u.name, u.created_ms, (SELECT COUNT(*) FROM devices d "
                    "WHERE d.user = u.name) FROM users u WHERE u.name > ?1 "
                    "ORDER BY u.name LIMIT ?2",
};

/* Transaction control runs on every engine step: prepared once, like the rest. */
enum txc_id {
    T_SP,
    T_SP_ROLLBACK,
    T_SP_RELEASE,
    T_BEGIN,
    T_COMMIT,
    T_ROLLBACK,
    T_TX_SP,
    T_TX_ROLLBACK,
    T_TX_RELEASE,
    T_COUNT_
};
static const char *const txc_sql[T_COUNT_] = {
    [T_SP] = "SAVEPOINT reg",       [T_SP_ROLLBACK] = "ROLLBACK TO reg",
    [T_SP_RELEASE] = "RELEASE reg", [T_BEGIN] = "BEGIN IMMEDIATE",
    [T_COMMIT] = "COMMIT",          [T_ROLLBACK] = "ROLLBACK",
    [T_TX_SP] = "SAVEPOINT tx",     [T_TX_ROLLBACK] = "ROLLBACK TO tx",
    [T_TX_RELEASE] = "RELEASE tx",
};

struct core_reg {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[S_COUNT_];
    sqlite3_stmt *tx[T_COUNT_];
    int savepoints; /* depth of open SAVEPOINTs, for nesting inside core_reg_begin */
    int tx_depth;   /* core_reg_begin nesting: the outermost is a real transaction */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static sqlite3_stmt *stmt(struct core_reg *reg, enum stmt_id id)
{
    if (!reg->st[id] && sqlite3_prepare_v3(reg->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                           &reg->st[id], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(reg->st[id]);
    sqlite3_clear_bindings(reg->st[id]);
    return reg->st[id];
}

/* Length of s clipped to fit max - 1 bytes without splitting a UTF-8 sequence. */
static int clip(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n < max)
        return (int)n;
    n = max - 1;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return (int)n;
}

/* Longest text column (audit detail); binds are clipped below this anyway. */
#define REG_TEXT_MAX 512

/*
 * Bind v clipped to max - 1 bytes. Control characters (which a phone or a
 * proxy could send in a friendly name or user agent) become '?', so nothing
 * stored can forge a line in a log or a table printed from the registry.
 */
static void bind_text(sqlite3_stmt *s, int i, const char *v, size_t max)
{
    if (!v) {
        sqlite3_bind_null(s, i);
        return;
    }
    int n = clip(v, max < REG_TEXT_MAX ? max : REG_TEXT_MAX);
    char buf[REG_TEXT_MAX];
    memcpy(buf, v, (size_t)n);
    for (int k = 0; k < n; k++)
        if ((unsigned char)buf[k] < 0x20 || buf[k] == 0x7f)
            buf[k] = '?';
    sqlite3_bind_text(s, i, buf, n, SQLITE_TRANSIENT);
}

static void col_text(sqlite3_stmt *s, int i, char *out, size_t max)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    int n = sqlite3_column_bytes(s, i);
    if (!t || n < 0)
        n = 0;
    if ((size_t)n >= max)
        n = clip((const char *)t, max);
    if (n)
        memcpy(out, t, (size_t)n);
    out[n] = '\0';
}

static int exec(struct core_reg *reg, const char *sql)
{
    return sqlite3_exec(reg->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : CORE_REG_EDB;
}

/* Run a prepared statement that returns no rows. */
static int step_done(sqlite3_stmt *s)
{
    if (!s)
        return CORE_REG_EDB;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

static int txc(struct core_reg *reg, enum txc_id id)
{
    if (!reg->tx[id] && sqlite3_prepare_v3(reg->db, txc_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                           &reg->tx[id], NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    int rc = sqlite3_step(reg->tx[id]);
    sqlite3_reset(reg->tx[id]);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

/* Nested transactions: SAVEPOINTs work both alone and inside core_reg_begin. */
static int sp_begin(struct core_reg *reg)
{
    if (txc(reg, T_SP) < 0)
        return CORE_REG_EDB;
    reg->savepoints++;
    return 0;
}

static int sp_end(struct core_reg *reg, int rc)
{
    reg->savepoints--;
    if (rc < 0) {
        txc(reg, T_SP_ROLLBACK);
        txc(reg, T_SP_RELEASE);
        return rc;
    }
    return txc(reg, T_SP_RELEASE);
}

/*
 * core_reg_begin nests: the outermost call opens a real (IMMEDIATE: take the
 * write lock now, not halfway through) transaction, inner ones a SAVEPOINT,
 * so an engine step can be atomic on its own and inside a batch alike.
 */
int core_reg_begin(struct core_reg *reg)
{
    int rc = txc(reg, reg->tx_depth == 0 ? T_BEGIN : T_TX_SP);
    if (rc == 0)
        reg->tx_depth++;
    return rc;
}

int core_reg_commit(struct core_reg *reg)
{
    if (reg->tx_depth == 0)
        return CORE_REG_EINVAL;
    reg->tx_depth--;
    int rc = txc(reg, reg->tx_depth == 0 ? T_COMMIT : T_TX_RELEASE);
    if (rc < 0 && reg->tx_depth == 0)
        txc(reg, T_ROLLBACK); /* a failed COMMIT leaves the transaction open: end it */
    return rc;
}

int core_reg_rollback(struct core_reg *reg)
{
    if (reg->tx_depth == 0)
        return CORE_REG_EINVAL;
    reg->tx_depth--;
    if (reg->tx_depth == 0)
        return txc(reg, T_ROLLBACK);
    int rc = txc(reg, T_TX_ROLLBACK);
    return txc(reg, T_TX_RELEASE) < 0 ? CORE_REG_EDB : rc;
}

/* ---- open and migrate --------------------------------------------------- */

/* Bookkeeping timestamps only (schema_version, users); decisions take now_ms from the caller. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int query_int(struct core_reg *reg, const char *sql, int64_t *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(reg->db, sql, -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? CORE_REG_ENOTFOUND : CORE_REG_EDB;
}

static int current_version(struct core_reg *reg, int64_t *v, char *err, size_t errlen)
{
    int64_t has = 0, tables = 0;
    if (query_int(reg,
                  "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = "
                  "'schema_version'",
                  &has) < 0 ||
        query_int(reg, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'", &tables) < 0) {
        seterr(err, errlen, "%s: cannot read the database: %s", reg->path, sqlite3_errmsg(reg->db));
        return CORE_REG_EDB;
    }
    if (!has) {
        if (tables > 0) {
            seterr(err, errlen,
                   "%s: not an easgate registry (it has tables but no schema_version); "
                   "point core.database at a new file",
                   reg->path);
            return CORE_REG_EINVAL;
        }
        *v = 0;
        return 0;
    }
    if (query_int(reg, "SELECT COALESCE(MAX(version), 0) FROM schema_version", v) < 0) {
        seterr(err, errlen, "%s: cannot read schema_version: %s", reg->path,
               sqlite3_errmsg(reg->db));
        return CORE_REG_EDB;
    }
    return 0;
}

static int migrate(struct core_reg *reg, int64_t from, char *err, size_t errlen)
{
    for (int64_t v = from; v < (int64_t)N_MIGRATIONS; v++) {
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO schema_version(version, applied_ms) VALUES(%lld, %lld)",
                 (long long)(v + 1), (long long)wall_ms());
        if (exec(reg, "BEGIN IMMEDIATE") < 0 ||
            (v == 0 && exec(reg, "CREATE TABLE IF NOT EXISTS schema_version("
                                 "version INTEGER NOT NULL PRIMARY KEY, "
                                 "applied_ms INTEGER NOT NULL)") < 0) ||
            exec(reg, migrations[v]) < 0 || exec(reg, sql) < 0) {
            seterr(err, errlen, "%s: migration to schema version %lld failed: %s", reg->path,
                   (long long)(v + 1), sqlite3_errmsg(reg->db));
            exec(reg, "ROLLBACK");
            return CORE_REG_EDB;
        }
        if (exec(reg, "COMMIT") < 0) {
            seterr(err, errlen, "%s: commit of schema version %lld failed: %s", reg->path,
                   (long long)(v + 1), sqlite3_errmsg(reg->db));
            exec(reg, "ROLLBACK");
            return CORE_REG_EDB;
        }
    }
    return 0;
}

int core_reg_open(const char *path, struct core_reg **out, char *err, size_t errlen)
{
    *out = NULL;
    struct core_reg *reg = calloc(1, sizeof(*reg));
    if (!reg || !(reg->path = strdup(path))) {
        free(reg);
        seterr(err, errlen, "out of memory");
        return CORE_REG_ENOMEM;
    }
    int rc = CORE_REG_EDB;
    if (sqlite3_open_v2(path, &reg->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        seterr(err, errlen, "%s: cannot open the registry: %s", path,
               reg->db ? sqlite3_errmsg(reg->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(reg->db, REG_BUSY_TIMEOUT_MS);
    int64_t v = 0;
    /* Look before writing anything: a newer database must be left as it is. */
    if ((rc = current_version(reg, &v, err, errlen)) < 0)
        goto fail;
    if (v > (int64_t)CORE_REG_SCHEMA) {
        seterr(err, errlen,
               "%s: the registry is at schema version %lld but this easgate knows only up to %d; "
               "it was written by a newer easgate: run that version (or restore a backup)",
               path, (long long)v, CORE_REG_SCHEMA);
        rc = CORE_REG_ENEWER;
        goto fail;
    }
    /* WAL: the admin API and CLI read while the core writes. NORMAL sync is
     * durable across crashes of the process; a power cut may lose the last
     * commits but never corrupts, and a resync repairs Redis either way. */
    if (exec(reg, "PRAGMA journal_mode=WAL") < 0 || exec(reg, "PRAGMA synchronous=NORMAL") < 0 ||
        exec(reg, "PRAGMA cache_size=" REG_CACHE_KIB) < 0) {
        seterr(err, errlen, "%s: cannot switch to WAL mode: %s", path, sqlite3_errmsg(reg->db));
        rc = CORE_REG_EDB;
        goto fail;
    }
    if ((rc = migrate(reg, v, err, errlen)) < 0)
        goto fail;
    *out = reg;
    return 0;
fail:
    core_reg_close(reg);
    return rc;
}

void core_reg_close(struct core_reg *reg)
{
    if (!reg)
        return;
    for (int i = 0; i < S_COUNT_; i++)
        sqlite3_finalize(reg->st[i]);
    for (int i = 0; i < T_COUNT_; i++)
        sqlite3_finalize(reg->tx[i]);
    sqlite3_close(reg->db);
    free(reg->path);
    free(reg);
}

int core_reg_schema_version(struct core_reg *reg)
{
    int64_t v = 0;
    if (query_int(reg, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &v) < 0)
        return CORE_REG_EDB;
    return (int)v;
}

struct sqlite3 *core_reg_sqlite(struct core_reg *reg)
{
    return reg->db;
}

/* ---- devices -------------------------------------------------------------- */

int core_reg_devid(const char *in, char *out)
{
    if (!in)
        return CORE_REG_EINVAL;
    int n = easq_deviceid_norm(in, strlen(in), out, CORE_DEVID_MAX + 1);
    return n > 0 ? 0 : CORE_REG_EINVAL;
}

static enum compliance_tri tri(sqlite3_stmt *s, int i)
{
    int v = sqlite3_column_int(s, i);
    return v < 0 ? COMPLIANCE_UNKNOWN : v ? COMPLIANCE_YES : COMPLIANCE_NO;
}

static void row_device(sqlite3_stmt *s, struct core_device *d)
{
    memset(d, 0, sizeof(*d));
    col_text(s, 0, d->device_id, sizeof(d->device_id));
    col_text(s, 1, d->device_type, sizeof(d->device_type));
    col_text(s, 2, d->model, sizeof(d->model));
    col_text(s, 3, d->os, sizeof(d->os));
    col_text(s, 4, d->os_version, sizeof(d->os_version));
    col_text(s, 5, d->imei, sizeof(d->imei));
    col_text(s, 6, d->friendly_name, sizeof(d->friendly_name));
    col_text(s, 7, d->phone_number, sizeof(d->phone_number));
    col_text(s, 8, d->user_agent, sizeof(d->user_agent));
    col_text(s, 9, d->user, sizeof(d->user));
    d->first_seen_ms = sqlite3_column_int64(s, 10);
    d->last_seen_ms = sqlite3_column_int64(s, 11);
    d->last_checkin_ms = sqlite3_column_int64(s, 12);
    d->managed = sqlite3_column_int(s, 13) != 0;
    d->passcode = tri(s, 14);
    d->encrypted = tri(s, 15);
    d->jailbroken = tri(s, 16);
    col_text(s, 17, d->agent_version, sizeof(d->agent_version));
    d->wipe_acked_ms = sqlite3_column_int64(s, 18);
    if (compliance_state_parse((const char *)sqlite3_column_text(s, 19), &d->state) < 0)
        d->state = COMPLIANCE_BLOCK; /* unreadable state fails closed */
    col_text(s, 20, d->reason, sizeof(d->reason));
    d->version = sqlite3_column_int64(s, 21);
    d->updated_ms = sqlite3_column_int64(s, 22);
    d->non_compliant_since_ms = sqlite3_column_int64(s, 23);
    if (compliance_override_parse((const char *)sqlite3_column_text(s, 24), &d->override) < 0)
        d->override = COMPLIANCE_OVR_NONE;
    d->next_eval_ms = sqlite3_column_int64(s, 25);
    const unsigned char *wk = sqlite3_column_text(s, 26);
    d->wipe_account = wk && strcmp((const char *)wk, "account") == 0;
    col_text(s, 27, d->eas_version, sizeof(d->eas_version));
    d->pk_epoch = sqlite3_column_int64(s, 28);
    d->policy_key = (uint32_t)sqlite3_column_int64(s, 29);
    d->provisioned_ms = sqlite3_column_int64(s, 30);
}

/* Canonicalise device_id into id or fail with EINVAL. */
#define CANON(id, in)                                                                              \
    char id[CORE_DEVID_MAX + 1];                                                                   \
    if (core_reg_devid(in, id) < 0)                                                                \
        return CORE_REG_EINVAL;

int core_reg_device_get(struct core_reg *reg, const char *device_id, struct core_device *out)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_DEV_GET);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        row_device(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? CORE_REG_ENOTFOUND : CORE_REG_EDB;
}

static int user_add(struct core_reg *reg, const char *user, int64_t now_ms)
{
    if (!user || !*user)
        return 0;
    sqlite3_stmt *s = stmt(reg, S_USER_ADD);
    if (!s)
        return CORE_REG_EDB;
    bind_text(s, 1, user, CORE_USER_MAX);
    sqlite3_bind_int64(s, 2, now_ms);
    return step_done(s);
}

static void bind_info(sqlite3_stmt *s, const char *id, const struct core_devinfo *in,
                      int64_t now_ms)
{
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    bind_text(s, 2, in->device_type, CORE_SHORT_MAX);
    bind_text(s, 3, in->model, CORE_NAME_MAX);
    bind_text(s, 4, in->os, CORE_SHORT_MAX);
    bind_text(s, 5, in->os_version, CORE_SHORT_MAX);
    bind_text(s, 6, in->imei, CORE_SHORT_MAX);
    bind_text(s, 7, in->friendly_name, CORE_NAME_MAX);
    bind_text(s, 8, in->phone_number, CORE_SHORT_MAX);
    bind_text(s, 9, in->user_agent, CORE_AGENT_MAX);
    bind_text(s, 10, in->user && *in->user ? in->user : NULL, CORE_USER_MAX);
    sqlite3_bind_int64(s, 11, now_ms);
    bind_text(s, 12, in->eas_version, CORE_EASVER_MAX);
}

int core_reg_device_seen(struct core_reg *reg, const char *device_id,
                         const struct core_devinfo *info, int64_t now_ms, bool *created)
{
    CANON(id, device_id);
    static const struct core_devinfo none;
    if (!info)
        info = &none;
    if (sp_begin(reg) < 0)
        return CORE_REG_EDB;
    sqlite3_stmt *s = stmt(reg, S_DEV_EXISTS);
    int rc = CORE_REG_EDB;
    if (!s)
        return sp_end(reg, rc);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    bool exists = step == SQLITE_ROW;
    bool had_user = exists && sqlite3_column_bytes(s, 0) > 0;
    sqlite3_reset(s);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return sp_end(reg, CORE_REG_EDB);
    s = stmt(reg, exists ? S_DEV_MERGE : S_DEV_INSERT);
    if (!s)
        return sp_end(reg, CORE_REG_EDB);
    bind_info(s, id, info, now_ms);
    rc = step_done(s);
    if (rc == 0 && !had_user)
        rc = user_add(reg, info->user, now_ms);
    if (rc == 0 && created)
        *created = !exists;
    return sp_end(reg, rc);
}

/* Run a one-row UPDATE bound by the caller; ENOTFOUND if it touched nothing. */
static int update_one(struct core_reg *reg, sqlite3_stmt *s)
{
    int rc = step_done(s);
    if (rc < 0)
        return rc;
    return sqlite3_changes(reg->db) == 1 ? 0 : CORE_REG_ENOTFOUND;
}

int core_reg_checkin(struct core_reg *reg, const char *device_id, const struct core_checkin *c,
                     int64_t now_ms)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_CHECKIN);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    bind_text(s, 2, c->os, CORE_SHORT_MAX);
    bind_text(s, 3, c->os_version, CORE_SHORT_MAX);
    bind_text(s, 4, c->agent_version, CORE_SHORT_MAX);
    sqlite3_bind_int(s, 5, (int)c->passcode);
    sqlite3_bind_int(s, 6, (int)c->encrypted);
    sqlite3_bind_int(s, 7, (int)c->jailbroken);
    sqlite3_bind_int64(s, 8, now_ms);
    return update_one(reg, s);
}

int core_reg_set_managed(struct core_reg *reg, const char *device_id, bool managed,
                         const char *user)
{
    CANON(id, device_id);
    if (sp_begin(reg) < 0)
        return CORE_REG_EDB;
    sqlite3_stmt *s = stmt(reg, S_SET_MANAGED);
    if (!s)
        return sp_end(reg, CORE_REG_EDB);
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 2, managed);
    bind_text(s, 3, user && *user ? user : NULL, CORE_USER_MAX);
    int rc = update_one(reg, s);
    if (rc == 0)
        rc = user_add(reg, user, wall_ms());
    return sp_end(reg, rc);
}

int core_reg_set_override(struct core_reg *reg, const char *device_id, enum compliance_override ovr)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_SET_OVERRIDE);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, compliance_override_name(ovr), -1, SQLITE_STATIC);
    return update_one(reg, s);
}

int core_reg_wipe_acked(struct core_reg *reg, const char *device_id, int64_t now_ms)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_WIPE_ACK);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, now_ms);
    return update_one(reg, s);
}

int core_reg_set_wipe_kind(struct core_reg *reg, const char *device_id, bool account)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_WIPE_KIND);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, account ? "account" : "full", -1, SQLITE_STATIC);
    return update_one(reg, s);
}

int core_reg_provisioned(struct core_reg *reg, const char *device_id, uint32_t key, int64_t when_ms)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_PROVISIONED);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, (int64_t)key);
    sqlite3_bind_int64(s, 3, when_ms);
    int rc = step_done(s);
    if (rc < 0)
        return rc;
    if (sqlite3_changes(reg->db) == 1)
        return 0;
    /* Nothing changed: an unknown device, or an older sighting replayed. */
    return core_reg_device_exists(reg, id) > 0 ? 0 : CORE_REG_ENOTFOUND;
}

static int next_version(struct core_reg *reg, int64_t *v);

int core_reg_touch(struct core_reg *reg, const char *device_id, bool reprovision, int64_t now_ms,
                   int64_t *version)
{
    CANON(id, device_id);
    if (sp_begin(reg) < 0)
        return CORE_REG_EDB;
    int64_t v = 0;
    int rc = next_version(reg, &v);
    sqlite3_stmt *s = rc == 0 ? stmt(reg, S_TOUCH) : NULL;
    if (rc == 0 && !s)
        rc = CORE_REG_EDB;
    if (rc == 0) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, v);
        sqlite3_bind_int64(s, 3, now_ms);
        sqlite3_bind_int(s, 4, reprovision ? 1 : 0);
        rc = update_one(reg, s);
    }
    if (rc == 0 && version)
        *version = v;
    return sp_end(reg, rc);
}

static int next_version(struct core_reg *reg, int64_t *v)
{
    sqlite3_stmt *s = stmt(reg, S_SEQ_NEXT);
    if (!s)
        return CORE_REG_EDB;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(s, 0);
    /* RETURNING: the update is complete only once the statement has run out. */
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

static int state_set_locked(struct core_reg *reg, const char *id, enum compliance_state state,
                            const char *reason, int64_t ncs, int64_t next_eval, int64_t now_ms,
                            bool *changed, int64_t *version)
{
    sqlite3_stmt *s = stmt(reg, S_STATE_GET);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step != SQLITE_ROW) {
        sqlite3_reset(s);
        return step == SQLITE_DONE ? CORE_REG_ENOTFOUND : CORE_REG_EDB;
    }
    char old_reason[CORE_REASON_MAX];
    enum compliance_state old;
    if (compliance_state_parse((const char *)sqlite3_column_text(s, 0), &old) < 0)
        old = (enum compliance_state) - 1;
    col_text(s, 1, old_reason, sizeof(old_reason));
    int64_t v = sqlite3_column_int64(s, 2);
    int64_t old_ncs = sqlite3_column_int64(s, 3), old_next = sqlite3_column_int64(s, 4);
    sqlite3_reset(s);

    char want_reason[CORE_REASON_MAX];
    snprintf(want_reason, sizeof(want_reason), "%.*s", clip(reason, CORE_REASON_MAX), reason);
    bool differs = old != state || strcmp(old_reason, want_reason) != 0;
    int rc;
    if (differs) {
        if ((rc = next_version(reg, &v)) < 0 || !(s = stmt(reg, S_STATE_SET)))
            return rc < 0 ? rc : CORE_REG_EDB;
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, compliance_state_name(state), -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, want_reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 4, v);
        sqlite3_bind_int64(s, 5, now_ms);
        sqlite3_bind_int64(s, 6, ncs);
        sqlite3_bind_int64(s, 7, next_eval);
    } else if (old_ncs == ncs && old_next == next_eval) {
        s = NULL; /* nothing to write: the common case of a check-in that changes nothing */
    } else {
        if (!(s = stmt(reg, S_NCS_SET)))
            return CORE_REG_EDB;
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, ncs);
        sqlite3_bind_int64(s, 3, next_eval);
    }
    if (s && (rc = update_one(reg, s)) < 0)
        return rc;
    if (changed)
        *changed = differs;
    if (version)
        *version = v;
    return 0;
}

int core_reg_set_state(struct core_reg *reg, const char *device_id, enum compliance_state state,
                       const char *reason, int64_t non_compliant_since_ms, int64_t next_eval_ms,
                       int64_t now_ms, bool *changed, int64_t *version)
{
    CANON(id, device_id);
    if (!reason || (unsigned)state > COMPLIANCE_WIPE)
        return CORE_REG_EINVAL;
    if (sp_begin(reg) < 0)
        return CORE_REG_EDB;
    int rc = state_set_locked(reg, id, state, reason, non_compliant_since_ms, next_eval_ms, now_ms,
                              changed, version);
    return sp_end(reg, rc);
}

int core_reg_meta_get(struct core_reg *reg, const char *key, int64_t *value)
{
    sqlite3_stmt *s = stmt(reg, S_META_GET);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *value = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? CORE_REG_ENOTFOUND : CORE_REG_EDB;
}

int core_reg_meta_set(struct core_reg *reg, const char *key, int64_t value)
{
    if (!key || strcmp(key, "state_version") == 0)
        return CORE_REG_EINVAL; /* the sequence moves only through next_version */
    sqlite3_stmt *s = stmt(reg, S_META_SET);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, value);
    return step_done(s);
}

int core_reg_next_version(struct core_reg *reg, int64_t *version)
{
    return next_version(reg, version);
}

int core_reg_device_exists(struct core_reg *reg, const char *device_id)
{
    sqlite3_stmt *s = stmt(reg, S_DEV_EXISTS);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

int core_reg_due(struct core_reg *reg, int64_t now_ms, char (*ids)[CORE_DEVID_MAX + 1], size_t max,
                 size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = stmt(reg, S_DUE);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW)
        col_text(s, 0, ids[(*n)++], CORE_DEVID_MAX + 1);
    rc = *n == max ? SQLITE_DONE : rc;
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

int core_reg_device_delete(struct core_reg *reg, const char *device_id)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_DEV_DELETE);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    return update_one(reg, s);
}

int core_reg_user_rank(struct core_reg *reg, const char *device_id, uint32_t *rank)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_RANK);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *rank = (uint32_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : CORE_REG_EDB;
}

int64_t core_reg_device_count(struct core_reg *reg)
{
    sqlite3_stmt *s = stmt(reg, S_COUNT);
    if (!s)
        return CORE_REG_EDB;
    int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : CORE_REG_EDB;
    sqlite3_reset(s);
    return n;
}

void core_dev_filter_init(struct core_dev_filter *f)
{
    memset(f, 0, sizeof(*f));
    f->state = -1;
    f->managed = -1;
}

/*
 * The list query is assembled from the filters that are set, so SQLite can
 * pick the index that fits (user, state, type or DeviceId order); one
 * catch-all statement with "?1 IS NULL OR ..." would defeat every index.
 */
int core_reg_device_list(struct core_reg *reg, const struct core_dev_filter *f,
                         struct core_device *out, size_t max, size_t *n)
{
    *n = 0;
    if (max == 0)
        return 0;
    char sql[768];
    size_t at = (size_t)snprintf(sql, sizeof(sql), "SELECT " DEV_COLS " FROM devices WHERE 1");
#define ADD(cond) at += (size_t)snprintf(sql + at, sizeof(sql) - at, " AND %s", cond)
    /* A user has a handful of devices: with a user given, the unary + keeps
     * SQLite off the type and state indexes (which can hold most of a
     * million rows) and on devices_by_user. */
    if (f->user)
        ADD("user = ?1");
    if (f->device_type)
        ADD(f->user ? "+device_type = ?2 COLLATE NOCASE" : "device_type = ?2 COLLATE NOCASE");
    if (f->state >= 0)
        ADD(f->user ? "+state = ?3" : "state = ?3");
    if (f->managed >= 0)
        ADD("managed = ?4");
    if (f->seen_since_ms > 0)
        ADD("last_seen_ms >= ?5");
    if (f->seen_before_ms > 0)
        ADD("last_seen_ms < ?6");
    if (f->after)
        ADD("device_id > ?7");
#undef ADD
    snprintf(sql + at, sizeof(sql) - at, " ORDER BY device_id LIMIT ?8");
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(reg->db, sql, -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    if (f->user)
        bind_text(s, 1, f->user, CORE_USER_MAX);
    if (f->device_type)
        bind_text(s, 2, f->device_type, CORE_SHORT_MAX);
    if (f->state >= 0)
        sqlite3_bind_text(s, 3, compliance_state_name((enum compliance_state)f->state), -1,
                          SQLITE_STATIC);
    if (f->managed >= 0)
        sqlite3_bind_int(s, 4, f->managed ? 1 : 0);
    sqlite3_bind_int64(s, 5, f->seen_since_ms);
    sqlite3_bind_int64(s, 6, f->seen_before_ms);
    if (f->after) {
        char after[CORE_DEVID_MAX + 1];
        /* A cursor that is not a valid DeviceId still orders correctly as text. */
        if (core_reg_devid(f->after, after) == 0)
            sqlite3_bind_text(s, 7, after, -1, SQLITE_TRANSIENT);
        else
            bind_text(s, 7, f->after, CORE_USER_MAX);
    }
    sqlite3_bind_int64(s, 8, (int64_t)max);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
        row_device(s, &out[(*n)++]);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : CORE_REG_EDB;
}

int core_reg_device_foreach(struct core_reg *reg, int (*cb)(const struct core_device *d, void *arg),
                            void *arg)
{
    struct core_device *page = malloc(REG_PAGE * sizeof(*page));
    if (!page)
        return CORE_REG_ENOMEM;
    struct core_dev_filter f;
    core_dev_filter_init(&f);
    char after[CORE_DEVID_MAX + 1] = "";
    int rc = 0;
    for (;;) {
        size_t n;
        f.after = after[0] ? after : NULL;
        if ((rc = core_reg_device_list(reg, &f, page, REG_PAGE, &n)) < 0 || n == 0)
            break;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = cb(&page[i], arg);
        if (rc != 0 || n < REG_PAGE)
            break;
        memcpy(after, page[n - 1].device_id, sizeof(after));
    }
    free(page);
    return rc;
}

/* ---- users, admin actions, audit ---------------------------------------- */

int core_reg_user_list(struct core_reg *reg, const char *after, struct core_user *out, size_t max,
                       size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = stmt(reg, S_USER_LIST);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, after ? after : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct core_user *u = &out[(*n)++];
        col_text(s, 0, u->name, sizeof(u->name));
        u->created_ms = sqlite3_column_int64(s, 1);
        u->devices = sqlite3_column_int64(s, 2);
    }
    rc = *n == max ? SQLITE_DONE : rc;
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

int core_reg_action_add(struct core_reg *reg, const char *device_id, const char *action,
                        const char *actor, const char *note, int64_t now_ms)
{
    CANON(id, device_id);
    if (!action || !actor)
        return CORE_REG_EINVAL;
    sqlite3_stmt *s = stmt(reg, S_ACTION_ADD);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    bind_text(s, 2, action, 32);
    bind_text(s, 3, actor, CORE_USER_MAX);
    bind_text(s, 4, note, 256);
    sqlite3_bind_int64(s, 5, now_ms);
    return step_done(s);
}

int core_reg_action_list(struct core_reg *reg, const char *device_id, int64_t before_id,
                         struct core_action *out, size_t max, size_t *n)
{
    *n = 0;
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_ACTION_LIST);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, before_id);
    sqlite3_bind_int64(s, 3, (int64_t)max);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct core_action *a = &out[(*n)++];
        a->id = sqlite3_column_int64(s, 0);
        a->at_ms = sqlite3_column_int64(s, 1);
        col_text(s, 2, a->device_id, sizeof(a->device_id));
        col_text(s, 3, a->action, sizeof(a->action));
        col_text(s, 4, a->actor, sizeof(a->actor));
        col_text(s, 5, a->note, sizeof(a->note));
    }
    rc = *n == max ? SQLITE_DONE : rc;
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

int core_reg_audit_add(struct core_reg *reg, const char *actor, const char *address,
                       const char *action, const char *target, const char *detail, int64_t now_ms)
{
    if (!actor || !action)
        return CORE_REG_EINVAL;
    sqlite3_stmt *s = stmt(reg, S_AUDIT_ADD);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_int64(s, 1, now_ms);
    bind_text(s, 2, actor, CORE_USER_MAX);
    bind_text(s, 3, address, 64);
    bind_text(s, 4, action, 64);
    bind_text(s, 5, target, CORE_USER_MAX);
    bind_text(s, 6, detail, 512);
    return step_done(s);
}

int core_reg_audit_list(struct core_reg *reg, int64_t before_id, struct core_audit *out, size_t max,
                        size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = stmt(reg, S_AUDIT_LIST);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_int64(s, 1, before_id);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct core_audit *a = &out[(*n)++];
        a->id = sqlite3_column_int64(s, 0);
        a->at_ms = sqlite3_column_int64(s, 1);
        col_text(s, 2, a->actor, sizeof(a->actor));
        col_text(s, 3, a->address, sizeof(a->address));
        col_text(s, 4, a->action, sizeof(a->action));
        col_text(s, 5, a->target, sizeof(a->target));
        col_text(s, 6, a->detail, sizeof(a->detail));
    }
    rc = *n == max ? SQLITE_DONE : rc;
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}
