/*
 * core_reg: the device registry, an SQLite database in WAL mode.
 *
 * The registry is the core's memory: users, devices (identity, what the
 * device told us, the state the core computed and pushed, the admin's
 * override), the admin actions taken on devices, and an append-only audit
 * log. The core is the only writer; WAL lets readers (the admin API, the
 * CLI) look while it writes.
 *
 * Schema: versioned migrations run in order at open, each in one
 * transaction, recorded in schema_version. A database written by a newer
 * binary (version above CORE_REG_SCHEMA) is refused with a message that
 * says so, and is not touched. Migrations only add: nothing is dropped, so
 * an upgrade never loses data.
 *
 * Scale: built for a million devices. Every list query walks an index and
 * pages by keyset (the last DeviceId seen), never by OFFSET; the API's pages
 * (core_reg_device_page) are bounded whatever the filters. When a device was
 * last seen and last checked in live in a narrow table of their own
 * (device_seen), which the engine writes in sorted batches (core/eng.h).
 *
 * Threads: one struct core_reg is used by one thread at a time (the
 * connection and its prepared statements are not shared). Open a second one
 * for another thread; SQLite's busy timeout serialises the writers.
 *
 * Strings: DeviceIds are stored in the canonical form of
 * easq_deviceid_norm() (upper-case ASCII), which is also the Redis key.
 * Text the devices send is clipped to the sizes below (bytes); a clipped
 * friendly name is better than a device the core refuses to register.
 *
 * Errors: 0 or a negative CORE_REG_E* code; functions taking err/errlen
 * also write a sentence for a person.
 */
#ifndef EG_CORE_REG_H
#define EG_CORE_REG_H

#include "policy/compliance.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORE_REG_SCHEMA 15 /* the newest schema this binary knows */

/* core/'s error vocabulary (docs/architecture.md, "Errors"): an enum per
 * module, each in a range of its own so that a code passed on through the
 * engine still names its module: registry -1..-9, push -10..-19, auth
 * -20..-29. */
enum core_reg_err {
    CORE_REG_OK = 0,
    CORE_REG_EDB = -1,       /* SQLite failed (I/O, corruption, busy beyond timeout) */
    CORE_REG_ENOTFOUND = -2, /* no such device / user */
    CORE_REG_EINVAL = -3,    /* bad argument, e.g. a DeviceId that is not letters and digits */
    CORE_REG_ENEWER = -4,    /* the database was written by a newer easgate */
    CORE_REG_ENOMEM = -5,
    CORE_REG_EPROTO = -6, /* the device's ActiveSync version lacks it (account-only wipe < 16.1) */
};

#define CORE_DEVID_MAX 32 /* MS-ASHTTP: 1*32 letters and digits */
#define CORE_USER_MAX 256
#define CORE_SHORT_MAX 64  /* DeviceType, OS family, OS version, IMEI, phone number */
#define CORE_NAME_MAX 128  /* model, friendly name */
#define CORE_AGENT_MAX 256 /* user agent */
#define CORE_REASON_MAX 64
#define CORE_EASVER_MAX 16 /* MS-ASProtocolVersion as sent: "16.1" */

struct core_device {
    char device_id[CORE_DEVID_MAX + 1]; /* canonical */
    char device_type[CORE_SHORT_MAX];
    char model[CORE_NAME_MAX];
    /* The OS from an authenticated source: a check-in with the device's
     * token or certificate, or an admin (import). */
    char os[CORE_SHORT_MAX];         /* family: "iOS", "Android" */
    char os_version[CORE_SHORT_MAX]; /* "16.1.2" */
    /* The OS as the phone reported it in ActiveSync DeviceInformation (any
     * user with valid credentials can write this; schema 9). */
    char eas_os[CORE_SHORT_MAX];
    char eas_os_version[CORE_SHORT_MAX];
    char imei[CORE_SHORT_MAX];
    char friendly_name[CORE_NAME_MAX];
    char phone_number[CORE_SHORT_MAX];
    char user_agent[CORE_AGENT_MAX];
    char user[CORE_USER_MAX]; /* the bound user, "" if none */
    int64_t first_seen_ms, last_seen_ms;
    int64_t last_checkin_ms; /* 0 = never */
    bool managed;
    enum compliance_tri passcode, encrypted, jailbroken;
    char agent_version[CORE_SHORT_MAX];
    int64_t wipe_acked_ms; /* 0 = no wipe acknowledged */
    /* What the core decided and pushed. */
    enum compliance_state state;
    char reason[CORE_REASON_MAX];
    int64_t version; /* bumped on every change of state or reason (global sequence) */
    int64_t updated_ms;
    int64_t non_compliant_since_ms;
    int64_t next_eval_ms; /* a time-based rule may change the answer then; 0 = never */
    enum compliance_override override;
    /* The server role (docs/server-role.md). */
    bool wipe_account;                 /* the wipe ordered is account-only */
    char eas_version[CORE_EASVER_MAX]; /* ActiveSync version last seen, "" if never */
    char last_client[CORE_SHORT_MAX];  /* client address of the newest sighting (schema 12) */
    /* The enrollment id of the unrevoked portal certificate bound to it, ""
     * if none (schema 15: enroll_certs.enrollment) */
    char cert_enrollment[32];
    int64_t pk_epoch;       /* mixed into its policy keys; bumped by reprovision */
    uint32_t policy_key;    /* final key a proxy last issued, 0 = none seen */
    int64_t provisioned_ms; /* when, 0 = never */
    /* Blocked by a proxy's autoblock report until then (schema 11); 0 =
     * none. The reason is "autoblock:RULE". */
    int64_t autoblock_until_ms;
    char autoblock_reason[CORE_REASON_MAX];
};

/*
 * What a sighting or an admin may tell about a device. NULL strings and
 * negative/unknown values mean "leave as stored". Used by upsert.
 */
struct core_devinfo {
    const char *device_type, *model, *imei, *friendly_name, *phone_number;
    const char *os, *os_version;         /* authenticated: an admin's import */
    const char *eas_os, *eas_os_version; /* reported: DeviceInformation of a sighting */
    const char *user_agent;
    const char *user;        /* bind to this user if the device has none yet */
    const char *eas_version; /* MS-ASProtocolVersion of the request ("16.1") */
    const char *client_addr; /* the address the proxy saw it from; newest wins */
};

/* What a device reports when it checks in (POST /api/v1/checkin). */
struct core_checkin {
    const char *os, *os_version, *agent_version; /* NULL = unchanged */
    enum compliance_tri passcode, encrypted, jailbroken;
};

struct core_reg;

/* Open (creating if needed) and migrate. *out is closed with core_reg_close. */
int core_reg_open(const char *path, struct core_reg **out, char *err, size_t errlen);
void core_reg_close(struct core_reg *reg);

/* The schema version the open database is at (CORE_REG_SCHEMA after open). */
int core_reg_schema_version(struct core_reg *reg);

/* The SQLite handle, for modules that keep their own tables in the registry
 * (core/auth.c). Borrowed; same thread rules as reg. */
struct sqlite3;
struct sqlite3 *core_reg_sqlite(struct core_reg *reg);

/*
 * Checkpoints (moving WAL pages into the file). SQLite runs one in the
 * committing connection whenever the WAL passes 1000 pages; the core's
 * writer turns that off (pages 0) and runs PASSIVE checkpoints from a
 * connection of its own, so no commit waits for one. core_reg_checkpoint:
 * *wal_pages in the WAL, *done_pages of them now in the file.
 */
int core_reg_autocheckpoint(struct core_reg *reg, int pages);
int core_reg_checkpoint(struct core_reg *reg, int *wal_pages, int *done_pages);
int core_reg_page_size(struct core_reg *reg);
/* Refuse every write on this connection from now on (a reader's guard). */
int core_reg_query_only(struct core_reg *reg);

/*
 * A flat stretch inside an open transaction (core_reg_begin): the nested
 * transactions and savepoints begun in it make no SAVEPOINT of their own,
 * each of which costs SQLite a sub-journal of every page it touches (a
 * third of a bulk import's time). For work that is kept whole or dropped
 * whole, as an import batch: nothing inside can be undone on its own, so a
 * failure or a rollback inside only marks the stretch broken, and
 * core_reg_flat_end says so (true): the caller must then roll back the
 * transaction it opened before the stretch. Nests; not for work that
 * carries on after an inner failure.
 */
void core_reg_flat_begin(struct core_reg *reg);
bool core_reg_flat_end(struct core_reg *reg);

/* Group writes into one transaction (0 or CORE_REG_EDB). Calls nest: an
 * inner begin/commit is a savepoint inside the outer transaction. */
int core_reg_begin(struct core_reg *reg);
int core_reg_commit(struct core_reg *reg);
int core_reg_rollback(struct core_reg *reg);

/* Canonical DeviceId into out[CORE_DEVID_MAX + 1]; CORE_REG_EINVAL if invalid. */
int core_reg_devid(const char *in, char *out);

int core_reg_device_get(struct core_reg *reg, const char *device_id, struct core_device *out);

/* v as the registry stores a text column of max bytes (clipped without
 * splitting a UTF-8 sequence, control characters as '?') into out[max];
 * "" for NULL. */
void core_reg_text_as_stored(char *out, const char *v, size_t max);

/*
 * The row core_reg_device_seen(info, now_ms) makes for a device the
 * registry does not hold, as core_reg_device_get would read it back (the
 * texts clipped and cleaned as stored, the schema's defaults, a portal
 * certificate already bound to the DeviceId), into *d: for a caller that
 * completes and evaluates it before it is written whole by
 * core_reg_devices_add (a bulk import: one INSERT instead of an INSERT and
 * the UPDATEs that would follow). 0 or a registry error.
 */
int core_reg_device_blank(struct core_reg *reg, const char *device_id,
                          const struct core_devinfo *info, int64_t now_ms, struct core_device *d);
/*
 * Insert ds[0..n) (from core_reg_device_blank; the caller may have set
 * managed, user, override and the state columns), in that order, with
 * their times and their users; n at most CORE_REG_ADD_MAX. The other
 * columns take the schema's defaults, as in the blank.
 */
#define CORE_REG_ADD_MAX 1000
int core_reg_devices_add(struct core_reg *reg, const struct core_device *ds, size_t n);

/*
 * Record a device seen at now_ms: create it (unmanaged, state as given by
 * the caller's later evaluation) if it is new, otherwise merge the non-NULL
 * fields of info and move last_seen forward (never back: replays of old
 * sightings are harmless). *created (may be NULL) says which.
 */
int core_reg_device_seen(struct core_reg *reg, const char *device_id,
                         const struct core_devinfo *info, int64_t now_ms, bool *created);

/* Store a check-in: facts merged, last_checkin = now_ms. ENOTFOUND if unknown. */
int core_reg_checkin(struct core_reg *reg, const char *device_id, const struct core_checkin *c,
                     int64_t now_ms);

/*
 * The engine's path (core/eng.c), which keeps the times apart: d is the
 * device as just read. Facts that differ from d are written (*wrote says
 * whether anything was); the times are not touched. A sighting's
 * eas_version counts only if when_ms is not older than d's last seen.
 */
bool core_reg_devinfo_differs(const struct core_device *d, const struct core_devinfo *in,
                              int64_t when_ms);
int core_reg_device_merge(struct core_reg *reg, const struct core_device *d,
                          const struct core_devinfo *info, int64_t when_ms, bool *wrote);
bool core_reg_checkin_differs(const struct core_device *d, const struct core_checkin *c);
int core_reg_checkin_facts(struct core_reg *reg, const struct core_device *d,
                           const struct core_checkin *c, bool *wrote);
/* Move last seen and last check-in forward (never back); 0 = leave. A
 * device that does not exist (deleted meanwhile) is not an error. */
int core_reg_seen_times(struct core_reg *reg, const char *device_id, int64_t last_seen_ms,
                        int64_t last_checkin_ms);
/* 1 if the user is registered, 0 if not, negative on error. */
int core_reg_user_exists(struct core_reg *reg, const char *user);
/* Register a user: 1 created, 0 known already, negative on error. */
int core_reg_user_add(struct core_reg *reg, const char *user, int64_t now_ms);

int core_reg_set_managed(struct core_reg *reg, const char *device_id, bool managed,
                         const char *user);
int core_reg_set_override(struct core_reg *reg, const char *device_id,
                          enum compliance_override ovr);
int core_reg_wipe_acked(struct core_reg *reg, const char *device_id, int64_t now_ms);

/* What binding a portal certificate to a device found (core_reg_cert_bind). */
enum core_cert_bind {
    CORE_CERT_BOUND,       /* bound now */
    CORE_CERT_ALREADY,     /* already bound to this device */
    CORE_CERT_OTHER,       /* bound to another device (in bound) */
    CORE_CERT_DEVICE_USED, /* the device is bound to another portal certificate */
    CORE_CERT_UNKNOWN,     /* no unrevoked certificate has this enrollment id */
};
/*
 * Bind the unrevoked portal certificate naming enrollment to device_id, if
 * it is bound to none and the device to no other: enroll_certs.device_id
 * and bound_ms. user gets the certificate's user, bound the device it is
 * bound to (both CORE_DEVID_MAX + 1 / 256 bytes). In the caller's
 * transaction. 0 with *out, or CORE_REG_EDB.
 */
int core_reg_cert_bind(struct core_reg *reg, const char *enrollment, const char *device_id,
                       int64_t now_ms, enum core_cert_bind *out, char user[256],
                       char bound[CORE_DEVID_MAX + 1]);
/*
 * Call cb for every unrevoked portal certificate bound to a device
 * (enrollment, user, DeviceId, bound_ms), in enrollment order; a non-zero
 * return from cb stops the walk and is returned. 0 or CORE_REG_EDB.
 */
int core_reg_binding_foreach(struct core_reg *reg,
                             int (*cb)(const char *enrollment, const char *user,
                                       const char *device_id, int64_t bound_ms, void *arg),
                             void *arg);
/* A device certificate of the enrollment role (enroll_certs), as the
 * console shows it beside the device. */
#define CORE_CERT_PEM_MAX 8192
struct core_cert {
    char serial[64]; /* hex, upper-case */
    char device_id[CORE_DEVID_MAX + 1];
    char user[CORE_USER_MAX];
    char enrollment[32]; /* the portal's enrollment id, "" for a CSR enrollment */
    int64_t not_before_ms, not_after_ms, issued_ms;
    int64_t bound_ms;   /* when the portal certificate was bound to the device, 0 = not so */
    int64_t revoked_ms; /* 0 = not revoked */
    char revoke_reason[64];
    char pem[CORE_CERT_PEM_MAX]; /* "" if longer */
};
/* The certificates issued to or bound to device_id (canonical), newest first. */
int core_reg_cert_list(struct core_reg *reg, const char *device_id, struct core_cert *out,
                       size_t max, size_t *n);
/*
 * Revoke the unrevoked certificate serial of device_id (revoked_ms = now_ms,
 * with reason): ENOTFOUND when the device has no such certificate, or it is
 * revoked already. The CRL is the enrollment role's to rewrite (it holds
 * the CA key): enroll/ reads the revocation from the registry.
 */
int core_reg_cert_revoke(struct core_reg *reg, const char *device_id, const char *serial,
                         const char *reason, int64_t now_ms);

/* Which wipe a wipe override means: account-only (AccountOnlyRemoteWipe) or full. */
int core_reg_set_wipe_kind(struct core_reg *reg, const char *device_id, bool account);
/*
 * Block the device until until_ms with reason ("autoblock:RULE"); only
 * moves the time later, so a replayed report changes nothing (*moved
 * false). until_ms 0 clears it (an admin's allow or reset), whatever it was.
 */
int core_reg_autoblock(struct core_reg *reg, const char *device_id, int64_t until_ms,
                       const char *reason, bool *moved);
/* A proxy issued the final policy key at when_ms (an older sighting changes nothing). */
int core_reg_provisioned(struct core_reg *reg, const char *device_id, uint32_t key,
                         int64_t when_ms);
/*
 * Move the device to the next version of the global sequence (updated =
 * now_ms) without a change of state, so that a push of fields beside the
 * state (wipe_kind, pk_epoch) is announced; reprovision also bumps pk_epoch.
 * *version (may be NULL) receives the new version.
 */
int core_reg_touch(struct core_reg *reg, const char *device_id, bool reprovision, int64_t now_ms,
                   int64_t *version);

/*
 * Store an evaluation. When state or reason differ from what is stored, the
 * version is bumped to the next value of the global sequence, updated =
 * now_ms and *changed = true; non_compliant_since and next_eval (when a
 * time-based rule may change the answer; 0 = never) are stored either way.
 * *version (may be NULL) receives the device's version after the call.
 */
int core_reg_set_state(struct core_reg *reg, const char *device_id, enum compliance_state state,
                       const char *reason, int64_t non_compliant_since_ms, int64_t next_eval_ms,
                       int64_t now_ms, bool *changed, int64_t *version);
/* The same, compared with d as just read rather than read again. */
int core_reg_state_store(struct core_reg *reg, const struct core_device *d,
                         enum compliance_state state, const char *reason,
                         int64_t non_compliant_since_ms, int64_t next_eval_ms, int64_t now_ms,
                         bool *changed, int64_t *version);

/* Small named integers the core keeps with the registry (e.g. the rules'
 * fingerprint). get: ENOTFOUND if never set. */
int core_reg_meta_get(struct core_reg *reg, const char *key, int64_t *value);
int core_reg_meta_set(struct core_reg *reg, const char *key, int64_t value);

/* Take the next value of the global version sequence (e.g. to announce a deletion). */
int core_reg_next_version(struct core_reg *reg, int64_t *version);
/*
 * Inside a transaction the caller keeps whole or drops whole (an import
 * batch): the version sequence is read once and counted in memory by
 * every core_reg_next_version (and every state write) until
 * core_reg_seq_release writes it back, before the commit. The same
 * versions result. 0 or a registry error.
 */
int core_reg_seq_hold(struct core_reg *reg);
int core_reg_seq_release(struct core_reg *reg);

/* 1 if the canonical DeviceId is registered, 0 if not, negative on error. */
int core_reg_device_exists(struct core_reg *reg, const char *device_id);

/* Up to max DeviceIds whose next evaluation is due (0 < next_eval <= now_ms), soonest first. */
int core_reg_due(struct core_reg *reg, int64_t now_ms, char (*ids)[CORE_DEVID_MAX + 1], size_t max,
                 size_t *n);

/* Delete the device (its admin actions stay; the audit log is never touched). */
int core_reg_device_delete(struct core_reg *reg, const char *device_id);

/* 1-based rank of the device among its user's managed devices (and itself) by
 * (first seen, DeviceId); 0 if it has no user. Unmanaged devices never take a
 * slot: they are blocked (or let in) by unmanaged_devices, not by the limit. */
int core_reg_user_rank(struct core_reg *reg, const char *device_id, uint32_t *rank);

/* The compliance filter: what the device's checks say. */
enum core_compliance_filter {
    CORE_COMPLIANCE_COMPLIANT, /* reason "compliant": every check passes */
    CORE_COMPLIANCE_FAILING,   /* a check fails (non_compliant_since set): in grace or blocked */
    CORE_COMPLIANCE_GRACE,     /* a check fails and the device still has access */
    CORE_COMPLIANCE_UNCHECKED, /* neither: unmanaged, an override, a rule or an autoblock decided */
};

/* The orders of the API's pages: each key is served by an index ordered
 * by (key, DeviceId), so a page is a walk from its cursor. last_seen sorts
 * by the hour of last seen (the registry indexes the hour, not the time:
 * reg.c, migration 7), then DeviceId. */
enum core_dev_sort {
    CORE_SORT_DEVICE_ID,
    CORE_SORT_USER,
    CORE_SORT_LAST_SEEN,
    CORE_SORT_STATE,
    CORE_SORT_TYPE,
    CORE_SORT_OS,
};
/* "device_id", "user", "last_seen", "state", "type", "os" -> 0, else -1. */
int core_dev_sort_parse(const char *s, enum core_dev_sort *out);

/* What the free-text search q looks at (a prefix of each, case-insensitive). */
enum {
    CORE_Q_DEVICE_ID = 1 << 0,
    CORE_Q_USER = 1 << 1,
    CORE_Q_MODEL = 1 << 2,
    CORE_Q_PHONE = 1 << 3,
    CORE_Q_ALL = 0xf
};
#define CORE_Q_MAX 128 /* longest search text, bytes */

/* Filters for listing; zero/NULL fields do not filter. */
struct core_dev_filter {
    const char *user;        /* exact, case-insensitive */
    const char *device_type; /* exact, case-insensitive */
    const char *os;          /* OS family, exact, case-insensitive */
    int state;               /* -1 = any, else enum compliance_state */
    int managed;             /* -1 = any, 0, 1 */
    int compliance;          /* -1 = any, else enum core_compliance_filter */
    int64_t seen_since_ms;   /* last_seen >= this */
    int64_t seen_before_ms;  /* last_seen < this (0 = no bound) */
    const char *after;       /* keyset paging: DeviceIds strictly after this one */
    /* Free text: devices whose DeviceId, user, model or phone number (the
     * fields of q_fields, 0 = all) start with it, case-insensitively. */
    const char *q;
    unsigned q_fields;
    /* Page order (core_reg_device_page only; the list is in DeviceId order). */
    enum core_dev_sort sort;
    bool desc;
    /* With a sort other than device_id and after set: the sort key of the
     * cursor's device (the text of next_key; last_seen: its hour). */
    const char *after_key;
};
void core_dev_filter_init(struct core_dev_filter *f);

/* Up to max devices matching f, in DeviceId order, into out; *n says how
 * many. Exact: with filters that are rare together it may walk much of the
 * registry (the maintenance commands' listing, the engine's own loops). */
int core_reg_device_list(struct core_reg *reg, const struct core_dev_filter *f,
                         struct core_device *out, size_t max, size_t *n);

/*
 * One page for the API, in bounded time whatever the filters (reg.c says
 * how): up to max devices after f->after, and in next the cursor of the
 * following page, "" when this is the last. A page may hold fewer than max
 * devices, even none, and still have a next: only an empty next ends.
 */
int core_reg_device_page(struct core_reg *reg, const struct core_dev_filter *f,
                         struct core_device *out, size_t max, size_t *n,
                         char next[CORE_DEVID_MAX + 1]);
/* The same in f->sort order: the cursor is next (a DeviceId) and next_key
 * (its sort key as text, "" for device_id), both "" on the last page.
 * CORE_REG_EINVAL for a sorted cursor without its key. */
#define CORE_SORT_KEY_MAX CORE_USER_MAX
int core_reg_device_page_sorted(struct core_reg *reg, const struct core_dev_filter *f,
                                struct core_device *out, size_t max, size_t *n,
                                char next[CORE_DEVID_MAX + 1], char next_key[CORE_SORT_KEY_MAX]);

/* For tests: every prepared statement of the registry with its plan. */
int core_reg_statement_plans(struct core_reg *reg,
                             int (*cb)(const char *sql, const char *plan, void *arg), void *arg);

/* For tests: every statement core_reg_device_page may run for f, with its
 * EXPLAIN QUERY PLAN (lines joined by '\n'); cb returning non-zero stops. */
int core_reg_device_plans(struct core_reg *reg, const struct core_dev_filter *f,
                          int (*cb)(const char *sql, const char *plan, void *arg), void *arg);

/* Every device, in DeviceId order; cb returning non-zero stops (and is returned). */
int core_reg_device_foreach(struct core_reg *reg, int (*cb)(const struct core_device *d, void *arg),
                            void *arg);

int64_t core_reg_device_count(struct core_reg *reg);
/* Devices per state, indexed by enum compliance_state (allow .. wipe). */
#define CORE_STATE_COUNT (COMPLIANCE_WIPE + 1)

/* The dashboard's device counts, from the counters the database keeps
 * (schema 14): a few rows read at any registry size. compliant, failing
 * and grace count what the list's compliance filters of the same names
 * list; unchecked what none of compliant and failing does (unmanaged, an
 * override, a rule or an autoblock decided). */
struct core_reg_counts {
    int64_t states[CORE_STATE_COUNT];
    int64_t devices, compliant, failing, grace, unchecked;
};
int core_reg_counts(struct core_reg *reg, struct core_reg_counts *out);

/* What the dashboard charts, counted per hour by the database (schema 14):
 * devices registered (by their first seen), certificates issued, and
 * changes of a device's state to block (by the time of the change). */
enum core_activity_kind {
    CORE_ACTIVITY_REGISTERED,
    CORE_ACTIVITY_CERTIFIED,
    CORE_ACTIVITY_BLOCKED,
    CORE_ACTIVITY_KINDS
};
#define CORE_ACTIVITY_MAX_HOURS (32 * 24)
const char *core_activity_name(enum core_activity_kind k);
/* out[h][kind] for the hours from_hour .. from_hour + hours - 1 (hours
 * since the epoch, at most CORE_ACTIVITY_MAX_HOURS): one range read of the
 * activity table's primary key. */
int core_reg_activity(struct core_reg *reg, int64_t from_hour, size_t hours,
                      int64_t (*out)[CORE_ACTIVITY_KINDS]);

/* Every device in storage order, only what the Redis contract holds filled
 * in (device_id, user, state, reason, version, updated, the server role's
 * fields): a resync's read. The same callback rules as foreach. */
int core_reg_state_foreach(struct core_reg *reg, int (*cb)(const struct core_device *d, void *arg),
                           void *arg);

/* Users: created when first bound; list in name order with keyset paging. */
struct core_user {
    char name[CORE_USER_MAX];
    int64_t created_ms;
    int64_t devices;
};
int core_reg_user_list(struct core_reg *reg, const char *after, struct core_user *out, size_t max,
                       size_t *n);

/* Admin actions on a device: the history shown with it. */
struct core_action {
    int64_t id, at_ms;
    char device_id[CORE_DEVID_MAX + 1];
    char action[32]; /* allow, block, quarantine, wipe, reset, delete */
    char actor[CORE_USER_MAX];
    char note[256];
};
int core_reg_action_add(struct core_reg *reg, const char *device_id, const char *action,
                        const char *actor, const char *note, int64_t now_ms);
/* Newest first, ids below before_id (0 = from the newest). */
int core_reg_action_list(struct core_reg *reg, const char *device_id, int64_t before_id,
                         struct core_action *out, size_t max, size_t *n);

/* The audit log: append-only (the database refuses UPDATE and DELETE on it). */
struct core_audit {
    int64_t id, at_ms;
    char actor[CORE_USER_MAX];
    char address[64]; /* client address, "" for the CLI */
    char action[64];
    char target[CORE_USER_MAX];
    char detail[512];
};
int core_reg_audit_add(struct core_reg *reg, const char *actor, const char *address,
                       const char *action, const char *target, const char *detail, int64_t now_ms);
/* The same, unless a row with every one of these values is there already
 * (a replayed report, dated by its sender): then nothing, *added false. */
int core_reg_audit_add_once(struct core_reg *reg, const char *actor, const char *address,
                            const char *action, const char *target, const char *detail,
                            int64_t at_ms, bool *added);
/* Newest first, ids below before_id (0 = from the newest). */
int core_reg_audit_list(struct core_reg *reg, int64_t before_id, struct core_audit *out, size_t max,
                        size_t *n);
/* The same for one target (a DeviceId, "token:7", an account), or all when NULL. */
int core_reg_audit_find(struct core_reg *reg, const char *target, int64_t before_id,
                        struct core_audit *out, size_t max, size_t *n);

/*
 * Devices seen but never accepted (schema 8): a sighting the proxy answered
 * itself, with nobody having checked a credential, of a device the registry
 * does not hold. They live here, never in devices, so made-up DeviceIds
 * cannot grow the registry or Redis: at most max rows, each dropped ttl
 * after its last sighting, the oldest first when full. Approving one (the
 * admin API) creates its registry row and removes it here; so does its
 * first authenticated sighting.
 */
struct core_pending {
    const char *user, *device_type, *user_agent, *client_addr; /* NULL = keep */
};

struct core_pending_row {
    char device_id[CORE_DEVID_MAX + 1];
    char user[CORE_USER_MAX];
    char device_type[CORE_SHORT_MAX];
    char user_agent[CORE_AGENT_MAX];
    char client_addr[CORE_SHORT_MAX];
    int64_t first_ms, last_ms, count;
    uint32_t policy_key;    /* the final key the server role issued it, 0 = none */
    int64_t provisioned_ms; /* when, 0 = never */
};

/* Note a sighting at when_ms (expire those older than ttl_ms at now_ms,
 * keep the newest max). */
int core_reg_pending_note(struct core_reg *reg, const char *device_id, const struct core_pending *p,
                          int64_t when_ms, size_t max, int64_t ttl_ms, int64_t now_ms);
int core_reg_pending_get(struct core_reg *reg, const char *device_id, struct core_pending_row *out);
/* Up to max rows after DeviceId after ("" = from the start), in DeviceId order. */
int core_reg_pending_list(struct core_reg *reg, const char *after, struct core_pending_row *out,
                          size_t max, size_t *n);
int core_reg_pending_delete(struct core_reg *reg, const char *device_id);
/* Keep the final policy key a proxy issued a pending device (an older
 * sighting never overwrites a newer one); it becomes the device's when it
 * is registered. */
int core_reg_pending_provisioned(struct core_reg *reg, const char *device_id, uint32_t key,
                                 int64_t when_ms);
int64_t core_reg_pending_count(struct core_reg *reg);

#endif
