/*
 * rstore_contract: the Redis state contract between the core and the
 * proxies, written once. docs/state-contract.md is its prose; this is every
 * name in it: the device hash's key and fields, the invalidation channel, the
 * sightings stream with its entry fields and the cores' consumer group, the
 * device states, the DeviceId rule, and the error codes every connectors/
 * function returns.
 *
 * Why one header: the proxy reads what the core writes. A name spelt in two
 * places can drift, and a proxy that looks for a field the core no longer
 * writes decides on a default without any compiler noticing. The proxy's
 * store (rstore.h), the core's writer (rstore_push.h) and consumer
 * (rstore_consume.h) and the tests all take the names from here.
 */
#ifndef EG_RSTORE_CONTRACT_H
#define EG_RSTORE_CONTRACT_H

#include <errno.h>
#include <stddef.h>

#include "eas/easq.h"

/* ---- Errors ------------------------------------------------------------------
 *
 * Every connectors/ function returns 0 (or a documented positive outcome, such
 * as RSTORE_PENDING) or one of these. They are negative errno values, as in
 * libuv, so strerror(-rc) reads; the names say what each means here. A caller
 * with codes of its own (the core's registry) translates at its boundary
 * rather than sharing a number range.
 */
enum rstore_err {
    RSTORE_EINVAL = -EINVAL,     /* bad argument: a DeviceId outside the rule, a malformed
                                    sighting */
    RSTORE_ENOMEM = -ENOMEM,     /* out of memory */
    RSTORE_ENOTCONN = -ENOTCONN, /* Redis is away right now: nothing was sent */
    RSTORE_EREDIS = -EIO,        /* the connection failed or timed out, or Redis refused a
                                    command; the handle's error text says which */
    RSTORE_ESOURCE = -ECANCELED, /* the caller's callback (the core's registry) failed;
                                    the handle's error text has its code */
    RSTORE_ENOSPC = -ENOSPC,     /* the caller's buffer is too small */
};

/* ---- Names -------------------------------------------------------------------- */

#define RSTORE_KEY_PREFIX "easgate:dev:"  /* + canonical DeviceId: one hash per device */
#define RSTORE_CHANNEL "easgate:changed"  /* PUBLISH "<DeviceId> <version>" on a change */
#define RSTORE_STREAM "easgate:sightings" /* proxies XADD what they saw */
#define RSTORE_GROUP "core"               /* the cores' consumer group on RSTORE_STREAM */
#define RSTORE_HB_PREFIX "easgate:hb:"    /* + a random tail: a proxy worker's own heartbeat */
/* + "host/pid/worker": a proxy worker's presence, a JSON string that
 * expires unless renewed (rstore_opts.beat; the console's dashboard reads
 * them, rstore_presence.h) */
#define RSTORE_PROXY_PREFIX "easgate:proxy:"
/* The presence keys by their last beat (a sorted set, score = Unix ms): so
 * that the core finds them without a SCAN over every device's key; each
 * beat drops the members older than a TTL */
#define RSTORE_PROXY_SET "easgate:proxies"
#define RSTORE_PROXY_BEAT_MS 5000 /* renewed this often */
#define RSTORE_PROXY_TTL_BEATS 3  /* and gone this many beats after the last */
/* + an enrollment id: the portal certificate's binding (docs/state-contract.md,
 * "Binding on first use"). Announced on RSTORE_CHANNEL as "!<id> <version>";
 * the proxy's cache keys it as RSTORE_ENR_MARK + id, apart from DeviceIds. */
#define RSTORE_ENR_PREFIX "easgate:enr:"
#define RSTORE_ENR_MARK '!'
#define RSTORE_ENRID_MAX 24 /* an enrollment id: letters and digits */

/* ---- The device hash ----------------------------------------------------------- */

#define RSTORE_F_STATE "state"             /* rstore_state_name() */
#define RSTORE_F_USER "user"               /* bound user, "" = any */
#define RSTORE_F_REASON "reason"           /* for logs */
#define RSTORE_F_VERSION "version"         /* decimal, monotonic per device */
#define RSTORE_F_UPDATED "updated"         /* unix ms of the write */
#define RSTORE_F_WIPE_KIND "wipe_kind"     /* RSTORE_WIPE_FULL or RSTORE_WIPE_ACCOUNT */
#define RSTORE_F_PK_EPOCH "pk_epoch"       /* decimal provisioning epoch */
#define RSTORE_F_POLICY_KEY "policy_key"   /* the last final key issued, for people */
#define RSTORE_F_PROVISIONED "provisioned" /* unix ms of that issue, for people */
/* The enrollment id of the portal certificate the device is bound to, ""
 * or absent = none: then only a certificate naming that id may be used with
 * the device. */
#define RSTORE_F_ENROLLMENT "enrollment"
/* The enrollment hash: state (always allow), user, version, updated, and
 * the DeviceId bound to the certificate ("" or absent = none yet). */
#define RSTORE_F_DEVICE "device"

#define RSTORE_WIPE_FULL "full"
#define RSTORE_WIPE_ACCOUNT "account"

/* Longer user or reason values in a hash are refused: the entry fails closed. */
#define RSTORE_USER_MAX 320
#define RSTORE_REASON_MAX 256

enum rstore_state { RSTORE_ALLOW, RSTORE_BLOCK, RSTORE_QUARANTINE, RSTORE_WIPE };

/* "allow", "block", "quarantine", "wipe" ("?" for anything else). */
const char *rstore_state_name(enum rstore_state s);
/* The same names, compared without regard to case: 0 or RSTORE_EINVAL. */
int rstore_state_parse(const char *s, size_t len, enum rstore_state *out);

/* ---- Sightings (entries of RSTORE_STREAM) -------------------------------------- */

enum rstore_sighting_kind {
    RSTORE_SIGHT_UNKNOWN,       /* "unknown-device": a device without a hash */
    RSTORE_SIGHT_DEVINFO,       /* "device-info": Provision/Settings DeviceInformation */
    RSTORE_SIGHT_WIPE_ACK,      /* "wipe-ack": never suppressed */
    RSTORE_SIGHT_PROVISIONED,   /* "provisioned": final policy key issued; never suppressed */
    RSTORE_SIGHT_SEEN,          /* "seen": a device with a hash made a request (last seen,
                                   protocol version, user agent, client address) */
    RSTORE_SIGHT_AUTOBLOCK,     /* "autoblock": the device crossed an autoblock threshold */
    RSTORE_SIGHT_AUTH_BLOCK,    /* "auth-block": failed logins blocked an address or a user */
    RSTORE_SIGHT_CERT_BIND,     /* "cert-bind": a portal certificate not yet bound was used
                                   with this device; never suppressed */
    RSTORE_SIGHT_CERT_MISMATCH, /* "cert-mismatch": a bound portal certificate was presented
                                   with another device, or the device with another one */
    RSTORE_SIGHT_UPSTREAM,      /* "upstream": a worker lost every url of an instance's mail
                                   server, or reached one again; never suppressed */
};
#define RSTORE_KIND_UNKNOWN "unknown-device"
#define RSTORE_KIND_DEVINFO "device-info"
#define RSTORE_KIND_WIPE_ACK "wipe-ack"
#define RSTORE_KIND_SEEN "seen"
/* A "seen" sighting of one device is sent at most this often (or every
 * sighting_interval, if shorter): last seen to the minute. */
#define RSTORE_SEEN_INTERVAL_MS 60000
#define RSTORE_KIND_PROVISIONED "provisioned"
#define RSTORE_KIND_AUTOBLOCK "autoblock"
#define RSTORE_KIND_AUTH_BLOCK "auth-block"
#define RSTORE_KIND_CERT_BIND "cert-bind"
#define RSTORE_KIND_CERT_MISMATCH "cert-mismatch"
#define RSTORE_KIND_UPSTREAM "upstream"
/* An upstream report names no device; its device field is this word. */
#define RSTORE_UPSTREAM_DEVICE "upstream"
/* The name of a kind, NULL if it is none. */
const char *rstore_sighting_kind_name(enum rstore_sighting_kind k);

/* Every entry */
#define RSTORE_SF_KIND "kind"
#define RSTORE_SF_DEVICE "device" /* canonical DeviceId */
#define RSTORE_SF_INSTANCE "instance"
#define RSTORE_SF_TIME "time" /* unix ms */
/* When the request carried them */
#define RSTORE_SF_USER "user"
#define RSTORE_SF_DEVICE_TYPE "device_type"
#define RSTORE_SF_USER_AGENT "user_agent"
#define RSTORE_SF_PROTOCOL_VERSION "protocol_version"
#define RSTORE_SF_CLIENT_ADDR "client_addr"
/* "exchange" when Exchange answered the request 2xx (it authenticated the
 * user), absent when the proxy answered it itself (docs/security.md) */
#define RSTORE_SF_AUTH "auth"
#define RSTORE_AUTH_EXCHANGE "exchange"
/* device-info (MS-ASCMD Settings DeviceInformation) */
#define RSTORE_SF_MODEL "model"
#define RSTORE_SF_IMEI "imei"
#define RSTORE_SF_FRIENDLY_NAME "friendly_name"
#define RSTORE_SF_OS "os"
#define RSTORE_SF_OS_LANGUAGE "os_language"
#define RSTORE_SF_PHONE_NUMBER "phone_number"
#define RSTORE_SF_MOBILE_OPERATOR "mobile_operator"
/* wipe-ack */
#define RSTORE_SF_STATUS "status"
/* provisioned */
#define RSTORE_SF_POLICY_KEY "policy_key"
#define RSTORE_SF_FINGERPRINT "fingerprint"
#define RSTORE_SF_PK_EPOCH "pk_epoch"
/* autoblock: Exchange's BehaviorType name, the incidents counted, the
 * window and the block the policy asks for (ms) */
#define RSTORE_SF_RULE "rule"
#define RSTORE_SF_COUNT "count"
#define RSTORE_SF_WINDOW "window_ms"
#define RSTORE_SF_BLOCK "block_ms"
/* autoblock: "quarantine" when the policy asks for one instead of a block
 * (absent: block, as every proxy before it meant) */
#define RSTORE_SF_ACTION "action"
/* auth-block: what was blocked ("client", "user", "known-device"), the
 * failures that did it and the repeat (1 first); block_ms as above */
#define RSTORE_SF_SCOPE "scope"
#define RSTORE_SF_STRIKE "strike"
/* cert-bind, cert-mismatch: the certificate's enrollment id; cert-mismatch:
 * also the DeviceId it is bound to ("bound", "" when the device is bound
 * to another certificate) */
#define RSTORE_SF_ENROLLMENT "enrollment"
#define RSTORE_SF_BOUND "bound"
/* upstream: the proxy's instance (listener) name, the url, "down" or
 * "up", and why it went down */
#define RSTORE_SF_LISTENER "listener"
#define RSTORE_SF_URL "url"
#define RSTORE_SF_UP_STATE "state"
#define RSTORE_SF_ERROR "error"
#define RSTORE_UP_DOWN "down"
#define RSTORE_UP_UP "up"

/* ---- Abuse counters (docs/state-contract.md, "Abuse counters") ---------------- */
/* A hash per wall-clock second, + the unix second: field "d:<DeviceId>",
 * "u:<user hash>" or "c:<client address>", value the requests every proxy
 * let through in that second (HINCRBY). Expires after RSTORE_BUDGET_TTL_MS. */
#define RSTORE_BUDGET_PREFIX "easgate:bud:"
#define RSTORE_BUDGET_TTL_MS 3000
/* Failed logins: + scope ":" id. n: the count in the window, b: the block
 * (its TTL is what is left of it), s: the repeats remembered. */
#define RSTORE_AUTH_COUNT_PREFIX "easgate:auth:n:"
#define RSTORE_AUTH_BLOCK_PREFIX "easgate:auth:b:"
#define RSTORE_AUTH_STRIKE_PREFIX "easgate:auth:s:"
/* Autoblock incidents: + BehaviorType ":" DeviceId, the incidents every
 * proxy counted in the rule's window (INCRBY; expires a window after the
 * first). */
#define RSTORE_AB_PREFIX "easgate:ab:"

/* ---- DeviceId ------------------------------------------------------------------ */

/* Keys, messages and entries carry the canonical DeviceId, by the protocol's
 * one rule (eas/easq.h, MS-ASHTTP device-id = 1*32(ALPHA / DIGIT)). */
#define RSTORE_DEVID_MAX EASQ_DEVICEID_MAX

/*
 * Canonical DeviceId by that rule (easq_deviceid_norm): ASCII upper case,
 * 1..RSTORE_DEVID_MAX letters and digits. Writes out[RSTORE_DEVID_MAX + 1];
 * returns the length or RSTORE_EINVAL.
 */
int rstore_devid_norm(const char *in, size_t len, char *out);

#endif
