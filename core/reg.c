/*
 * core_reg: the device registry over SQLite. See reg.h for the contract.
 *
 * Migrations are an append-only list of SQL scripts: index i brings the
 * schema from version i to i + 1. Never edit a released step; add a new one.
 * Statements the core runs often are prepared once and kept (stmt()).
 */
#include "core/reg.h"

#include "common/log.h"
#include "eas/easq.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A writer waits this long for another writer (e.g. the CLI) before giving up. */
#define REG_BUSY_TIMEOUT_MS 5000
/* Page cache (negative = KiB): a million devices' indexes stay in memory. */
#define REG_CACHE_KIB "-65536"
/*
 * Page size of a new registry. A change rewrites whole pages into the WAL
 * and again into the file at the checkpoint, so the page is the unit of
 * disk written per change: a state change touches a handful of pages at
 * random places of a million-device registry. Existing registries keep
 * the size they were made with: a migration cannot change it, only a
 * VACUUM of the whole file with the core stopped (docs/core.md, "Scale").
 */
#define REG_PAGE_SIZE 4096
/* A WAL that grew under a burst is cut back to this after it starts over. */
#define REG_WAL_KEEP "67108864"
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

    /* 7: scale (docs/core.md, "Scale"). When a device was last seen and
     * last checked in move on almost every contact, so they leave the wide
     * devices row for a narrow table of their own: the core writes them in
     * batches, sorted, and a batch dirties a few narrow pages instead of one
     * wide page per device. devices.last_seen_ms and last_checkin_ms stay as
     * they were at this migration (migrations do not drop columns) and are
     * no longer read; their index goes, it would only cost writes. The
     * last-seen filters walk an index on the hour of last seen (seen_hour),
     * not on the time itself: an index entry moves only when a device's
     * hour does, so flushing the times of devices that keep in touch
     * rewrites their narrow rows and not, each time, a random index page
     * as well (the exact time is then checked on the rows the hours
     * give). Indexes
     * for every documented list filter: managed, OS family, the failing
     * devices (a partial index: a small minority), and the audit log by
     * target. */
    "CREATE TABLE device_seen("
    "  device_id TEXT NOT NULL PRIMARY KEY,"
    "  last_seen_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_checkin_ms INTEGER NOT NULL DEFAULT 0,"
    "  seen_hour INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "INSERT INTO device_seen(device_id, last_seen_ms, last_checkin_ms, seen_hour)"
    "  SELECT device_id, last_seen_ms, last_checkin_ms, last_seen_ms / 3600000 FROM devices"
    "  ORDER BY device_id;"
    "CREATE INDEX device_seen_by_hour ON device_seen(seen_hour);"
    "DROP INDEX devices_by_last_seen;"
    "CREATE INDEX devices_by_managed ON devices(managed, device_id);"
    "CREATE INDEX devices_by_os ON devices(os COLLATE NOCASE, device_id);"
    "CREATE INDEX devices_failing ON devices(device_id) WHERE non_compliant_since_ms > 0;"
    "CREATE INDEX audit_by_target ON audit(target, id);",

    /* 8: devices seen but never accepted (docs/security.md section 5):
     * sightings the proxy answered itself, without Exchange authenticating
     * anyone, of devices the registry does not hold. They never become
     * registry rows or Redis keys on their own; this table keeps the newest
     * core.pending_max of them for core.pending_ttl so an admin can approve
     * one, and drops the oldest first. A final policy key the server role
     * issued to such a device is kept with it and carried over when the
     * device is registered. */
    "CREATE TABLE pending_devices("
    "  device_id TEXT NOT NULL PRIMARY KEY,"
    "  user TEXT NOT NULL DEFAULT '',"
    "  device_type TEXT NOT NULL DEFAULT '',"
    "  user_agent TEXT NOT NULL DEFAULT '',"
    "  client_addr TEXT NOT NULL DEFAULT '',"
    "  first_ms INTEGER NOT NULL,"
    "  last_ms INTEGER NOT NULL,"
    "  count INTEGER NOT NULL DEFAULT 1,"
    "  policy_key INTEGER NOT NULL DEFAULT 0,"
    "  provisioned_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE INDEX pending_by_last ON pending_devices(last_ms);",

    /* 9: the OS as ActiveSync DeviceInformation reported it, apart from the
     * authenticated one (check-ins, imports) that compliance trusts
     * (docs/security.md section 5). Until now both landed in os and
     * os_version; for a device that never checked in they can only have
     * come from a sighting (or an import), so they move to the reported
     * columns: failing closed beats trusting a value anyone could write. */
    "ALTER TABLE devices ADD COLUMN eas_os TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE devices ADD COLUMN eas_os_version TEXT NOT NULL DEFAULT '';"
    "UPDATE devices SET eas_os = os, eas_os_version = os_version;"
    "UPDATE devices SET os = '', os_version = '' WHERE os <> '' AND last_checkin_ms = 0 AND "
    "  COALESCE((SELECT s.last_checkin_ms FROM device_seen s "
    "            WHERE s.device_id = devices.device_id), 0) = 0;",

    /* 10: the notification queue (core/notify.c): each row one mail (the
     * whole message) or one webhook body, kept after sending until
     * core.notify.keep so its dedup key still refuses a second copy; the
     * language of an invitation, for the mails its user gets later;
     * pending devices by first sighting, where the sender's cursor reads;
     * and the sender's cursors, so what happens from this version on is
     * told (whichever role writes it first), and nothing from before */
    "CREATE TABLE notify_queue("
    "  id INTEGER PRIMARY KEY,"
    "  channel TEXT NOT NULL CHECK(channel IN ('mail','webhook')),"
    "  target TEXT NOT NULL,"
    "  event TEXT NOT NULL DEFAULT '',"
    "  dedup TEXT UNIQUE,"
    "  body BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  next_ms INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL DEFAULT 'queued' CHECK(state IN ('queued','sent','failed')),"
    "  sent_ms INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX notify_due ON notify_queue(next_ms) WHERE state = 'queued';"
    "CREATE INDEX notify_sent_to ON notify_queue(target, sent_ms) WHERE state = 'sent';"
    "ALTER TABLE enroll_invitations ADD COLUMN lang TEXT NOT NULL DEFAULT '';"
    "CREATE INDEX pending_by_first ON pending_devices(first_ms);"
    "INSERT INTO meta(key, value) SELECT 'notify_audit_id', COALESCE(MAX(id), 0) FROM audit;"
    "INSERT INTO meta(key, value) SELECT 'notify_pending_ms', COALESCE(MAX(first_ms), 0) "
    "  FROM pending_devices;",

    /* 11: an autoblock (core/sight.c): a proxy reported the device crossing
     * one of the policy's abuse.autoblock thresholds; the device stays
     * blocked until autoblock_until_ms (a fact the evaluation reads, and
     * the timer that lifts it), with "autoblock:RULE" as the reason, unless
     * an admin's allow or reset clears it first */
    "ALTER TABLE devices ADD COLUMN autoblock_until_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE devices ADD COLUMN autoblock_reason TEXT NOT NULL DEFAULT '';",

    /* 12: the client address of a device's newest sighting (as the proxy
     * saw it: the peer, or the trusted forwarder's client), beside its
     * protocol version and user agent (issue 17) */
    "ALTER TABLE devices ADD COLUMN last_client TEXT NOT NULL DEFAULT '';",

    /* 13: the enrollment portal (enroll/portal.c): a certificate it issues
     * names an enrollment id instead of a DeviceId, and is stored with
     * device_id '' until the device's first request Exchange accepts binds
     * it (core/sight.c); bound_ms says when */
    "ALTER TABLE enroll_certs ADD COLUMN enrollment TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE enroll_certs ADD COLUMN bound_ms INTEGER NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX enroll_certs_by_enrollment ON enroll_certs(enrollment) "
    "  WHERE enrollment <> '';",

    /* 14: the dashboard's figures (GET /api/v1/stats), kept by the database
     * itself so that they cost a few rows to read at any registry or audit
     * size, where counting would walk a million devices or every audit row
     * of a month at each look. Triggers keep them, in the transaction of
     * the write they count, whoever writes: device_counts holds devices
     * per (state, reason "compliant", failing checks: non_compliant_since
     * set), the keys of the list's state and compliance filters, so each
     * count is exactly what its filtered list shows; activity holds, per
     * hour, the devices registered (first seen), the certificates issued
     * and the changes of a device's state to block. Counts and
     * registrations start from what the tables hold; blocks are counted
     * from this version on (the past ones are only in audit text). */
    "CREATE TABLE device_counts("
    "  state TEXT NOT NULL,"
    "  compliant INTEGER NOT NULL,"
    "  failing INTEGER NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  PRIMARY KEY(state, compliant, failing)) WITHOUT ROWID;"
    "INSERT INTO device_counts(state, compliant, failing, n)"
    "  SELECT state, reason = 'compliant', non_compliant_since_ms > 0, count(*) FROM devices"
    "  GROUP BY 1, 2, 3;"
    "CREATE TRIGGER device_counts_insert AFTER INSERT ON devices BEGIN"
    "  INSERT INTO device_counts(state, compliant, failing, n)"
    "  VALUES(NEW.state, NEW.reason = 'compliant', NEW.non_compliant_since_ms > 0, 1)"
    "  ON CONFLICT(state, compliant, failing) DO UPDATE SET n = n + 1; END;"
    "CREATE TRIGGER device_counts_delete AFTER DELETE ON devices BEGIN"
    "  UPDATE device_counts SET n = n - 1 WHERE state = OLD.state AND"
    "  compliant = (OLD.reason = 'compliant') AND failing = (OLD.non_compliant_since_ms > 0); END;"
    "CREATE TRIGGER device_counts_update"
    "  AFTER UPDATE OF state, reason, non_compliant_since_ms ON devices"
    "  WHEN NEW.state <> OLD.state OR (NEW.reason = 'compliant') <> (OLD.reason = 'compliant')"
    "  OR (NEW.non_compliant_since_ms > 0) <> (OLD.non_compliant_since_ms > 0) BEGIN"
    "  UPDATE device_counts SET n = n - 1 WHERE state = OLD.state AND"
    "  compliant = (OLD.reason = 'compliant') AND failing = (OLD.non_compliant_since_ms > 0);"
    "  INSERT INTO device_counts(state, compliant, failing, n)"
    "  VALUES(NEW.state, NEW.reason = 'compliant', NEW.non_compliant_since_ms > 0, 1)"
    "  ON CONFLICT(state, compliant, failing) DO UPDATE SET n = n + 1; END;"
    "CREATE TABLE activity("
    "  hour INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  PRIMARY KEY(hour, kind)) WITHOUT ROWID;"
    "INSERT INTO activity(hour, kind, n)"
    "  SELECT first_seen_ms / 3600000, 'registered', count(*) FROM devices GROUP BY 1;"
    "INSERT INTO activity(hour, kind, n)"
    "  SELECT issued_ms / 3600000, 'certified', count(*) FROM enroll_certs GROUP BY 1;"
    "CREATE TRIGGER activity_registered AFTER INSERT ON devices BEGIN"
    "  INSERT INTO activity(hour, kind, n) VALUES(NEW.first_seen_ms / 3600000, 'registered', 1)"
    "  ON CONFLICT(hour, kind) DO UPDATE SET n = n + 1; END;"
    "CREATE TRIGGER activity_certified AFTER INSERT ON enroll_certs BEGIN"
    "  INSERT INTO activity(hour, kind, n) VALUES(NEW.issued_ms / 3600000, 'certified', 1)"
    "  ON CONFLICT(hour, kind) DO UPDATE SET n = n + 1; END;"
    "CREATE TRIGGER activity_blocked AFTER UPDATE OF state ON devices"
    "  WHEN NEW.state = 'block' AND OLD.state <> 'block' BEGIN"
    "  INSERT INTO activity(hour, kind, n) VALUES(NEW.updated_ms / 3600000, 'blocked', 1)"
    "  ON CONFLICT(hour, kind) DO UPDATE SET n = n + 1; END;",

    /* 15: the device list's free-text search (issue 18) looks for a prefix
     * of the DeviceId, the user, the model or the phone number: each is a
     * range on an index ordered by (field, DeviceId), so a search is never
     * a scan. The DeviceId and the user have theirs; model and phone number
     * get one here (written only when a device's model or number changes:
     * rarely). */
    "CREATE INDEX devices_by_model ON devices(model COLLATE NOCASE, device_id);"
    "CREATE INDEX devices_by_phone ON devices(phone_number, device_id);",
};

#define N_MIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))
_Static_assert(N_MIGRATIONS == CORE_REG_SCHEMA, "CORE_REG_SCHEMA must match the migrations");

/* The device columns in the order row_device() reads them: devices d with
 * its times from device_seen s (schema 7; the devices columns of the same
 * name only for a row that has none there). */
#define DEV_COLS                                                                                   \
    "d.device_id, d.device_type, d.model, d.os, d.os_version, d.imei, d.friendly_name, "           \
    "d.phone_number, d.user_agent, d.user, d.first_seen_ms, "                                      \
    "COALESCE(s.last_seen_ms, d.last_seen_ms), COALESCE(s.last_checkin_ms, d.last_checkin_ms), "   \
    "d.managed, d.passcode, d.encrypted, d.jailbroken, d.agent_version, d.wipe_acked_ms, "         \
    "d.state, d.reason, d.version, d.updated_ms, d.non_compliant_since_ms, d.override, "           \
    "d.next_eval_ms, d.wipe_kind, d.eas_version, d.pk_epoch, d.policy_key, d.provisioned_ms, "     \
    "d.eas_os, d.eas_os_version, d.autoblock_until_ms, d.autoblock_reason, d.last_client, "        \
    "(" DEV_CERT("d.device_id") ")"
/* The enrollment of the unrevoked portal certificate bound to a device. */
#define DEV_CERT(id)                                                                               \
    "SELECT c.enrollment FROM enroll_certs c WHERE c.device_id = " id " AND "                      \
    "c.enrollment <> '' AND c.revoked_ms = 0 ORDER BY c.bound_ms DESC LIMIT 1"
#define DEV_SEEN " LEFT JOIN device_seen s ON s.device_id = d.device_id"
/* New devices whole (core_reg_devices_add): DEV_ADD_COLS values a row. */
#define DEV_ADD_HEAD                                                                               \
    "INSERT INTO devices(device_id, device_type, model, os, os_version, imei, friendly_name, "     \
    "phone_number, user_agent, user, first_seen_ms, last_seen_ms, eas_version, eas_os, "           \
    "eas_os_version, last_client, managed, override, state, reason, version, updated_ms, "         \
    "non_compliant_since_ms, next_eval_ms) VALUES"
#define DEV_ADD_COLS 24

enum stmt_id {
    S_DEV_GET,
    S_DEV_EXISTS,
    S_DEV_INSERT,
    S_DEV_ADD,
    S_DEV_CERT,
    S_DEV_MERGE,
    S_SEEN_INSERT,
    S_SEEN_TIMES,
    S_SEEN_HOUR,
    S_SEEN_DELETE,
    S_USER_ADD,
    S_USER_EXISTS,
    S_CHECKIN,
    S_CHECKIN_SAME_OS,
    S_SET_MANAGED,
    S_SET_OVERRIDE,
    S_WIPE_ACK,
    S_WIPE_KIND,
    S_AUTOBLOCK,
    S_AUTOBLOCK_CLEAR,
    S_TOUCH,
    S_PROVISIONED,
    S_STATE_GET,
    S_SEQ_NEXT,
    S_DEV_DELETE,
    S_DUE,
    S_META_GET,
    S_META_SET,
    S_RANK,
    S_COUNT,
    S_COUNT_BY_STATE,
    S_ACTIVITY,
    S_ACTION_ADD,
    S_ACTION_LIST,
    S_AUDIT_ADD,
    S_AUDIT_LIST,
    S_AUDIT_TARGET,
    S_AUDIT_HAS,
    S_USER_LIST,
    S_STATES,
    S_STATES_UNBOUND,
    S_BOUND_ANY,
    S_PEND_UPSERT,
    S_PEND_EXPIRE,
    S_PEND_COUNT,
    S_PEND_TRIM,
    S_PEND_GET,
    S_PEND_LIST,
    S_PEND_DEL,
    S_PEND_PROV,
    S_COUNT_
};

static const char *const stmt_sql[S_COUNT_] = {
    [S_DEV_GET] = "SELECT " DEV_COLS " FROM devices d" DEV_SEEN " WHERE d.device_id = ?1",
    [S_DEV_EXISTS] = "SELECT user FROM devices WHERE device_id = ?1",
    [S_DEV_INSERT] = "INSERT INTO devices(device_id, device_type, model, os, os_version, imei, "
                     "friendly_name, phone_number, user_agent, user, first_seen_ms, last_seen_ms, "
                     "eas_version, eas_os, eas_os_version, last_client) "
                     "VALUES(?1, COALESCE(?2,''), COALESCE(?3,''), COALESCE(?4,''), "
                     "COALESCE(?5,''), COALESCE(?6,''), COALESCE(?7,''), COALESCE(?8,''), "
                     "COALESCE(?9,''), COALESCE(?10,''), ?11, ?11, COALESCE(?12,''), "
                     "COALESCE(?14,''), COALESCE(?15,''), COALESCE(?16,''))",
    /* A new device whole, evaluated before it is written (core_reg_devices_add). */
    [S_DEV_ADD] = DEV_ADD_HEAD "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
                               "?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
    [S_DEV_CERT] = DEV_CERT("?1"),
    /* The facts only: the times are device_seen's. eas_version and
     * last_client follow the newest sighting: ?13 says whether this one is
     * (the caller knows the last time seen, which may still be waiting in
     * the engine's buffer). */
    [S_DEV_MERGE] =
        "UPDATE devices SET device_type = COALESCE(?2, device_type), "
        "model = COALESCE(?3, model), os = COALESCE(?4, os), "
        "os_version = COALESCE(?5, os_version), imei = COALESCE(?6, imei), "
        "friendly_name = COALESCE(?7, friendly_name), "
        "phone_number = COALESCE(?8, phone_number), "
        "user_agent = COALESCE(?9, user_agent), "
        "eas_os = COALESCE(?14, eas_os), eas_os_version = COALESCE(?15, eas_os_version), "
        "eas_version = CASE WHEN ?13 THEN COALESCE(?12, eas_version) "
        "ELSE eas_version END, "
        "last_client = CASE WHEN ?13 THEN COALESCE(?16, last_client) ELSE last_client END, "
        "user = CASE WHEN user = '' THEN COALESCE(?10, '') ELSE user END "
        "WHERE device_id = ?1",
    [S_SEEN_INSERT] = "INSERT INTO device_seen(device_id, last_seen_ms, last_checkin_ms, "
                      "seen_hour) VALUES(?1, ?2, ?3, ?2 / 3600000) ON CONFLICT(device_id) DO "
                      "UPDATE SET last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms), "
                      "last_checkin_ms = MAX(last_checkin_ms, excluded.last_checkin_ms), "
                      "seen_hour = MAX(last_seen_ms, excluded.last_seen_ms) / 3600000",
    /* Times only move forward: a replayed sighting or a late flush is harmless. */
    [S_SEEN_TIMES] = "UPDATE device_seen SET last_seen_ms = MAX(last_seen_ms, ?2), "
                     "last_checkin_ms = MAX(last_checkin_ms, ?3) WHERE device_id = ?1",
    /* Only when the hour moved: otherwise the row matches nothing and the
     * index on seen_hour is not written (see migration 6). */
    [S_SEEN_HOUR] = "UPDATE device_seen SET seen_hour = last_seen_ms / 3600000 "
                    "WHERE device_id = ?1 AND seen_hour <> last_seen_ms / 3600000",
    [S_SEEN_DELETE] = "DELETE FROM device_seen WHERE device_id = ?1",
    [S_USER_ADD] = "INSERT OR IGNORE INTO users(name, created_ms) VALUES(?1, ?2)",
    [S_USER_EXISTS] = "SELECT 1 FROM users WHERE name = ?1",
    [S_CHECKIN] =
        "UPDATE devices SET os = COALESCE(?2, os), os_version = COALESCE(?3, os_version), "
        "agent_version = COALESCE(?4, agent_version), "
        "passcode = CASE WHEN ?5 < 0 THEN passcode ELSE ?5 END, "
        "encrypted = CASE WHEN ?6 < 0 THEN encrypted ELSE ?6 END, "
        "jailbroken = CASE WHEN ?7 < 0 THEN jailbroken ELSE ?7 END WHERE device_id = ?1",
    /* The same without os: SQLite rewrites the entry of every index on a
     * column the SET names, even to the value it had, so a check-in whose
     * OS family did not move leaves devices_by_os alone (one random page
     * of a million-device registry less per change). */
    [S_CHECKIN_SAME_OS] =
        "UPDATE devices SET os_version = COALESCE(?3, os_version), "
        "agent_version = COALESCE(?4, agent_version), "
        "passcode = CASE WHEN ?5 < 0 THEN passcode ELSE ?5 END, "
        "encrypted = CASE WHEN ?6 < 0 THEN encrypted ELSE ?6 END, "
        "jailbroken = CASE WHEN ?7 < 0 THEN jailbroken ELSE ?7 END WHERE device_id = ?1",
    [S_SET_MANAGED] = "UPDATE devices SET managed = ?2, user = COALESCE(?3, user) "
                      "WHERE device_id = ?1",
    [S_SET_OVERRIDE] = "UPDATE devices SET override = ?2 WHERE device_id = ?1",
    [S_WIPE_ACK] = "UPDATE devices SET wipe_acked_ms = MAX(wipe_acked_ms, ?2) WHERE device_id = ?1",
    [S_WIPE_KIND] = "UPDATE devices SET wipe_kind = ?2 WHERE device_id = ?1",
    /* Only ever later: a replayed or older report matches nothing. */
    [S_AUTOBLOCK] = "UPDATE devices SET autoblock_until_ms = ?2, autoblock_reason = ?3 "
                    "WHERE device_id = ?1 AND autoblock_until_ms < ?2",
    [S_AUTOBLOCK_CLEAR] = "UPDATE devices SET autoblock_until_ms = 0, autoblock_reason = '' "
                          "WHERE device_id = ?1",
    [S_TOUCH] = "UPDATE devices SET version = ?2, updated_ms = ?3, pk_epoch = pk_epoch + ?4 "
                "WHERE device_id = ?1",
    [S_PROVISIONED] = "UPDATE devices SET policy_key = ?2, provisioned_ms = ?3 "
                      "WHERE device_id = ?1 AND provisioned_ms <= ?3",
    [S_STATE_GET] = "SELECT state, reason, version, non_compliant_since_ms, next_eval_ms "
                    "FROM devices WHERE device_id = ?1",
    [S_SEQ_NEXT] = "UPDATE meta SET value = value + 1 WHERE key = 'state_version' RETURNING value",
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
    /* devices_by_state covers it: one pass over the index, not the rows. */
    /* at most 16 rows: the four states by two and two */
    [S_COUNT_BY_STATE] = "SELECT state, compliant, failing, n FROM device_counts "
                         "WHERE state IN ('allow', 'block', 'quarantine', 'wipe')",
    [S_ACTIVITY] = "SELECT hour, kind, n FROM activity WHERE hour >= ?1 AND hour < ?2",
    [S_PEND_UPSERT] = "INSERT INTO pending_devices(device_id, user, device_type, user_agent, "
                      "client_addr, first_ms, last_ms) VALUES(?1, COALESCE(?2, ''), "
                      "COALESCE(?3, ''), COALESCE(?4, ''), COALESCE(?5, ''), ?6, ?6) "
                      "ON CONFLICT(device_id) DO UPDATE SET last_ms = MAX(last_ms, ?6), "
                      "count = count + 1, user = COALESCE(?2, user), "
                      "device_type = COALESCE(?3, device_type), "
                      "user_agent = COALESCE(?4, user_agent), "
                      "client_addr = COALESCE(?5, client_addr)",
    [S_PEND_EXPIRE] = "DELETE FROM pending_devices WHERE last_ms < ?1",
    [S_PEND_COUNT] = "SELECT COUNT(*) FROM pending_devices",
    [S_PEND_TRIM] = "DELETE FROM pending_devices WHERE device_id IN (SELECT device_id FROM "
                    "pending_devices ORDER BY last_ms, device_id LIMIT ?1)",
    [S_PEND_GET] = "SELECT device_id, user, device_type, user_agent, client_addr, first_ms, "
                   "last_ms, count, policy_key, provisioned_ms FROM pending_devices "
                   "WHERE device_id = ?1",
    [S_PEND_LIST] = "SELECT device_id, user, device_type, user_agent, client_addr, first_ms, "
                    "last_ms, count, policy_key, provisioned_ms FROM pending_devices "
                    "WHERE device_id > ?1 ORDER BY device_id LIMIT ?2",
    [S_PEND_PROV] = "UPDATE pending_devices SET policy_key = ?2, provisioned_ms = ?3 "
                    "WHERE device_id = ?1 AND provisioned_ms <= ?3",
    [S_PEND_DEL] = "DELETE FROM pending_devices WHERE device_id = ?1",
    [S_ACTION_ADD] = "INSERT INTO admin_actions(device_id, action, actor, note, at_ms) "
                     "VALUES(?1, ?2, ?3, COALESCE(?4,''), ?5)",
    [S_ACTION_LIST] = "SELECT id, at_ms, device_id, action, actor, note FROM admin_actions "
                      "WHERE device_id = ?1 AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3",
    [S_AUDIT_ADD] = "INSERT INTO audit(at_ms, actor, address, action, target, detail) "
                    "VALUES(?1, ?2, COALESCE(?3,''), ?4, COALESCE(?5,''), COALESCE(?6,''))",
    /* ?1 is the cursor, INT64_MAX for the newest: a plain range keeps the
     * walk on the primary key (or on audit_by_target), never a scan. */
    [S_AUDIT_LIST] = "SELECT id, at_ms, actor, address, action, target, detail FROM audit "
                     "WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    [S_AUDIT_TARGET] = "SELECT id, at_ms, actor, address, action, target, detail FROM audit "
                       "WHERE target = ?3 AND id < ?1 ORDER BY id DESC LIMIT ?2",
    /* The same row already there (a replayed sighting): on audit_by_target. */
    [S_AUDIT_HAS] = "SELECT 1 FROM audit WHERE target = COALESCE(?5,'') AND action = ?4 "
                    "AND at_ms = ?1 AND actor = ?2 AND address = COALESCE(?3,'') "
                    "AND detail = COALESCE(?6,'') LIMIT 1",
    /* What a resync writes, a page at a time in DeviceId order. */
    [S_STATES] = "SELECT d.device_id, d.user, d.state, d.reason, d.version, d.updated_ms, "
                 "d.wipe_kind, d.pk_epoch, d.policy_key, d.provisioned_ms, "
                 "(SELECT c.enrollment FROM enroll_certs c WHERE c.device_id = d.device_id AND "
                 "c.enrollment <> '' AND c.revoked_ms = 0 ORDER BY c.bound_ms DESC LIMIT 1), "
                 "d.id FROM devices d WHERE d.id > ?1 ORDER BY d.id LIMIT ?2",
    /* The same while no portal certificate is bound to any device: the
     * subquery per row was a third of the read's time at a million rows. */
    [S_STATES_UNBOUND] = "SELECT d.device_id, d.user, d.state, d.reason, d.version, d.updated_ms, "
                         "d.wipe_kind, d.pk_epoch, d.policy_key, d.provisioned_ms, NULL, d.id "
                         "FROM devices d WHERE d.id > ?1 ORDER BY d.id LIMIT ?2",
    [S_BOUND_ANY] = "SELECT 1 FROM enroll_certs WHERE enrollment <> '' AND device_id <> '' AND "
                    "revoked_ms = 0 LIMIT 1",
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

/*
 * The columns a state write names (state_stmt). SQLite rewrites the entry of
 * every index on a column an UPDATE's SET names, even when the value stays
 * the same: naming state, non_compliant_since_ms or next_eval_ms without a
 * change would dirty a page of devices_by_state, devices_failing or
 * devices_by_next_eval at a random place of a million-device registry for
 * nothing (one WAL frame and one checkpointed page each).
 */
enum {
    SW_STATE = 1,  /* state (devices_by_state) */
    SW_REASON = 2, /* reason, version, updated_ms (the row only) */
    SW_NCS = 4,    /* non_compliant_since_ms (devices_failing) */
    SW_NEXT = 8,   /* next_eval_ms (devices_by_next_eval) */
    SW_ALL = 15
};

struct core_reg {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[S_COUNT_];
    sqlite3_stmt *tx[T_COUNT_];
    sqlite3_stmt *st_state[SW_ALL + 1]; /* state_stmt(), by the columns it names */
    int savepoints;   /* depth of open SAVEPOINTs, for nesting inside core_reg_begin */
    int tx_depth;     /* core_reg_begin nesting: the outermost is a real transaction */
    int flat;         /* core_reg_flat_begin nesting: inner savepoints are not made */
    int flat_depth;   /* tx_depth when the flat stretch began */
    bool flat_broken; /* something inside it failed: the whole stretch must go */
    bool seq_held;    /* core_reg_seq_hold: next_version counts in seq */
    bool seq_moved;   /* ... and seq is ahead of the stored one */
    int64_t seq;
};

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
static int clean_text(char out[REG_TEXT_MAX], const char *v, size_t max)
{
    int n = clip(v, max < REG_TEXT_MAX ? max : REG_TEXT_MAX);
    memcpy(out, v, (size_t)n);
    for (int k = 0; k < n; k++)
        if ((unsigned char)out[k] < 0x20 || out[k] == 0x7f)
            out[k] = '?';
    return n;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v, size_t max)
{
    if (!v) {
        sqlite3_bind_null(s, i);
        return;
    }
    char buf[REG_TEXT_MAX];
    int n = clean_text(buf, v, max);
    sqlite3_bind_text(s, i, buf, n, SQLITE_TRANSIENT);
}

void core_reg_text_as_stored(char *out, const char *v, size_t max)
{
    char buf[REG_TEXT_MAX];
    int n = v ? clean_text(buf, v, max) : 0;
    memcpy(out, buf, (size_t)n);
    out[n] = '\0';
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
    if (!reg->flat && txc(reg, T_SP) < 0)
        return CORE_REG_EDB;
    reg->savepoints++;
    return 0;
}

static int sp_end(struct core_reg *reg, int rc)
{
    reg->savepoints--;
    if (reg->flat) {
        reg->flat_broken |= rc < 0;
        return rc;
    }
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
void core_reg_flat_begin(struct core_reg *reg)
{
    if (reg->flat++ == 0) {
        reg->flat_depth = reg->tx_depth;
        reg->flat_broken = false;
    }
}

bool core_reg_flat_end(struct core_reg *reg)
{
    return --reg->flat == 0 && reg->flat_broken;
}

/* Inside a flat stretch, a level it opened: no SAVEPOINT of its own. */
static bool flat_level(const struct core_reg *reg, int depth)
{
    return reg->flat && depth > reg->flat_depth;
}

int core_reg_begin(struct core_reg *reg)
{
    if (flat_level(reg, reg->tx_depth + 1)) {
        reg->tx_depth++;
        return 0;
    }
    int rc = txc(reg, reg->tx_depth == 0 ? T_BEGIN : T_TX_SP);
    if (rc == 0)
        reg->tx_depth++;
    return rc;
}

int core_reg_commit(struct core_reg *reg)
{
    if (reg->tx_depth == 0)
        return CORE_REG_EINVAL;
    if (flat_level(reg, reg->tx_depth)) {
        reg->tx_depth--;
        return 0;
    }
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
    if (flat_level(reg, reg->tx_depth)) {
        reg->tx_depth--;
        reg->flat_broken = true; /* nothing to roll back to: the stretch goes whole */
        return 0;
    }
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
        eg_errf(err, errlen, "%s: cannot read the database: %s", reg->path,
                sqlite3_errmsg(reg->db));
        return CORE_REG_EDB;
    }
    if (!has) {
        if (tables > 0) {
            eg_errf(err, errlen,
                    "%s: not an easgate registry (it has tables but no schema_version); "
                    "point core.database at a new file",
                    reg->path);
            return CORE_REG_EINVAL;
        }
        *v = 0;
        return 0;
    }
    if (query_int(reg, "SELECT COALESCE(MAX(version), 0) FROM schema_version", v) < 0) {
        eg_errf(err, errlen, "%s: cannot read schema_version: %s", reg->path,
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
            eg_errf(err, errlen, "%s: migration to schema version %lld failed: %s", reg->path,
                    (long long)(v + 1), sqlite3_errmsg(reg->db));
            exec(reg, "ROLLBACK");
            return CORE_REG_EDB;
        }
        if (exec(reg, "COMMIT") < 0) {
            eg_errf(err, errlen, "%s: commit of schema version %lld failed: %s", reg->path,
                    (long long)(v + 1), sqlite3_errmsg(reg->db));
            exec(reg, "ROLLBACK");
            return CORE_REG_EDB;
        }
    }
    return 0;
}

/*
 * SQLite counts every allocation it makes under one process-wide mutex, for
 * sqlite3_memory_used() and a soft heap limit, neither of which easgate
 * uses: a tenth of an import's CPU was that mutex and the connection
 * mutexes around it, taken by the writer, the readers and the checkpointer
 * alike. Off before the first connection (later, SQLite refuses the change,
 * which only costs the saving).
 */
static void sqlite_setup(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int core_reg_open(const char *path, struct core_reg **out, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_setup);
    *out = NULL;
    struct core_reg *reg = calloc(1, sizeof(*reg));
    if (!reg || !(reg->path = strdup(path))) {
        free(reg);
        eg_errf(err, errlen, "out of memory");
        return CORE_REG_ENOMEM;
    }
    int rc = CORE_REG_EDB;
    /* The registry holds admin password hashes, IMEIs, phone numbers and the
     * audit log: a new file is made 0600 here, whatever the umask, and
     * SQLite gives its -wal and -shm files the mode of the database. */
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) /* otherwise it exists, or sqlite3_open_v2 says why not */
        close(fd);
    if (sqlite3_open_v2(path, &reg->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        eg_errf(err, errlen, "%s: cannot open the registry: %s", path,
                reg->db ? sqlite3_errmsg(reg->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(reg->db, REG_BUSY_TIMEOUT_MS);
    int64_t v = 0;
    /* Look before writing anything: a newer database must be left as it is. */
    if ((rc = current_version(reg, &v, err, errlen)) < 0)
        goto fail;
    if (v > (int64_t)CORE_REG_SCHEMA) {
        eg_errf(err, errlen,
                "%s: the registry is at schema version %lld but this easgate knows only up to %d; "
                "it was written by a newer easgate: run that version (or restore a backup)",
                path, (long long)v, CORE_REG_SCHEMA);
        rc = CORE_REG_ENEWER;
        goto fail;
    }
    /* A new file: its page size before the first table fixes it. */
    char ps[48];
    snprintf(ps, sizeof(ps), "PRAGMA page_size=%d", REG_PAGE_SIZE);
    if (v == 0 && exec(reg, ps) < 0) {
        eg_errf(err, errlen, "%s: cannot set the page size: %s", path, sqlite3_errmsg(reg->db));
        rc = CORE_REG_EDB;
        goto fail;
    }
    /* WAL: the admin API and CLI read while the core writes. NORMAL sync is
     * durable across crashes of the process; a power cut may lose the last
     * commits but never corrupts, and a resync repairs Redis either way.
     * secure_delete FAST (Debian builds SQLite with it on): deleted rows are
     * still zeroed in the pages a write touches anyway, but freed pages are
     * not written once more just to be zeroed. temp_store MEMORY: every row
     * of a batch runs in its own savepoint (sp_begin), whose sub-journal
     * (the pages as they were) SQLite would otherwise write to a temporary
     * file, a pwrite per page touched: a third of an import's time. It
     * holds the pages one savepoint touched, a few, and goes at release. */
    if (exec(reg, "PRAGMA journal_mode=WAL") < 0 || exec(reg, "PRAGMA synchronous=NORMAL") < 0 ||
        exec(reg, "PRAGMA cache_size=" REG_CACHE_KIB) < 0 ||
        exec(reg, "PRAGMA secure_delete=FAST") < 0 || exec(reg, "PRAGMA temp_store=MEMORY") < 0 ||
        exec(reg, "PRAGMA journal_size_limit=" REG_WAL_KEEP) < 0) {
        eg_errf(err, errlen, "%s: cannot switch to WAL mode: %s", path, sqlite3_errmsg(reg->db));
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
    for (int i = 0; i <= SW_ALL; i++)
        sqlite3_finalize(reg->st_state[i]);
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

int core_reg_autocheckpoint(struct core_reg *reg, int pages)
{
    return sqlite3_wal_autocheckpoint(reg->db, pages) == SQLITE_OK ? 0 : CORE_REG_EDB;
}

int core_reg_checkpoint(struct core_reg *reg, int *wal_pages, int *done_pages)
{
    int log = 0, ckpt = 0;
    int rc = sqlite3_wal_checkpoint_v2(reg->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt);
    if (wal_pages)
        *wal_pages = log;
    if (done_pages)
        *done_pages = ckpt;
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : CORE_REG_EDB;
}

int core_reg_query_only(struct core_reg *reg)
{
    return exec(reg, "PRAGMA query_only=ON");
}

int core_reg_page_size(struct core_reg *reg)
{
    int64_t v = 0;
    return query_int(reg, "PRAGMA page_size", &v) < 0 ? CORE_REG_EDB : (int)v;
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
    col_text(s, 31, d->eas_os, sizeof(d->eas_os));
    col_text(s, 32, d->eas_os_version, sizeof(d->eas_os_version));
    d->autoblock_until_ms = sqlite3_column_int64(s, 33);
    col_text(s, 34, d->autoblock_reason, sizeof(d->autoblock_reason));
    col_text(s, 35, d->last_client, sizeof(d->last_client));
    col_text(s, 36, d->cert_enrollment, sizeof(d->cert_enrollment));
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
    bind_text(s, 14, in->eas_os, CORE_SHORT_MAX);
    bind_text(s, 15, in->eas_os_version, CORE_SHORT_MAX);
    bind_text(s, 16, in->client_addr, CORE_SHORT_MAX);
}

/* Run a one-row UPDATE bound by the caller; ENOTFOUND if it touched nothing. */
static int update_one(struct core_reg *reg, sqlite3_stmt *s)
{
    int rc = step_done(s);
    if (rc < 0)
        return rc;
    return sqlite3_changes(reg->db) == 1 ? 0 : CORE_REG_ENOTFOUND;
}

int core_reg_seen_times(struct core_reg *reg, const char *device_id, int64_t last_seen_ms,
                        int64_t last_checkin_ms)
{
    sqlite3_stmt *s = stmt(reg, S_SEEN_TIMES);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, device_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, last_seen_ms);
    sqlite3_bind_int64(s, 3, last_checkin_ms);
    int rc = step_done(s);
    if (rc == 0 && last_seen_ms > 0 && !(s = stmt(reg, S_SEEN_HOUR)))
        rc = CORE_REG_EDB;
    if (rc == 0 && last_seen_ms > 0) {
        sqlite3_bind_text(s, 1, device_id, -1, SQLITE_TRANSIENT);
        rc = step_done(s);
    }
    return rc;
}

/* A new device: its row and its times. */
static int device_insert(struct core_reg *reg, const char *id, const struct core_devinfo *info,
                         int64_t now_ms)
{
    sqlite3_stmt *s = stmt(reg, S_DEV_INSERT);
    if (!s)
        return CORE_REG_EDB;
    bind_info(s, id, info, now_ms);
    int rc = step_done(s);
    if (rc == 0 && !(s = stmt(reg, S_SEEN_INSERT)))
        rc = CORE_REG_EDB;
    if (rc == 0) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, now_ms);
        sqlite3_bind_int64(s, 3, 0);
        rc = step_done(s);
    }
    if (rc == 0)
        rc = user_add(reg, info->user, now_ms);
    return rc;
}

int core_reg_device_blank(struct core_reg *reg, const char *device_id,
                          const struct core_devinfo *in, int64_t now_ms, struct core_device *d)
{
    CANON(id, device_id);
    memset(d, 0, sizeof(*d));
    memcpy(d->device_id, id, sizeof(d->device_id));
    core_reg_text_as_stored(d->device_type, in->device_type, CORE_SHORT_MAX);
    core_reg_text_as_stored(d->model, in->model, CORE_NAME_MAX);
    core_reg_text_as_stored(d->os, in->os, CORE_SHORT_MAX);
    core_reg_text_as_stored(d->os_version, in->os_version, CORE_SHORT_MAX);
    core_reg_text_as_stored(d->imei, in->imei, CORE_SHORT_MAX);
    core_reg_text_as_stored(d->friendly_name, in->friendly_name, CORE_NAME_MAX);
    core_reg_text_as_stored(d->phone_number, in->phone_number, CORE_SHORT_MAX);
    core_reg_text_as_stored(d->user_agent, in->user_agent, CORE_AGENT_MAX);
    core_reg_text_as_stored(d->user, in->user, CORE_USER_MAX);
    core_reg_text_as_stored(d->eas_version, in->eas_version, CORE_EASVER_MAX);
    core_reg_text_as_stored(d->eas_os, in->eas_os, CORE_SHORT_MAX);
    core_reg_text_as_stored(d->eas_os_version, in->eas_os_version, CORE_SHORT_MAX);
    core_reg_text_as_stored(d->last_client, in->client_addr, CORE_SHORT_MAX);
    d->first_seen_ms = d->last_seen_ms = now_ms;
    /* the schema's defaults (migrations 1, 2) */
    d->passcode = d->encrypted = d->jailbroken = COMPLIANCE_UNKNOWN;
    d->state = COMPLIANCE_BLOCK;
    snprintf(d->reason, sizeof(d->reason), "new");
    d->override = COMPLIANCE_OVR_NONE;
    sqlite3_stmt *s = stmt(reg, S_DEV_CERT);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        col_text(s, 0, d->cert_enrollment, sizeof(d->cert_enrollment));
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

/* d's values from parameter base + 1 on, in DEV_ADD_HEAD's order. */
static void bind_dev_add(sqlite3_stmt *s, int base, const struct core_device *d)
{
    const char *texts[] = {d->device_id,  d->device_type, d->model,         d->os,
                           d->os_version, d->imei,        d->friendly_name, d->phone_number,
                           d->user_agent, d->user};
    for (int i = 0; i < 10; i++)
        sqlite3_bind_text(s, base + i + 1, texts[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, base + 11, d->first_seen_ms);
    sqlite3_bind_int64(s, base + 12, d->last_seen_ms);
    sqlite3_bind_text(s, base + 13, d->eas_version, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, base + 14, d->eas_os, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, base + 15, d->eas_os_version, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, base + 16, d->last_client, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, base + 17, d->managed ? 1 : 0);
    sqlite3_bind_text(s, base + 18, compliance_override_name(d->override), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, base + 19, compliance_state_name(d->state), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, base + 20, d->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, base + 21, d->version);
    sqlite3_bind_int64(s, base + 22, d->updated_ms);
    sqlite3_bind_int64(s, base + 23, d->non_compliant_since_ms);
    sqlite3_bind_int64(s, base + 24, d->next_eval_ms);
}

/*
 * One statement for the n rows: an INSERT into devices fires the dashboard's
 * triggers, so SQLite gives it a statement journal, and inside a savepoint
 * the end of each such statement walks the whole in-memory sub-journal
 * (core_reg_seq_hold says more): once a batch, not once a device.
 */
int core_reg_devices_add(struct core_reg *reg, const struct core_device *ds, size_t n)
{
    if (n == 0)
        return 0;
    if (n > CORE_REG_ADD_MAX)
        return CORE_REG_EINVAL;
    if (sp_begin(reg) < 0)
        return CORE_REG_EDB;
    sqlite3_stmt *s = NULL;
    char *sql = NULL;
    int rc = 0;
    if (n == 1) {
        s = stmt(reg, S_DEV_ADD);
    } else {
        static const char row[] = "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?),";
        _Static_assert(sizeof(row) - 3 == 2 * DEV_ADD_COLS, "one ? per column");
        size_t head = strlen(DEV_ADD_HEAD), len = head + n * (sizeof(row) - 1);
        if ((sql = malloc(len + 1))) {
            memcpy(sql, DEV_ADD_HEAD, head);
            for (size_t i = 0; i < n; i++)
                memcpy(sql + head + i * (sizeof(row) - 1), row, sizeof(row) - 1);
            sql[len - 1] = '\0'; /* the last comma */
            if (sqlite3_prepare_v2(reg->db, sql, (int)len - 1, &s, NULL) != SQLITE_OK)
                s = NULL;
        }
    }
    if (!s)
        rc = CORE_REG_EDB;
    for (size_t i = 0; rc == 0 && i < n; i++)
        bind_dev_add(s, (int)i * DEV_ADD_COLS, &ds[i]);
    if (rc == 0)
        rc = step_done(s);
    if (n > 1)
        sqlite3_finalize(s);
    free(sql);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!(s = stmt(reg, S_SEEN_INSERT))) {
            rc = CORE_REG_EDB;
            break;
        }
        sqlite3_bind_text(s, 1, ds[i].device_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, ds[i].last_seen_ms);
        sqlite3_bind_int64(s, 3, ds[i].last_checkin_ms);
        rc = step_done(s);
        if (rc == 0)
            rc = user_add(reg, ds[i].user, ds[i].first_seen_ms);
    }
    return sp_end(reg, rc);
}

/* Merge info's facts into an existing device (the times are not touched). */
static int device_merge(struct core_reg *reg, const char *id, const struct core_devinfo *info,
                        int64_t now_ms, bool newest, bool had_user)
{
    sqlite3_stmt *s = stmt(reg, S_DEV_MERGE);
    if (!s)
        return CORE_REG_EDB;
    bind_info(s, id, info, now_ms);
    sqlite3_bind_int(s, 13, newest ? 1 : 0);
    int rc = step_done(s);
    if (rc == 0 && !had_user)
        rc = user_add(reg, info->user, now_ms);
    return rc;
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
    struct core_device d;
    int rc = core_reg_device_get(reg, id, &d);
    bool exists = rc == 0;
    if (rc == CORE_REG_ENOTFOUND)
        rc = device_insert(reg, id, info, now_ms);
    else if (rc == 0 && (rc = device_merge(reg, id, info, now_ms, now_ms >= d.last_seen_ms,
                                           d.user[0] != '\0')) == 0)
        rc = core_reg_seen_times(reg, id, now_ms, 0);
    if (rc == 0 && created)
        *created = !exists;
    return sp_end(reg, rc);
}

/*
 * Text as bind_text() would store it, compared with what is stored: the
 * check that lets an unchanged sighting or check-in write nothing.
 */
static bool text_differs(const char *v, size_t max, const char *stored)
{
    if (!v)
        return false;
    int n = clip(v, max < REG_TEXT_MAX ? max : REG_TEXT_MAX);
    if ((size_t)n != strlen(stored))
        return true;
    for (int k = 0; k < n; k++) {
        unsigned char ch = (unsigned char)v[k];
        char want = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
        if (want != stored[k])
            return true;
    }
    return false;
}

bool core_reg_devinfo_differs(const struct core_device *d, const struct core_devinfo *in,
                              int64_t when_ms)
{
    return text_differs(in->device_type, CORE_SHORT_MAX, d->device_type) ||
           text_differs(in->model, CORE_NAME_MAX, d->model) ||
           text_differs(in->os, CORE_SHORT_MAX, d->os) ||
           text_differs(in->os_version, CORE_SHORT_MAX, d->os_version) ||
           text_differs(in->eas_os, CORE_SHORT_MAX, d->eas_os) ||
           text_differs(in->eas_os_version, CORE_SHORT_MAX, d->eas_os_version) ||
           text_differs(in->imei, CORE_SHORT_MAX, d->imei) ||
           text_differs(in->friendly_name, CORE_NAME_MAX, d->friendly_name) ||
           text_differs(in->phone_number, CORE_SHORT_MAX, d->phone_number) ||
           text_differs(in->user_agent, CORE_AGENT_MAX, d->user_agent) ||
           (!d->user[0] && in->user && in->user[0]) ||
           (when_ms >= d->last_seen_ms &&
            (text_differs(in->eas_version, CORE_EASVER_MAX, d->eas_version) ||
             text_differs(in->client_addr, CORE_SHORT_MAX, d->last_client)));
}

int core_reg_device_merge(struct core_reg *reg, const struct core_device *d,
                          const struct core_devinfo *info, int64_t when_ms, bool *wrote)
{
    bool w = core_reg_devinfo_differs(d, info, when_ms);
    int rc = 0;
    if (w) {
        if (sp_begin(reg) < 0)
            return CORE_REG_EDB;
        rc = sp_end(reg, device_merge(reg, d->device_id, info, when_ms, when_ms >= d->last_seen_ms,
                                      d->user[0] != '\0'));
    }
    if (wrote)
        *wrote = rc == 0 && w;
    return rc;
}

static void bind_checkin(sqlite3_stmt *s, const char *id, const struct core_checkin *c)
{
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    bind_text(s, 2, c->os, CORE_SHORT_MAX);
    bind_text(s, 3, c->os_version, CORE_SHORT_MAX);
    bind_text(s, 4, c->agent_version, CORE_SHORT_MAX);
    sqlite3_bind_int(s, 5, (int)c->passcode);
    sqlite3_bind_int(s, 6, (int)c->encrypted);
    sqlite3_bind_int(s, 7, (int)c->jailbroken);
}

int core_reg_checkin(struct core_reg *reg, const char *device_id, const struct core_checkin *c,
                     int64_t now_ms)
{
    CANON(id, device_id);
    if (sp_begin(reg) < 0)
        return CORE_REG_EDB;
    sqlite3_stmt *s = stmt(reg, S_CHECKIN);
    int rc = CORE_REG_EDB;
    if (s) {
        bind_checkin(s, id, c);
        rc = update_one(reg, s);
    }
    if (rc == 0)
        rc = core_reg_seen_times(reg, id, now_ms, now_ms);
    return sp_end(reg, rc);
}

static bool tri_differs(enum compliance_tri v, enum compliance_tri stored)
{
    return v != COMPLIANCE_UNKNOWN && v != stored;
}

bool core_reg_checkin_differs(const struct core_device *d, const struct core_checkin *c)
{
    return text_differs(c->os, CORE_SHORT_MAX, d->os) ||
           text_differs(c->os_version, CORE_SHORT_MAX, d->os_version) ||
           text_differs(c->agent_version, CORE_SHORT_MAX, d->agent_version) ||
           tri_differs(c->passcode, d->passcode) || tri_differs(c->encrypted, d->encrypted) ||
           tri_differs(c->jailbroken, d->jailbroken);
}

int core_reg_checkin_facts(struct core_reg *reg, const struct core_device *d,
                           const struct core_checkin *c, bool *wrote)
{
    bool w = core_reg_checkin_differs(d, c);
    int rc = 0;
    if (w) {
        sqlite3_stmt *s =
            stmt(reg, text_differs(c->os, CORE_SHORT_MAX, d->os) ? S_CHECKIN : S_CHECKIN_SAME_OS);
        if (!s)
            return CORE_REG_EDB;
        bind_checkin(s, d->device_id, c);
        rc = update_one(reg, s);
    }
    if (wrote)
        *wrote = rc == 0 && w;
    return rc;
}

int core_reg_user_add(struct core_reg *reg, const char *user, int64_t now_ms)
{
    if (!user || !*user)
        return CORE_REG_EINVAL;
    int rc = user_add(reg, user, now_ms);
    return rc < 0 ? rc : sqlite3_changes(reg->db) == 1 ? 1 : 0;
}

int core_reg_user_exists(struct core_reg *reg, const char *user)
{
    sqlite3_stmt *s = stmt(reg, S_USER_EXISTS);
    if (!s)
        return CORE_REG_EDB;
    bind_text(s, 1, user, CORE_USER_MAX);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
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

int core_reg_autoblock(struct core_reg *reg, const char *device_id, int64_t until_ms,
                       const char *reason, bool *moved)
{
    CANON(id, device_id);
    *moved = false;
    sqlite3_stmt *s = stmt(reg, until_ms > 0 ? S_AUTOBLOCK : S_AUTOBLOCK_CLEAR);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
    if (until_ms > 0) {
        sqlite3_bind_int64(s, 2, until_ms);
        sqlite3_bind_text(s, 3, reason ? reason : "", -1, SQLITE_STATIC);
    }
    int rc = step_done(s);
    if (rc == 0)
        *moved = sqlite3_changes(reg->db) > 0;
    return rc;
}

int core_reg_binding_foreach(struct core_reg *reg,
                             int (*cb)(const char *enrollment, const char *user,
                                       const char *device_id, int64_t bound_ms, void *arg),
                             void *arg)
{
    sqlite3_stmt *s = NULL;
    /* enrollment <> '' lets the partial unique index serve the walk */
    if (sqlite3_prepare_v2(reg->db,
                           "SELECT enrollment, user, device_id, bound_ms FROM enroll_certs "
                           "WHERE enrollment <> '' AND device_id <> '' AND revoked_ms = 0 "
                           "ORDER BY enrollment",
                           -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    int rc, stop = 0;
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        char enr[64], user[256], dev[CORE_DEVID_MAX + 1];
        col_text(s, 0, enr, sizeof(enr));
        col_text(s, 1, user, sizeof(user));
        col_text(s, 2, dev, sizeof(dev));
        stop = cb(enr, user, dev, sqlite3_column_int64(s, 3), arg);
    }
    sqlite3_finalize(s);
    if (stop)
        return stop;
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

int core_reg_cert_list(struct core_reg *reg, const char *device_id, struct core_cert *out,
                       size_t max, size_t *n)
{
    *n = 0;
    CANON(id, device_id);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(reg->db,
                           "SELECT serial, device_id, user, enrollment, not_before_ms, "
                           "not_after_ms, issued_ms, bound_ms, revoked_ms, revoke_reason, pem "
                           "FROM enroll_certs WHERE device_id = ?1 ORDER BY issued_ms DESC, "
                           "serial LIMIT ?2",
                           -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        struct core_cert *c = &out[(*n)++];
        col_text(s, 0, c->serial, sizeof(c->serial));
        col_text(s, 1, c->device_id, sizeof(c->device_id));
        col_text(s, 2, c->user, sizeof(c->user));
        col_text(s, 3, c->enrollment, sizeof(c->enrollment));
        c->not_before_ms = sqlite3_column_int64(s, 4);
        c->not_after_ms = sqlite3_column_int64(s, 5);
        c->issued_ms = sqlite3_column_int64(s, 6);
        c->bound_ms = sqlite3_column_int64(s, 7);
        c->revoked_ms = sqlite3_column_int64(s, 8);
        col_text(s, 9, c->revoke_reason, sizeof(c->revoke_reason));
        c->pem[0] = '\0';
        if ((size_t)sqlite3_column_bytes(s, 10) < sizeof(c->pem))
            col_text(s, 10, c->pem, sizeof(c->pem));
    }
    if (*n < max)
        rc = rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
    else
        rc = 0;
    sqlite3_finalize(s);
    return rc;
}

int core_reg_cert_revoke(struct core_reg *reg, const char *device_id, const char *serial,
                         const char *reason, int64_t now_ms)
{
    CANON(id, device_id);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(reg->db,
                           "UPDATE enroll_certs SET revoked_ms = ?3, revoke_reason = ?4 WHERE "
                           "serial = ?2 AND device_id = ?1 AND revoked_ms = 0",
                           -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    bind_text(s, 2, serial, 64);
    sqlite3_bind_int64(s, 3, now_ms);
    bind_text(s, 4, reason && *reason ? reason : "revoked", 64);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return CORE_REG_EDB;
    return sqlite3_changes(reg->db) == 1 ? 0 : CORE_REG_ENOTFOUND;
}

int core_reg_cert_bind(struct core_reg *reg, const char *enrollment, const char *device_id,
                       int64_t now_ms, enum core_cert_bind *out, char user[256],
                       char bound[CORE_DEVID_MAX + 1])
{
    user[0] = bound[0] = '\0';
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(reg->db,
                           "SELECT device_id, user FROM enroll_certs WHERE enrollment = ?1 AND "
                           "revoked_ms = 0",
                           -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, enrollment, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        col_text(s, 0, bound, CORE_DEVID_MAX + 1);
        col_text(s, 1, user, 256);
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_DONE) {
        *out = CORE_CERT_UNKNOWN;
        return 0;
    }
    if (rc != SQLITE_ROW)
        return CORE_REG_EDB;
    if (bound[0]) {
        *out = strcmp(bound, device_id) == 0 ? CORE_CERT_ALREADY : CORE_CERT_OTHER;
        return 0;
    }
    /* One portal certificate per device: another one bound first keeps it. */
    if (sqlite3_prepare_v2(reg->db,
                           "SELECT 1 FROM enroll_certs WHERE device_id = ?1 AND enrollment <> '' "
                           "AND enrollment <> ?2 AND revoked_ms = 0",
                           -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, device_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, enrollment, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc == SQLITE_ROW) {
        *out = CORE_CERT_DEVICE_USED;
        return 0;
    }
    if (rc != SQLITE_DONE ||
        sqlite3_prepare_v2(reg->db,
                           "UPDATE enroll_certs SET device_id = ?2, bound_ms = ?3 WHERE "
                           "enrollment = ?1 AND device_id = '' AND revoked_ms = 0",
                           -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, enrollment, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, device_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, now_ms);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return CORE_REG_EDB;
    /* Read and written in the caller's (IMMEDIATE) transaction: one row. */
    if (sqlite3_changes(reg->db) != 1)
        return CORE_REG_EDB;
    *out = CORE_CERT_BOUND;
    snprintf(bound, CORE_DEVID_MAX + 1, "%s", device_id);
    return 0;
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
    if (reg->seq_held) {
        *v = ++reg->seq;
        reg->seq_moved = true;
        return 0;
    }
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

/* What a state write compares with: the stored state, reason, version and timers. */
struct state_old {
    enum compliance_state state;
    char reason[CORE_REASON_MAX];
    int64_t version, ncs, next;
};

static int state_store(struct core_reg *reg, const char *id, const struct state_old *o,
                       enum compliance_state state, const char *reason, int64_t ncs,
                       int64_t next_eval, int64_t now_ms, bool *changed, int64_t *version);

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
    struct state_old o;
    if (compliance_state_parse((const char *)sqlite3_column_text(s, 0), &o.state) < 0)
        o.state = (enum compliance_state) - 1;
    col_text(s, 1, o.reason, sizeof(o.reason));
    o.version = sqlite3_column_int64(s, 2);
    o.ncs = sqlite3_column_int64(s, 3);
    o.next = sqlite3_column_int64(s, 4);
    sqlite3_reset(s);
    return state_store(reg, id, &o, state, reason, ncs, next_eval, now_ms, changed, version);
}

/* "UPDATE devices SET <the columns cols names> WHERE device_id = ?1", prepared
 * once per set of columns; the parameters keep their numbers in each. */
static sqlite3_stmt *state_stmt(struct core_reg *reg, unsigned cols)
{
    static const char *const part[] = {"state = ?2", "reason = ?3, version = ?4, updated_ms = ?5",
                                       "non_compliant_since_ms = ?6", "next_eval_ms = ?7"};
    sqlite3_stmt **st = &reg->st_state[cols & SW_ALL];
    if (!*st) {
        char sql[256] = "UPDATE devices SET ";
        size_t at = strlen(sql);
        for (unsigned b = 0; b < 4; b++)
            if (cols & (1u << b))
                at += (size_t)snprintf(sql + at, sizeof(sql) - at, "%s%s",
                                       at > strlen("UPDATE devices SET ") ? ", " : "", part[b]);
        snprintf(sql + at, sizeof(sql) - at, " WHERE device_id = ?1");
        if (sqlite3_prepare_v3(reg->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
            return NULL;
    }
    sqlite3_reset(*st);
    sqlite3_clear_bindings(*st);
    return *st;
}

static int state_store(struct core_reg *reg, const char *id, const struct state_old *o,
                       enum compliance_state state, const char *reason, int64_t ncs,
                       int64_t next_eval, int64_t now_ms, bool *changed, int64_t *version)
{
    int64_t v = o->version;
    char want_reason[CORE_REASON_MAX];
    snprintf(want_reason, sizeof(want_reason), "%.*s", clip(reason, CORE_REASON_MAX), reason);
    bool differs = o->state != state || strcmp(o->reason, want_reason) != 0;
    unsigned cols = (o->state != state ? SW_STATE : 0) | (differs ? SW_REASON : 0) |
                    (o->ncs != ncs ? SW_NCS : 0) | (o->next != next_eval ? SW_NEXT : 0);
    int rc;
    /* Nothing to write is the common case: a check-in that changes nothing. */
    if (cols) {
        if (differs && (rc = next_version(reg, &v)) < 0)
            return rc;
        sqlite3_stmt *s = state_stmt(reg, cols);
        if (!s)
            return CORE_REG_EDB;
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        if (cols & SW_STATE)
            sqlite3_bind_text(s, 2, compliance_state_name(state), -1, SQLITE_STATIC);
        if (cols & SW_REASON) {
            sqlite3_bind_text(s, 3, want_reason, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 4, v);
            sqlite3_bind_int64(s, 5, now_ms);
        }
        if (cols & SW_NCS)
            sqlite3_bind_int64(s, 6, ncs);
        if (cols & SW_NEXT)
            sqlite3_bind_int64(s, 7, next_eval);
        if ((rc = update_one(reg, s)) < 0)
            return rc;
    }
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

int core_reg_state_store(struct core_reg *reg, const struct core_device *d,
                         enum compliance_state state, const char *reason,
                         int64_t non_compliant_since_ms, int64_t next_eval_ms, int64_t now_ms,
                         bool *changed, int64_t *version)
{
    if (!reason || (unsigned)state > COMPLIANCE_WIPE)
        return CORE_REG_EINVAL;
    struct state_old o = {.state = d->state,
                          .version = d->version,
                          .ncs = d->non_compliant_since_ms,
                          .next = d->next_eval_ms};
    snprintf(o.reason, sizeof(o.reason), "%s", d->reason);
    if (sp_begin(reg) < 0)
        return CORE_REG_EDB;
    int rc = state_store(reg, d->device_id, &o, state, reason, non_compliant_since_ms, next_eval_ms,
                         now_ms, changed, version);
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

/*
 * Why hold it: UPDATE ... RETURNING is carried out by SQLite as a trigger,
 * so every state version taken that way opens a statement journal, and
 * inside the writer's savepoint each such statement's end walks the whole
 * in-memory sub-journal (a list of 1 KiB pieces: every page the batch has
 * touched so far). A batch of 500 new devices took 500 of those walks for
 * its versions alone; now it reads the counter once and writes it once.
 */
int core_reg_seq_hold(struct core_reg *reg)
{
    if (reg->seq_held)
        return 0;
    sqlite3_stmt *s = stmt(reg, S_META_GET);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, "state_version", -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        reg->seq = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return CORE_REG_EDB;
    reg->seq_held = true;
    reg->seq_moved = false;
    return 0;
}

int core_reg_seq_release(struct core_reg *reg)
{
    if (!reg->seq_held)
        return 0;
    reg->seq_held = false;
    if (!reg->seq_moved)
        return 0;
    sqlite3_stmt *s = stmt(reg, S_META_SET);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, "state_version", -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, reg->seq);
    return step_done(s);
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
    if (sp_begin(reg) < 0)
        return CORE_REG_EDB;
    sqlite3_stmt *s = stmt(reg, S_DEV_DELETE);
    int rc = CORE_REG_EDB;
    if (s) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        rc = update_one(reg, s);
    }
    if (rc == 0 && !(s = stmt(reg, S_SEEN_DELETE)))
        rc = CORE_REG_EDB;
    if (rc == 0) {
        sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
        rc = step_done(s);
    }
    return sp_end(reg, rc);
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

int core_reg_counts(struct core_reg *reg, struct core_reg_counts *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *s = stmt(reg, S_COUNT_BY_STATE);
    if (!s)
        return CORE_REG_EDB;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        enum compliance_state st;
        if (compliance_state_parse((const char *)sqlite3_column_text(s, 0), &st) < 0)
            continue;
        bool compliant = sqlite3_column_int(s, 1), failing = sqlite3_column_int(s, 2);
        int64_t n = sqlite3_column_int64(s, 3);
        out->states[st] += n;
        out->devices += n;
        if (compliant)
            out->compliant += n;
        if (failing)
            out->failing += n;
        if (failing && st == COMPLIANCE_ALLOW)
            out->grace += n;
        if (!compliant && !failing)
            out->unchecked += n;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

static const char *const activity_kinds[CORE_ACTIVITY_KINDS] = {
    [CORE_ACTIVITY_REGISTERED] = "registered",
    [CORE_ACTIVITY_CERTIFIED] = "certified",
    [CORE_ACTIVITY_BLOCKED] = "blocked",
};

const char *core_activity_name(enum core_activity_kind k)
{
    return (unsigned)k < CORE_ACTIVITY_KINDS ? activity_kinds[k] : "";
}

int core_reg_activity(struct core_reg *reg, int64_t from_hour, size_t hours,
                      int64_t (*out)[CORE_ACTIVITY_KINDS])
{
    if (hours > CORE_ACTIVITY_MAX_HOURS)
        return CORE_REG_EINVAL;
    memset(out, 0, sizeof(*out) * hours);
    sqlite3_stmt *s = stmt(reg, S_ACTIVITY);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_int64(s, 1, from_hour);
    sqlite3_bind_int64(s, 2, from_hour + (int64_t)hours);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t h = sqlite3_column_int64(s, 0) - from_hour;
        const char *kind = (const char *)sqlite3_column_text(s, 1);
        for (int k = 0; k < CORE_ACTIVITY_KINDS; k++)
            if (h >= 0 && (size_t)h < hours && kind && strcmp(kind, activity_kinds[k]) == 0)
                out[h][k] += sqlite3_column_int64(s, 2);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

void core_dev_filter_init(struct core_dev_filter *f)
{
    memset(f, 0, sizeof(*f));
    f->state = -1;
    f->managed = -1;
    f->compliance = -1;
}

/*
 * Listing a million devices by any combination of filters, a page in
 * DeviceId order (or another order, below), in bounded time.
 *
 * Every equality filter has an index ordered by (value, DeviceId), so
 * walking it from the cursor yields matches in page order and the walk can
 * stop at the page's end: a "driver". When a driver's matches are few the
 * walk is short whatever the other filters do; when every filter matches
 * much of the registry, a page fills after a few rows unless the filters
 * are rare together (state=wipe & type=iPhone: each is a driver, the pair
 * is empty). SQLite's planner picks one index from averages and cannot
 * know which case it is in, so the registry decides itself:
 *
 *   1. for each driver the filters offer (user, type, state, managed, OS,
 *      failing, last seen, the search), count its entries after the
 *      cursor, stopping at REG_PLAN_CAP: an index-only walk of at most that
 *      many entries;
 *   2. the driver with the fewest drives the page (exact: the walk is
 *      within the cap), or, when every driver reaches the cap,
 *   3. the page walks the most selective ordered driver (or DeviceId order)
 *      for at most REG_SCAN_BUDGET entries. A page can then hold fewer
 *      devices than asked for, even none, and its cursor is the last entry
 *      walked: the next page goes on from there. Only a page without a
 *      cursor is the last.
 *
 * The last-seen driver (device_seen's index on the hour) is a range, not in
 * DeviceId order: it is used only when its matches fit under the cap, and
 * sorted. So is the free-text search (q): a union of prefix ranges on the
 * indexes of DeviceId, user, model and phone number, each counted on its
 * own; a field with no match at all drops out of the search, and when only
 * the field the page is ordered by is left, its range also narrows the
 * ordered walk (a DeviceId prefix in DeviceId order walks only that range).
 *
 * Other orders (f->sort: user, state, type, OS, the hour of last seen) have
 * an index ordered by (key, DeviceId) each; the cursor is the pair and the
 * page a walk from it (a row-value range, (key, id) > (?, ?), which SQLite
 * serves from the index). A driver under the cap is then counted whole
 * (its matches are sorted), and the only ordered walk is the order's own
 * index, narrowed by a filter on its own column. Descending pages walk
 * the same indexes backwards.
 *
 * core_reg_device_plans() hands every statement this can run to
 * EXPLAIN QUERY PLAN for the test that forbids table scans.
 */
#define REG_PLAN_CAP 4000
#define REG_SCAN_BUDGET 4000

enum drv {
    DRV_USER,
    DRV_TYPE,
    DRV_STATE,
    DRV_MANAGED,
    DRV_OS,
    DRV_FAILING,
    DRV_SEEN, /* range: device_seen_by_hour */
    DRV_Q,    /* ranges: the search's fields (q_sql) */
    DRV_ALL,  /* the page's order, no filter */
    DRV_N
};

/* Each ordered driver: its index and the condition it serves (on devices d). */
static const struct {
    const char *index, *cond;
} drv_sql[DRV_N] = {
    [DRV_USER] = {"devices_by_user", "user = ?1"},
    [DRV_TYPE] = {"devices_by_type", "device_type = ?2 COLLATE NOCASE"},
    [DRV_STATE] = {"devices_by_state", "state = ?3"},
    [DRV_MANAGED] = {"devices_by_managed", "managed = ?4"},
    [DRV_OS] = {"devices_by_os", "os = ?9 COLLATE NOCASE"},
    [DRV_FAILING] = {"devices_failing", "non_compliant_since_ms > 0"},
    [DRV_SEEN] = {"device_seen_by_hour", NULL},
    [DRV_Q] = {NULL, NULL},
    [DRV_ALL] = {"sqlite_autoindex_devices_1", NULL},
};

/* The search's fields: a prefix range each, on its own index. ?12/?13 are
 * the text upper-cased (DeviceIds are stored so) and its end, ?14/?15 the
 * text as typed and its end (user and model compare without case). */
#define REG_Q_FIELDS 4
static const struct {
    unsigned bit;
    const char *index, *cond, *page_cond; /* on devices alone; on devices d */
} q_sql[REG_Q_FIELDS] = {
    {CORE_Q_DEVICE_ID, "sqlite_autoindex_devices_1", "device_id >= ?12 AND device_id < ?13",
     "d.device_id >= ?12 AND d.device_id < ?13"},
    {CORE_Q_USER, "devices_by_user", "user >= ?14 AND user < ?15",
     "d.user >= ?14 AND d.user < ?15"},
    {CORE_Q_MODEL, "devices_by_model", "model >= ?14 COLLATE NOCASE AND model < ?15 COLLATE NOCASE",
     "d.model >= ?14 COLLATE NOCASE AND d.model < ?15 COLLATE NOCASE"},
    {CORE_Q_PHONE, "devices_by_phone", "phone_number >= ?14 AND phone_number < ?15",
     "d.phone_number >= ?14 AND d.phone_number < ?15"},
};

/* Each order: its index (on device_seen for last_seen, else on devices),
 * its key in a walk of that table alone and in a page (devices d,
 * device_seen s), and whether the key compares without case. */
static const struct {
    const char *index, *walk_key, *page_key;
    bool nocase;
} sort_sql[] = {
    [CORE_SORT_DEVICE_ID] = {"sqlite_autoindex_devices_1", "device_id", "d.device_id", false},
    [CORE_SORT_USER] = {"devices_by_user", "user", "d.user", true},
    [CORE_SORT_LAST_SEEN] = {"device_seen_by_hour", "seen_hour", "s.seen_hour", false},
    [CORE_SORT_STATE] = {"devices_by_state", "state", "d.state", false},
    [CORE_SORT_TYPE] = {"devices_by_type", "device_type", "d.device_type", true},
    [CORE_SORT_OS] = {"devices_by_os", "os", "d.os", true},
};

int core_dev_sort_parse(const char *s, enum core_dev_sort *out)
{
    static const char *const names[] = {"device_id", "user", "last_seen", "state", "type", "os"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (s && strcmp(s, names[i]) == 0) {
            *out = (enum core_dev_sort)i;
            return 0;
        }
    return -1;
}

static bool sorted(const struct core_dev_filter *f)
{
    return f->sort != CORE_SORT_DEVICE_ID;
}

static bool q_on(const struct core_dev_filter *f)
{
    return f->q && f->q[0];
}

static unsigned q_fields(const struct core_dev_filter *f)
{
    return f->q_fields ? f->q_fields & CORE_Q_ALL : CORE_Q_ALL;
}

/* Parameters: ?1 user ?2 type ?3 state ?4 managed ?5 seen_since ?6 seen_before
 * ?7 after ?8 limit ?9 os ?10 budget or cap ?11 after's sort key ?12-?15 q. */
static bool drv_usable(const struct core_dev_filter *f, enum drv k)
{
    switch (k) {
    case DRV_USER:
        return f->user;
    case DRV_TYPE:
        return f->device_type;
    case DRV_STATE:
        return f->state >= 0;
    case DRV_MANAGED:
        return f->managed >= 0;
    case DRV_OS:
        return f->os;
    case DRV_FAILING:
        return f->compliance == CORE_COMPLIANCE_FAILING || f->compliance == CORE_COMPLIANCE_GRACE;
    case DRV_SEEN:
        return f->seen_since_ms > 0 || f->seen_before_ms > 0;
    case DRV_Q:
        return q_on(f);
    case DRV_ALL:
    case DRV_N:
        break;
    }
    return true;
}

struct sqlb {
    char s[3072];
    size_t n;
};

__attribute__((format(printf, 2, 3))) static void sqlb_add(struct sqlb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof(b->s) - b->n, fmt, ap);
    va_end(ap);
    if (k > 0)
        b->n = b->n + (size_t)k < sizeof(b->s) ? b->n + (size_t)k : sizeof(b->s) - 1;
}

/* Every filter of f as " AND ..." on devices d and device_seen s. */
static void sql_filters(struct sqlb *b, const struct core_dev_filter *f)
{
    if (f->user)
        sqlb_add(b, " AND d.user = ?1");
    if (f->device_type)
        sqlb_add(b, " AND d.device_type = ?2 COLLATE NOCASE");
    if (f->state >= 0)
        sqlb_add(b, " AND d.state = ?3");
    if (f->managed >= 0)
        sqlb_add(b, " AND d.managed = ?4");
    if (f->os)
        sqlb_add(b, " AND d.os = ?9 COLLATE NOCASE");
    if (f->compliance == CORE_COMPLIANCE_COMPLIANT)
        sqlb_add(b, " AND d.reason = 'compliant'");
    else if (f->compliance == CORE_COMPLIANCE_FAILING)
        sqlb_add(b, " AND d.non_compliant_since_ms > 0");
    else if (f->compliance == CORE_COMPLIANCE_GRACE)
        sqlb_add(b, " AND d.non_compliant_since_ms > 0 AND d.state = 'allow'");
    else if (f->compliance == CORE_COMPLIANCE_UNCHECKED)
        sqlb_add(b, " AND d.reason <> 'compliant' AND d.non_compliant_since_ms = 0");
    if (f->seen_since_ms > 0)
        sqlb_add(b, " AND s.last_seen_ms >= ?5");
    if (f->seen_before_ms > 0)
        sqlb_add(b, " AND s.last_seen_ms < ?6");
    if (q_on(f)) {
        sqlb_add(b, " AND (0");
        for (int i = 0; i < REG_Q_FIELDS; i++)
            if (q_fields(f) & q_sql[i].bit)
                sqlb_add(b, " OR (%s)", q_sql[i].page_cond);
        sqlb_add(b, ")");
    }
}

/* The cursor's condition and the order, on key and id (a table's columns). */
static void sql_keyset(struct sqlb *b, const struct core_dev_filter *f, const char *key,
                       const char *id)
{
    if (!f->after)
        return;
    const char *cmp = f->desc ? "<" : ">";
    if (sorted(f))
        sqlb_add(b, " AND (%s, %s) %s (?11%s, ?7)", key, id, cmp,
                 sort_sql[f->sort].nocase ? " COLLATE NOCASE" : "");
    else
        sqlb_add(b, " AND %s %s ?7", id, cmp);
}

static void sql_order(struct sqlb *b, const struct core_dev_filter *f, const char *key,
                      const char *id)
{
    const char *dir = f->desc ? " DESC" : "";
    if (sorted(f))
        sqlb_add(b, " ORDER BY %s%s%s, %s%s", key,
                 sort_sql[f->sort].nocase ? " COLLATE NOCASE" : "", dir, id, dir);
    else
        sqlb_add(b, " ORDER BY %s%s", id, dir);
}

/* The last-seen range on device_seen (named t, "" for the only table):
 * the hours for the index, the times for the answer. */
static void sql_seen_range(struct sqlb *b, const struct core_dev_filter *f, const char *t)
{
    if (f->seen_since_ms > 0)
        sqlb_add(b, "%sseen_hour >= ?5 / 3600000 AND %slast_seen_ms >= ?5", t, t);
    if (f->seen_before_ms > 0)
        sqlb_add(b, "%s%sseen_hour <= ?6 / 3600000 AND %slast_seen_ms < ?6",
                 f->seen_since_ms > 0 ? " AND " : "", t, t);
}

/*
 * An ordered walk from the cursor: "FROM x INDEXED BY i WHERE ...". In
 * DeviceId order driver k's index; in another order that order's own
 * index (k is DRV_ALL), narrowed by a filter on its column. A search left
 * with the order's own field alone narrows it to that field's range.
 */
static bool q_own_field(const struct core_dev_filter *f)
{
    return q_on(f) && q_fields(f) == (sorted(f) ? (f->sort == CORE_SORT_USER ? CORE_Q_USER : 0)
                                                : CORE_Q_DEVICE_ID);
}

/* Is every entry of the order's own walk a match (no filter, or a search
 * that narrows the walk to exactly its range)? Then a page is the walk's
 * first rows: no budget. */
static bool walk_exact(const struct core_dev_filter *f)
{
    bool none = !f->user && !f->device_type && f->state < 0 && f->managed < 0 && !f->os &&
                f->compliance < 0 && f->seen_since_ms <= 0 && f->seen_before_ms <= 0;
    return none && (!q_on(f) || q_own_field(f));
}

static void sql_walk(struct sqlb *b, const struct core_dev_filter *f, enum drv k)
{
    bool q_own = q_own_field(f);
    if (!sorted(f)) {
        sqlb_add(b, " FROM devices INDEXED BY %s WHERE %s", drv_sql[k].index,
                 drv_sql[k].cond ? drv_sql[k].cond : "1");
        if (q_own)
            sqlb_add(b, " AND %s", q_sql[0].cond);
        sql_keyset(b, f, NULL, "device_id");
        return;
    }
    const char *idx = sort_sql[f->sort].index;
    if (f->sort == CORE_SORT_LAST_SEEN) {
        sqlb_add(b, " FROM device_seen INDEXED BY %s WHERE 1", idx);
        if (drv_usable(f, DRV_SEEN)) {
            sqlb_add(b, " AND ");
            sql_seen_range(b, f, "");
        }
    } else {
        sqlb_add(b, " FROM devices INDEXED BY %s WHERE 1", idx);
        if (f->sort == CORE_SORT_USER && f->user)
            sqlb_add(b, " AND %s", drv_sql[DRV_USER].cond);
        if (f->sort == CORE_SORT_STATE && f->state >= 0)
            sqlb_add(b, " AND %s", drv_sql[DRV_STATE].cond);
        if (f->sort == CORE_SORT_TYPE && f->device_type)
            sqlb_add(b, " AND %s", drv_sql[DRV_TYPE].cond);
        if (f->sort == CORE_SORT_OS && f->os)
            sqlb_add(b, " AND %s", drv_sql[DRV_OS].cond);
        if (q_own)
            sqlb_add(b, " AND %s", q_sql[1].cond);
    }
    sql_keyset(b, f, sort_sql[f->sort].walk_key, "device_id");
}

/* The capped count of driver k: how many entries it would walk (up to ?10):
 * in DeviceId order those after the cursor, in another order all of them. */
static void sql_count(struct sqlb *b, const struct core_dev_filter *f, enum drv k)
{
    if (k == DRV_SEEN) {
        sqlb_add(b, "SELECT count(*) FROM (SELECT 1 FROM device_seen INDEXED BY %s WHERE ",
                 drv_sql[k].index);
        sql_seen_range(b, f, "");
        sqlb_add(b, " LIMIT ?10)");
        return;
    }
    sqlb_add(b, "SELECT count(*) FROM (SELECT 1 FROM devices INDEXED BY %s WHERE %s",
             drv_sql[k].index, drv_sql[k].cond ? drv_sql[k].cond : "1");
    if (!sorted(f))
        sql_keyset(b, f, NULL, "device_id");
    sqlb_add(b, " LIMIT ?10)");
}

/* The capped count of the search's field i. */
static void sql_q_count(struct sqlb *b, int i)
{
    sqlb_add(b, "SELECT count(*) FROM (SELECT 1 FROM devices INDEXED BY %s WHERE %s LIMIT ?10)",
             q_sql[i].index, q_sql[i].cond);
}

/* MODE_WALK: a budget walk whose entries all match (walk_exact): as long as the page. */
enum list_mode { MODE_EXACT, MODE_DRIVEN, MODE_BUDGET, MODE_WALK };

/* The page's select list: the device, then (another order) its sort key. */
static void sql_select(struct sqlb *b, const struct core_dev_filter *f)
{
    sqlb_add(b, "SELECT " DEV_COLS);
    if (sorted(f))
        sqlb_add(b, ", %s", sort_sql[f->sort].page_key);
}

/*
 * The page's statement. EXACT lets SQLite choose (core_reg_device_list,
 * which may scan); DRIVEN forces driver k (its matches are few); BUDGET
 * walks the ordered driver k for at most ?10 entries and filters those.
 */
static void sql_page(struct sqlb *b, const struct core_dev_filter *f, enum list_mode m, enum drv k)
{
    sql_select(b, f);
    if (m == MODE_DRIVEN && k == DRV_SEEN) {
        sqlb_add(b,
                 " FROM device_seen s INDEXED BY %s "
                 "JOIN devices d ON d.device_id = s.device_id WHERE ",
                 drv_sql[k].index);
        sql_seen_range(b, f, "s.");
    } else if (m == MODE_DRIVEN && k == DRV_Q) {
        /* The union of the fields' ranges, then each device by its id. */
        sqlb_add(b, " FROM (");
        const char *sep = "";
        for (int i = 0; i < REG_Q_FIELDS; i++)
            if (q_fields(f) & q_sql[i].bit) {
                sqlb_add(b, "%sSELECT device_id AS qid FROM devices INDEXED BY %s WHERE %s", sep,
                         q_sql[i].index, q_sql[i].cond);
                sep = " UNION ";
            }
        sqlb_add(b, ") CROSS JOIN devices d ON d.device_id = qid" DEV_SEEN " WHERE 1");
    } else if (m == MODE_DRIVEN) {
        sqlb_add(b, " FROM devices d INDEXED BY %s" DEV_SEEN " WHERE 1", drv_sql[k].index);
    } else if (m == MODE_BUDGET || m == MODE_WALK) {
        sqlb_add(b, " FROM devices d" DEV_SEEN " WHERE d.device_id IN (SELECT device_id");
        sql_walk(b, f, k);
        sql_order(b, f, sort_sql[f->sort].walk_key, "device_id");
        sqlb_add(b, " LIMIT %s)", m == MODE_WALK ? "?8" : "?10");
    } else {
        sqlb_add(b, " FROM devices d" DEV_SEEN " WHERE 1");
    }
    sql_filters(b, f);
    sql_keyset(b, f, sort_sql[f->sort].page_key, "d.device_id");
    sql_order(b, f, sort_sql[f->sort].page_key, "d.device_id");
    sqlb_add(b, " LIMIT ?8");
}

/* The cursor after a budget walk: the last entry walked (and its key), if
 * the walk was cut. */
static void sql_budget_end(struct sqlb *b, const struct core_dev_filter *f, enum drv k)
{
    sqlb_add(b, "SELECT device_id");
    if (sorted(f))
        sqlb_add(b, ", %s", sort_sql[f->sort].walk_key);
    sql_walk(b, f, k);
    sql_order(b, f, sort_sql[f->sort].walk_key, "device_id");
    sqlb_add(b, " LIMIT 1 OFFSET ?10 - 1");
}

/* The search text's ends: upper-cased for DeviceIds, as typed for the
 * rest; a range [t, t + 0xF5) holds exactly the texts that start with t
 * (no UTF-8 text has a byte 0xF5 or above). */
static void bind_q(sqlite3_stmt *s, int i, const char *q, bool upper, bool end)
{
    char buf[CORE_Q_MAX + 2];
    int n = clip(q, CORE_Q_MAX + 1);
    memcpy(buf, q, (size_t)n);
    for (int k = 0; upper && k < n; k++)
        if (buf[k] >= 'a' && buf[k] <= 'z')
            buf[k] = (char)(buf[k] - 'a' + 'A');
    if (end)
        buf[n++] = (char)0xF5;
    sqlite3_bind_text(s, i, buf, n, SQLITE_TRANSIENT);
}

static int bind_filter(struct core_reg *reg, const char *sql, const struct core_dev_filter *f,
                       int64_t limit, int64_t cap, sqlite3_stmt **out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(reg->db, sql, -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    int np = sqlite3_bind_parameter_count(s);
    for (int i = 1; i <= np; i++) {
        const char *name = sqlite3_bind_parameter_name(s, i);
        int k = name ? atoi(name + 1) : 0;
        switch (k) {
        case 1:
            bind_text(s, i, f->user, CORE_USER_MAX);
            break;
        case 2:
            bind_text(s, i, f->device_type, CORE_SHORT_MAX);
            break;
        case 3:
            sqlite3_bind_text(s, i, compliance_state_name((enum compliance_state)f->state), -1,
                              SQLITE_STATIC);
            break;
        case 4:
            sqlite3_bind_int(s, i, f->managed ? 1 : 0);
            break;
        case 5:
            sqlite3_bind_int64(s, i, f->seen_since_ms);
            break;
        case 6:
            sqlite3_bind_int64(s, i, f->seen_before_ms);
            break;
        case 7: {
            char after[CORE_DEVID_MAX + 1];
            /* A cursor that is not a valid DeviceId still orders correctly as text. */
            if (core_reg_devid(f->after, after) == 0)
                sqlite3_bind_text(s, i, after, -1, SQLITE_TRANSIENT);
            else
                bind_text(s, i, f->after, CORE_USER_MAX);
            break;
        }
        case 8:
            sqlite3_bind_int64(s, i, limit);
            break;
        case 9:
            bind_text(s, i, f->os, CORE_SHORT_MAX);
            break;
        case 10:
            sqlite3_bind_int64(s, i, cap);
            break;
        case 11:
            /* The hour of last seen is a number; the other keys are text. */
            if (f->sort == CORE_SORT_LAST_SEEN)
                sqlite3_bind_int64(s, i, f->after_key ? strtoll(f->after_key, NULL, 10) : 0);
            else
                bind_text(s, i, f->after_key ? f->after_key : "", CORE_SORT_KEY_MAX);
            break;
        case 12:
        case 13:
        case 14:
        case 15:
            bind_q(s, i, f->q ? f->q : "", k <= 13, k == 13 || k == 15);
            break;
        default:
            break;
        }
    }
    *out = s;
    return 0;
}

/* Run a page statement: up to max rows into out; *more (may be NULL): a
 * row beyond them exists (the statement's LIMIT is max + 1 then). key
 * (may be NULL): the sort key of the last row read into out. */
static int run_page(struct core_reg *reg, const char *sql, const struct core_dev_filter *f,
                    int64_t cap, struct core_device *out, size_t max, size_t *n, bool *more,
                    char *key)
{
    *n = 0;
    sqlite3_stmt *s;
    if (bind_filter(reg, sql, f, (int64_t)max + (more ? 1 : 0), cap, &s) < 0)
        return CORE_REG_EDB;
    int rc = SQLITE_DONE;
    while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        row_device(s, &out[(*n)++]);
        if (key && sorted(f))
            col_text(s, 37, key, CORE_SORT_KEY_MAX);
    }
    if (*n == max) {
        rc = more ? sqlite3_step(s) : SQLITE_DONE;
        if (more)
            *more = rc == SQLITE_ROW;
        if (rc == SQLITE_ROW)
            rc = SQLITE_DONE;
    } else if (more) {
        *more = false;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : CORE_REG_EDB;
}

/* The first row of a statement of sql: column 0 as an integer (v) or text
 * (txt), column 1 as text (txt2); 0, 1 (no row) or an error. */
static int run_one(struct core_reg *reg, const char *sql, const struct core_dev_filter *f,
                   int64_t cap, int64_t *v, char *txt, size_t txtlen, char *txt2, size_t txt2len)
{
    sqlite3_stmt *s;
    if (bind_filter(reg, sql, f, 0, cap, &s) < 0)
        return CORE_REG_EDB;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (v)
            *v = sqlite3_column_int64(s, 0);
        if (txt)
            col_text(s, 0, txt, txtlen);
        if (txt2)
            col_text(s, 1, txt2, txt2len);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? 1 : CORE_REG_EDB;
}

int core_reg_device_list(struct core_reg *reg, const struct core_dev_filter *f,
                         struct core_device *out, size_t max, size_t *n)
{
    *n = 0;
    if (max == 0)
        return 0;
    /* The list is in DeviceId order, ascending, whatever f says. */
    struct core_dev_filter g = *f;
    g.sort = CORE_SORT_DEVICE_ID;
    g.desc = false;
    struct sqlb b = {.n = 0};
    /* A user has a handful of devices: walk them, whatever else is asked. */
    if (g.user)
        sql_page(&b, &g, MODE_DRIVEN, DRV_USER);
    else
        sql_page(&b, &g, MODE_EXACT, DRV_ALL);
    return run_page(reg, b.s, &g, 0, out, max, n, NULL, NULL);
}

/*
 * Which driver serves f best: the fewest entries, capped; *ordered the
 * most selective one in page order. The search counts its fields first
 * and drops those without a match from f->q_fields (none left: *best_n 0).
 */
static int choose_driver(struct core_reg *reg, struct core_dev_filter *f, enum drv *best,
                         int64_t *best_n, enum drv *ordered)
{
    *best = DRV_ALL;
    *best_n = INT64_MAX;
    *ordered = DRV_ALL;
    int64_t ordered_n = INT64_MAX, q_n = 0;
    if (q_on(f)) {
        unsigned left = 0;
        for (int i = 0; i < REG_Q_FIELDS; i++) {
            if (!(q_fields(f) & q_sql[i].bit))
                continue;
            struct sqlb b = {.n = 0};
            sql_q_count(&b, i);
            int64_t c = 0;
            int rc = run_one(reg, b.s, f, REG_PLAN_CAP, &c, NULL, 0, NULL, 0);
            if (rc < 0)
                return rc;
            if (c > 0)
                left |= q_sql[i].bit;
            q_n += c;
        }
        if (!left) {
            *best = DRV_Q;
            *best_n = 0;
            return 0;
        }
        f->q_fields = left;
    }
    for (int k = 0; k < DRV_ALL; k++) {
        if (!drv_usable(f, (enum drv)k))
            continue;
        int64_t c = q_n;
        if (k != DRV_Q) {
            struct sqlb b = {.n = 0};
            sql_count(&b, f, (enum drv)k);
            int rc = run_one(reg, b.s, f, REG_PLAN_CAP, &c, NULL, 0, NULL, 0);
            if (rc < 0)
                return rc;
        }
        if (c < *best_n) {
            *best = (enum drv)k;
            *best_n = c;
        }
        if (!sorted(f) && k != DRV_SEEN && k != DRV_Q && c < ordered_n) {
            *ordered = (enum drv)k;
            ordered_n = c;
        }
        if (c < REG_PLAN_CAP / 8)
            break; /* few enough: no need to look further */
    }
    return 0;
}

int core_reg_device_page_sorted(struct core_reg *reg, const struct core_dev_filter *f,
                                struct core_device *out, size_t max, size_t *n,
                                char next[CORE_DEVID_MAX + 1], char next_key[CORE_SORT_KEY_MAX])
{
    *n = 0;
    next[0] = next_key[0] = '\0';
    if ((unsigned)f->sort > CORE_SORT_OS || (sorted(f) && f->after && !f->after_key))
        return CORE_REG_EINVAL;
    if (max == 0)
        return 0;
    struct core_dev_filter g = *f;
    enum drv best, ordered;
    int64_t best_n;
    int rc = choose_driver(reg, &g, &best, &best_n, &ordered);
    if (rc < 0)
        return rc;
    if (best == DRV_Q && best_n == 0)
        return 0; /* the search matches nothing at all */
    bool budget = best_n >= REG_PLAN_CAP || best == DRV_ALL;
    bool exact = budget && ordered == DRV_ALL && walk_exact(&g);
    struct sqlb b = {.n = 0};
    sql_page(&b, &g,
             exact    ? MODE_WALK
             : budget ? MODE_BUDGET
                      : MODE_DRIVEN,
             budget ? ordered : best);
    /* One row beyond the page says whether another page follows. */
    bool more = false;
    char key[CORE_SORT_KEY_MAX] = "";
    if ((rc = run_page(reg, b.s, &g, REG_SCAN_BUDGET, out, max, n, &more, key)) < 0)
        return rc;
    if (more) {
        memcpy(next, out[max - 1].device_id, CORE_DEVID_MAX + 1);
        memcpy(next_key, key, CORE_SORT_KEY_MAX);
        return 0;
    }
    if (!budget || exact)
        return 0;
    /* The walk stopped at its budget, not at the end: go on from its last entry. */
    struct sqlb e = {.n = 0};
    sql_budget_end(&e, &g, ordered);
    rc = run_one(reg, e.s, &g, REG_SCAN_BUDGET, NULL, next, CORE_DEVID_MAX + 1,
                 sorted(&g) ? next_key : NULL, CORE_SORT_KEY_MAX);
    if (rc == 1)
        next[0] = next_key[0] = '\0';
    return rc < 0 ? rc : 0;
}

int core_reg_device_page(struct core_reg *reg, const struct core_dev_filter *f,
                         struct core_device *out, size_t max, size_t *n,
                         char next[CORE_DEVID_MAX + 1])
{
    char key[CORE_SORT_KEY_MAX];
    return core_reg_device_page_sorted(reg, f, out, max, n, next, key);
}

/* EXPLAIN QUERY PLAN of sql (no parameters bound: the plan does not depend on them). */
static int explain(struct core_reg *reg, const char *sql, char *plan, size_t len)
{
    char q[4096];
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(reg->db, q, -1, &s, NULL) != SQLITE_OK)
        return CORE_REG_EDB;
    size_t at = 0;
    plan[0] = '\0';
    while (sqlite3_step(s) == SQLITE_ROW && at < len - 1) {
        const char *detail = (const char *)sqlite3_column_text(s, 3);
        int k = snprintf(plan + at, len - at, "%s%s", at ? "\n" : "", detail ? detail : "");
        if (k > 0)
            at = at + (size_t)k < len ? at + (size_t)k : len - 1;
    }
    sqlite3_finalize(s);
    return 0;
}

int core_reg_statement_plans(struct core_reg *reg,
                             int (*cb)(const char *sql, const char *plan, void *arg), void *arg)
{
    int rc = 0;
    for (int i = 0; i < S_COUNT_ && rc == 0; i++) {
        char plan[2048];
        if (explain(reg, stmt_sql[i], plan, sizeof(plan)) < 0)
            return CORE_REG_EDB;
        rc = cb(stmt_sql[i], plan, arg);
    }
    return rc;
}

int core_reg_device_plans(struct core_reg *reg, const struct core_dev_filter *f,
                          int (*cb)(const char *sql, const char *plan, void *arg), void *arg)
{
    struct sqlb *sqls = malloc(sizeof(*sqls) * (2 * DRV_N + 2 + REG_Q_FIELDS));
    if (!sqls)
        return CORE_REG_ENOMEM;
    size_t ns = 0;
    for (int k = 0; k < DRV_N; k++) {
        if (!drv_usable(f, (enum drv)k))
            continue;
        if (k == DRV_Q) {
            for (int i = 0; i < REG_Q_FIELDS; i++)
                if (q_fields(f) & q_sql[i].bit) {
                    sqls[ns] = (struct sqlb){.n = 0};
                    sql_q_count(&sqls[ns++], i);
                }
        } else if (k != DRV_ALL) {
            sqls[ns] = (struct sqlb){.n = 0};
            sql_count(&sqls[ns++], f, (enum drv)k);
        }
        if (k != DRV_ALL) {
            sqls[ns] = (struct sqlb){.n = 0};
            sql_page(&sqls[ns++], f, MODE_DRIVEN, (enum drv)k);
        }
        /* Ordered walks: a driver in DeviceId order, else the order's own. */
        if (k != DRV_SEEN && k != DRV_Q && (!sorted(f) || k == DRV_ALL)) {
            sqls[ns] = (struct sqlb){.n = 0};
            sql_page(&sqls[ns++], f, k == DRV_ALL && walk_exact(f) ? MODE_WALK : MODE_BUDGET,
                     (enum drv)k);
            sqls[ns] = (struct sqlb){.n = 0};
            sql_budget_end(&sqls[ns++], f, (enum drv)k);
        }
    }
    int rc = 0;
    for (size_t i = 0; i < ns && rc == 0; i++) {
        char plan[2048];
        if (explain(reg, sqls[i].s, plan, sizeof(plan)) < 0) {
            eg_error("registry: cannot explain %s: %s", sqls[i].s, sqlite3_errmsg(reg->db));
            rc = CORE_REG_EDB;
            break;
        }
        rc = cb(sqls[i].s, plan, arg);
    }
    free(sqls);
    return rc;
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

/* A resync reads a million devices: only the columns it writes, into one
 * reused record, pages of REG_STATE_PAGE with no statement open during cb,
 * in the table's own order (rowid): DeviceId order walked the DeviceId index
 * and looked each row up at a random place of the table. */
#define REG_STATE_PAGE 4096

int core_reg_state_foreach(struct core_reg *reg, int (*cb)(const struct core_device *d, void *arg),
                           void *arg)
{
    /* Any binding? Asked once: a binding made while the resync reads is in
     * the place of one made after its page was read, which the core pushes
     * itself. */
    sqlite3_stmt *b = stmt(reg, S_BOUND_ANY);
    int bound = b ? sqlite3_step(b) : SQLITE_ERROR;
    if (b)
        sqlite3_reset(b);
    if (bound != SQLITE_ROW && bound != SQLITE_DONE)
        return CORE_REG_EDB;
    struct core_device *page = malloc(REG_STATE_PAGE * sizeof(*page));
    if (!page)
        return CORE_REG_ENOMEM;
    int64_t after = 0, last = 0;
    int rc = 0;
    for (;;) {
        sqlite3_stmt *s = stmt(reg, bound == SQLITE_ROW ? S_STATES : S_STATES_UNBOUND);
        if (!s) {
            rc = CORE_REG_EDB;
            break;
        }
        sqlite3_bind_int64(s, 1, after);
        sqlite3_bind_int(s, 2, REG_STATE_PAGE);
        size_t n = 0;
        int step;
        while ((step = sqlite3_step(s)) == SQLITE_ROW) {
            struct core_device *d = &page[n++];
            col_text(s, 0, d->device_id, sizeof(d->device_id));
            col_text(s, 1, d->user, sizeof(d->user));
            if (compliance_state_parse((const char *)sqlite3_column_text(s, 2), &d->state) < 0)
                d->state = COMPLIANCE_BLOCK;
            col_text(s, 3, d->reason, sizeof(d->reason));
            d->version = sqlite3_column_int64(s, 4);
            d->updated_ms = sqlite3_column_int64(s, 5);
            const unsigned char *wk = sqlite3_column_text(s, 6);
            d->wipe_account = wk && strcmp((const char *)wk, "account") == 0;
            d->pk_epoch = sqlite3_column_int64(s, 7);
            d->policy_key = (uint32_t)sqlite3_column_int64(s, 8);
            d->provisioned_ms = sqlite3_column_int64(s, 9);
            col_text(s, 10, d->cert_enrollment, sizeof(d->cert_enrollment));
            last = sqlite3_column_int64(s, 11);
        }
        sqlite3_reset(s);
        if (step != SQLITE_DONE) {
            rc = CORE_REG_EDB;
            break;
        }
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = cb(&page[i], arg);
        if (rc != 0 || n < REG_STATE_PAGE)
            break;
        after = last;
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

/* S_AUDIT_ADD or S_AUDIT_HAS with an audit row's values bound, or NULL. */
static sqlite3_stmt *audit_stmt(struct core_reg *reg, enum stmt_id id, const char *actor,
                                const char *address, const char *action, const char *target,
                                const char *detail, int64_t at_ms)
{
    sqlite3_stmt *s = stmt(reg, id);
    if (!s)
        return NULL;
    sqlite3_bind_int64(s, 1, at_ms);
    bind_text(s, 2, actor, CORE_USER_MAX);
    bind_text(s, 3, address, 64);
    bind_text(s, 4, action, 64);
    bind_text(s, 5, target, CORE_USER_MAX);
    bind_text(s, 6, detail, 512);
    return s;
}

int core_reg_audit_add(struct core_reg *reg, const char *actor, const char *address,
                       const char *action, const char *target, const char *detail, int64_t now_ms)
{
    if (!actor || !action)
        return CORE_REG_EINVAL;
    sqlite3_stmt *s = audit_stmt(reg, S_AUDIT_ADD, actor, address, action, target, detail, now_ms);
    return s ? step_done(s) : CORE_REG_EDB;
}

int core_reg_audit_add_once(struct core_reg *reg, const char *actor, const char *address,
                            const char *action, const char *target, const char *detail,
                            int64_t at_ms, bool *added)
{
    *added = false;
    if (!actor || !action)
        return CORE_REG_EINVAL;
    sqlite3_stmt *s = audit_stmt(reg, S_AUDIT_HAS, actor, address, action, target, detail, at_ms);
    if (!s)
        return CORE_REG_EDB;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc != SQLITE_DONE)
        return CORE_REG_EDB;
    rc = core_reg_audit_add(reg, actor, address, action, target, detail, at_ms);
    *added = rc == 0;
    return rc;
}

int core_reg_audit_list(struct core_reg *reg, int64_t before_id, struct core_audit *out, size_t max,
                        size_t *n)
{
    return core_reg_audit_find(reg, NULL, before_id, out, max, n);
}

int core_reg_audit_find(struct core_reg *reg, const char *target, int64_t before_id,
                        struct core_audit *out, size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = stmt(reg, target ? S_AUDIT_TARGET : S_AUDIT_LIST);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_int64(s, 1, before_id > 0 ? before_id : INT64_MAX);
    sqlite3_bind_int64(s, 2, (int64_t)max);
    if (target)
        bind_text(s, 3, target, CORE_USER_MAX);
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

/* ---- devices seen but never accepted ----------------------------------------- */

static int64_t count_of(struct core_reg *reg, enum stmt_id id)
{
    sqlite3_stmt *s = stmt(reg, id);
    if (!s)
        return CORE_REG_EDB;
    int rc = sqlite3_step(s);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : CORE_REG_EDB;
    sqlite3_reset(s);
    return n;
}

int core_reg_pending_note(struct core_reg *reg, const char *device_id, const struct core_pending *p,
                          int64_t when_ms, size_t max, int64_t ttl_ms, int64_t now_ms)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_PEND_EXPIRE);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_int64(s, 1, now_ms - ttl_ms);
    int rc = step_done(s);
    if (rc < 0 || !(s = stmt(reg, S_PEND_UPSERT)))
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    bind_text(s, 2, p->user && p->user[0] ? p->user : NULL, CORE_USER_MAX);
    bind_text(s, 3, p->device_type, CORE_SHORT_MAX);
    bind_text(s, 4, p->user_agent, CORE_AGENT_MAX);
    bind_text(s, 5, p->client_addr, CORE_SHORT_MAX);
    sqlite3_bind_int64(s, 6, when_ms);
    if (step_done(s) < 0)
        return CORE_REG_EDB;
    /* Over the cap: the oldest go (the index on last_ms walks just them). */
    int64_t n = count_of(reg, S_PEND_COUNT);
    if (n < 0)
        return (int)n;
    if ((size_t)n > max) {
        if (!(s = stmt(reg, S_PEND_TRIM)))
            return CORE_REG_EDB;
        sqlite3_bind_int64(s, 1, n - (int64_t)max);
        return step_done(s);
    }
    return 0;
}

static void row_pending(sqlite3_stmt *s, struct core_pending_row *r)
{
    snprintf(r->device_id, sizeof(r->device_id), "%s", (const char *)sqlite3_column_text(s, 0));
    snprintf(r->user, sizeof(r->user), "%s", (const char *)sqlite3_column_text(s, 1));
    snprintf(r->device_type, sizeof(r->device_type), "%s", (const char *)sqlite3_column_text(s, 2));
    snprintf(r->user_agent, sizeof(r->user_agent), "%s", (const char *)sqlite3_column_text(s, 3));
    snprintf(r->client_addr, sizeof(r->client_addr), "%s", (const char *)sqlite3_column_text(s, 4));
    r->first_ms = sqlite3_column_int64(s, 5);
    r->last_ms = sqlite3_column_int64(s, 6);
    r->count = sqlite3_column_int64(s, 7);
    r->policy_key = (uint32_t)sqlite3_column_int64(s, 8);
    r->provisioned_ms = sqlite3_column_int64(s, 9);
}

int core_reg_pending_get(struct core_reg *reg, const char *device_id, struct core_pending_row *out)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_PEND_GET);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        row_pending(s, out);
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? CORE_REG_ENOTFOUND : CORE_REG_EDB;
}

int core_reg_pending_list(struct core_reg *reg, const char *after, struct core_pending_row *out,
                          size_t max, size_t *n)
{
    *n = 0;
    sqlite3_stmt *s = stmt(reg, S_PEND_LIST);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, after ? after : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (sqlite3_int64)max);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
        row_pending(s, &out[(*n)++]);
    sqlite3_reset(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : CORE_REG_EDB;
}

int core_reg_pending_delete(struct core_reg *reg, const char *device_id)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_PEND_DEL);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    return step_done(s);
}

int core_reg_pending_provisioned(struct core_reg *reg, const char *device_id, uint32_t key,
                                 int64_t when_ms)
{
    CANON(id, device_id);
    sqlite3_stmt *s = stmt(reg, S_PEND_PROV);
    if (!s)
        return CORE_REG_EDB;
    sqlite3_bind_text(s, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, (int64_t)key);
    sqlite3_bind_int64(s, 3, when_ms);
    return step_done(s);
}

int64_t core_reg_pending_count(struct core_reg *reg)
{
    return count_of(reg, S_PEND_COUNT);
}
