/*
 * core_sight: what a sighting means to the registry (see sight.h); reading
 * the stream is connectors/rstore_consume.c's.
 */
#include "core/sight.h"
#include "core/ctx.h"
#include "core/metrics.h"

#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void core_sight_split_os(const char *os, char *family, size_t flen, char *version, size_t vlen)
{
    family[0] = version[0] = '\0';
    if (!os)
        return;
    while (*os == ' ')
        os++;
    size_t n = strcspn(os, " ");
    snprintf(family, flen, "%.*s", (int)n, os);
    const char *v = os + n;
    while (*v == ' ')
        v++;
    size_t m = strcspn(v, " ");
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%.*s", (int)(m < sizeof(tmp) ? m : 0), v);
    struct compliance_ver cv;
    if (compliance_ver_parse(tmp, &cv) == 0)
        snprintf(version, vlen, "%s", tmp);
}

/* Did Exchange answer the request 2xx (it authenticated the user)? Only
 * then may the sighting create or change a registry row. */
static bool authenticated(const struct rstore_entry *en)
{
    const char *a = rstore_entry_field(en, RSTORE_SF_AUTH);
    return a && strcmp(a, "exchange") == 0;
}

/* MS-ASProtocolVersion if it reads as MAJOR.MINOR, else NULL (left as stored). */
static const char *eas_version(const struct rstore_entry *en)
{
    const char *v = rstore_entry_field(en, RSTORE_SF_PROTOCOL_VERSION);
    return v && strlen(v) < CORE_EASVER_MAX && core_eas_version(v) > 0 ? v : NULL;
}

/*
 * A proxy answered the device's Provision acknowledgement with the final
 * policy key (proxy mode): register the device if it is new, then record
 * the key and when, and rewrite its hash (same version: not announced) so
 * that policy_key shows there too.
 */
static int apply_provisioned(struct core_eng *e, const struct rstore_entry *en, const char *canon,
                             int64_t when, int64_t now_ms, struct core_sight_stats *st)
{
    const char *ks = rstore_entry_field(en, RSTORE_SF_POLICY_KEY);
    char *end = NULL;
    unsigned long long key = ks ? strtoull(ks, &end, 10) : 0;
    if (!ks || !*ks || *end || key == 0 || key > UINT32_MAX) {
        eg_warn("core: sighting %s (provisioned, device %s) without a valid policy_key: ignored",
                en->id, canon);
        st->invalid++;
        return 0;
    }
    struct core_devinfo in = {
        .device_type = rstore_entry_field(en, RSTORE_SF_DEVICE_TYPE),
        .user_agent = rstore_entry_field(en, RSTORE_SF_USER_AGENT),
        .user = rstore_entry_field(en, RSTORE_SF_USER),
        .eas_version = eas_version(en),
        .client_addr = rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR),
    };
    /* The proxy answered this Provision itself: nobody checked the
     * credential. A registered device gets the key recorded, nothing else;
     * an unknown one is only noted as pending, with the key. */
    bool created = false;
    int rc = 0;
    if (authenticated(en)) {
        rc = core_eng_seen(e, canon, &in, when, &created);
    } else {
        enum core_sighted o;
        rc = core_eng_sighting(e, canon, &in, false, rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR),
                               when, now_ms, &o);
        if (rc == 0 && o == CORE_SIGHTED_PENDING) {
            /* Kept on the pending row, the device's once registered. */
            rc = core_reg_pending_provisioned(e->reg, canon, (uint32_t)key, when);
            if (rc < 0)
                return rc;
            st->pending++;
            return 0;
        }
    }
    if (rc == 0)
        rc = core_reg_provisioned(e->reg, canon, (uint32_t)key, when);
    if (rc == 0)
        rc = core_eng_push(e, canon);
    if (rc < 0)
        return rc;
    if (created)
        st->created++;
    eg_debug("core: device %s provisioned with policy key %llu (policy %s, EAS %s)", canon, key,
             rstore_entry_field(en, RSTORE_SF_FINGERPRINT)
                 ? rstore_entry_field(en, RSTORE_SF_FINGERPRINT)
                 : "?",
             in.eas_version ? in.eas_version : "?");
    st->applied++;
    return 0;
}

/* A decimal field of an entry, or -1 when it is missing or not a number. */
static long long num_field(const struct rstore_entry *en, const char *name)
{
    const char *v = rstore_entry_field(en, name);
    char *end = NULL;
    long long x = v && *v >= '0' && *v <= '9' ? strtoll(v, &end, 10) : -1;
    return x >= 0 && end && !*end ? x : -1;
}

/* The longest block an autoblock entry may ask for: the policy's own bound
 * (policy/abuse.c, abuse.autoblock.*.block), so a bad entry cannot block a
 * device for ever. */
#define SIGHT_AUTOBLOCK_MAX_MS (30 * 86400000LL)

/*
 * A proxy saw the device cross one of the policy's abuse.autoblock
 * thresholds: block it from the entry's time for block_ms. Only a device
 * the registry holds (the proxy counts requests nobody authenticated; a
 * made-up DeviceId must not become a row). The block runs from when the
 * proxy saw the crossing, so a replay reaches the same end and is a no-op.
 */
static int apply_autoblock(struct core_eng *e, const struct rstore_entry *en, const char *canon,
                           int64_t when, int64_t now_ms, struct core_sight_stats *st)
{
    const char *rule = rstore_entry_field(en, RSTORE_SF_RULE),
               *action = rstore_entry_field(en, RSTORE_SF_ACTION);
    long long block = num_field(en, RSTORE_SF_BLOCK), count = num_field(en, RSTORE_SF_COUNT),
              window = num_field(en, RSTORE_SF_WINDOW);
    size_t rl = rule ? strlen(rule) : 0;
    if (!rl || rl > 32 ||
        strspn(rule, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != rl || block <= 0 ||
        block > SIGHT_AUTOBLOCK_MAX_MS ||
        (action && strcmp(action, "block") != 0 && strcmp(action, "quarantine") != 0)) {
        eg_warn("core: sighting %s (autoblock, device %s) without a valid rule, block_ms or "
                "action: ignored",
                en->id, canon);
        st->invalid++;
        return 0;
    }
    /* The same entry must give the same end however often and whenever it
     * is applied: so not the core's clock (when is clamped to it), but the
     * proxy's time, bounded by when Redis added the entry (its id), so a
     * proxy clock ahead cannot lengthen the block. */
    long long added = strtoll(en->id, NULL, 10), t = num_field(en, RSTORE_SF_TIME);
    int64_t from = t > 0 && (added <= 0 || t < added) ? t : added > 0 ? added : when;
    const char *addr = rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR);
    char detail[160];
    bool quarantine = action && strcmp(action, "quarantine") == 0;
    snprintf(detail, sizeof(detail), "%s: %lld in %lld ms, %s for %lld ms", rule, count, window,
             quarantine ? "quarantined" : "blocked", block);
    bool applied = false;
    int rc = core_eng_autoblock(e, canon, rule, quarantine, from + block, addr ? addr : "", detail,
                                now_ms, &applied);
    if (rc == CORE_REG_ENOTFOUND) {
        eg_debug("core: autoblock (%s) of unregistered device %s: ignored", rule, canon);
        st->autoblock_unknown++;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (applied) {
        st->autoblocks++;
        eg_info("core: device %s autoblocked (%s) for %lld ms", canon, detail, block);
    }
    st->applied++;
    return 0;
}

/* Failed logins blocked an address, a user or a known device at a proxy:
 * one audit row, which the notification sender can mail to the admins. */
static int apply_auth_block(struct core_eng *e, const struct rstore_entry *en, const char *canon,
                            int64_t when, struct core_sight_stats *st)
{
    const char *scope = rstore_entry_field(en, RSTORE_SF_SCOPE),
               *user = rstore_entry_field(en, RSTORE_SF_USER),
               *addr = rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR);
    long long strike = num_field(en, RSTORE_SF_STRIKE), block = num_field(en, RSTORE_SF_BLOCK);
    char detail[320];
    snprintf(detail, sizeof(detail), "scope %.16s, user '%.128s', strike %lld, blocked for %lld ms",
             scope ? scope : "?", user ? user : "", strike, block);
    /* A replay (the core stopped before acknowledging) finds its row. */
    bool added = false;
    int rc = core_reg_audit_add_once(e->reg, "proxy", addr ? addr : "", "proxy.auth-block", canon,
                                     detail, when, &added);
    if (rc < 0)
        return rc;
    st->auth_blocks += added;
    st->applied++;
    return 0;
}

/* An enrollment id as the contract has them: 1..RSTORE_ENRID_MAX letters and digits. */
static bool enrid_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n && n <= RSTORE_ENRID_MAX && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

static int cert_mismatch_audit(struct core_eng *e, const char *canon, const char *enr,
                               const char *bound, const char *addr, int64_t when)
{
    char detail[200];
    if (bound && bound[0])
        snprintf(detail, sizeof(detail),
                 "the portal certificate of enrollment %s is bound to device %s", enr, bound);
    else
        snprintf(detail, sizeof(detail),
                 "enrollment %s: the device is bound to another portal certificate", enr);
    eg_warn("core: cert-mismatch: device %s: %s", canon, detail);
    return core_reg_audit_add(e->reg, "proxy", addr ? addr : "", "device.cert-mismatch", canon,
                              detail, when);
}

/*
 * Binding on first use (docs/enrollment.md section 7): a proxy saw a portal
 * certificate not yet bound used with this device, and Exchange accepted
 * the request. The first such device gets the certificate: the registry
 * records it (enroll_certs), the device becomes managed and bound to the
 * certificate's user, its hash carries the enrollment id, and the
 * enrollment's hash the DeviceId, so every proxy refuses any other pairing
 * from then on. A later device is a cert-mismatch in the audit log.
 */
static int apply_cert_bind(struct core_eng *e, const struct rstore_entry *en, const char *canon,
                           int64_t when, int64_t now_ms, struct core_sight_stats *st)
{
    const char *enr = rstore_entry_field(en, RSTORE_SF_ENROLLMENT),
               *addr = rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR);
    if (!enrid_ok(enr)) {
        eg_warn("core: sighting %s (cert-bind, device %s) without a valid enrollment: ignored",
                en->id, canon);
        st->invalid++;
        return 0;
    }
    if (!authenticated(en)) {
        st->unauthenticated++;
        return 0;
    }
    enum core_cert_bind o;
    char user[256], bound[CORE_DEVID_MAX + 1];
    int rc = core_reg_cert_bind(e->reg, enr, canon, when, &o, user, bound);
    if (rc < 0)
        return rc;
    switch (o) {
    case CORE_CERT_UNKNOWN:
        eg_warn("core: cert-bind of device %s to enrollment %s: no unrevoked certificate has it",
                canon, enr);
        st->invalid++;
        return 0;
    case CORE_CERT_DEVICE_USED:
        rc = cert_mismatch_audit(e, canon, enr, NULL, addr, when);
        st->applied += rc == 0;
        return rc;
    case CORE_CERT_OTHER:
        /* The proxy did not know: its enrollment hash is missing (Redis
         * lost it). Audited, and written again below with the device it
         * is bound to, so the next request is refused. */
        if ((rc = cert_mismatch_audit(e, canon, enr, bound, addr, when)) < 0)
            return rc;
        break;
    case CORE_CERT_BOUND: {
        char note[160];
        struct core_devinfo info = {.user = user};
        snprintf(note, sizeof(note),
                 "bound on first use to the portal certificate of enrollment %s", enr);
        if ((rc = core_eng_seen(e, canon, &info, when, NULL)) < 0 ||
            (rc = core_eng_action(e, canon, CORE_ACT_MANAGE, user, "proxy", addr ? addr : "", note,
                                  now_ms)) < 0 ||
            (rc = core_reg_audit_add(e->reg, "proxy", addr ? addr : "", "enroll.bind", canon, note,
                                     when)) < 0)
            return rc;
        eg_info("core: device %s %s (user %s)", canon, note, user);
        break;
    }
    case CORE_CERT_ALREADY:
        break;
    }
    /* The enrollment's own hash, so that a proxy refuses the certificate
     * with any other device even before it has looked that device up. */
    if (e->push && !e->dirty && rstore_push_enrollment(e->push, enr, user, bound, now_ms) < 0)
        eg_warn("core: could not write the binding of enrollment %s to redis: %s", enr,
                rstore_push_error(e->push));
    st->applied++;
    return 0;
}

/*
 * A proxy worker can reach none of an instance's mail server urls, or one
 * again: the core's view of each (instance, url) moves to down on the first
 * such report and back up on the first "up", each move one audit row
 * (proxy.upstream_down / proxy.upstream_up, target the instance name),
 * which the sender mails to the admins. Many workers and proxies report the
 * same outage; only the moves are audited. The view lives in this process
 * (the writer thread): a restarted core audits the next report it gets.
 */
#define UPVIEW_MAX 64
static struct {
    char key[320]; /* listener + " " + url */
    bool down;
} upview[UPVIEW_MAX];
static size_t n_upview;

static int apply_upstream(struct core_eng *e, const struct rstore_entry *en, int64_t when,
                          struct core_sight_stats *st)
{
    const char *listener = rstore_entry_field(en, RSTORE_SF_LISTENER),
               *url = rstore_entry_field(en, RSTORE_SF_URL),
               *state = rstore_entry_field(en, RSTORE_SF_UP_STATE),
               *why = rstore_entry_field(en, RSTORE_SF_ERROR),
               *proxy = rstore_entry_field(en, RSTORE_SF_INSTANCE);
    bool down = state && strcmp(state, RSTORE_UP_DOWN) == 0;
    if (!listener || !url || (!down && (!state || strcmp(state, RSTORE_UP_UP) != 0))) {
        eg_warn("core: upstream report %s without listener, url or state: ignored", en->id);
        st->invalid++;
        return 0;
    }
    char key[320];
    snprintf(key, sizeof(key), "%.63s %.250s", listener, url);
    size_t i = 0;
    while (i < n_upview && strcmp(upview[i].key, key) != 0)
        i++;
    if (i == n_upview) {
        if (!down)
            return 0; /* up, and never heard down: nothing moved */
        if (n_upview == UPVIEW_MAX)
            i = 0; /* a configuration with more urls than this: reuse the oldest slot */
        else
            n_upview++;
        snprintf(upview[i].key, sizeof(upview[i].key), "%s", key);
        upview[i].down = false;
    }
    if (upview[i].down == down)
        return 0;
    char detail[1000];
    if (down)
        snprintf(detail, sizeof(detail),
                 "proxy %.100s reaches none of instance %.63s's mail server urls: %.250s: %.250s",
                 proxy ? proxy : "?", listener, url, why && *why ? why : "failed");
    else
        snprintf(detail, sizeof(detail), "proxy %.100s reaches instance %.63s's %.250s again",
                 proxy ? proxy : "?", listener, url);
    int rc =
        core_reg_audit_add(e->reg, "proxy", "", down ? "proxy.upstream_down" : "proxy.upstream_up",
                           listener, detail, when);
    if (rc < 0)
        return rc;
    upview[i].down = down;
    eg_warn("core: %s", detail);
    st->applied++;
    return 0;
}

static int apply(struct core_eng *e, const struct rstore_entry *en, int64_t now_ms,
                 struct core_sight_stats *st)
{
    const char *kind = rstore_entry_field(en, RSTORE_SF_KIND),
               *dev = rstore_entry_field(en, RSTORE_SF_DEVICE),
               *t = rstore_entry_field(en, RSTORE_SF_TIME);
    char canon[CORE_DEVID_MAX + 1];
    if (kind && strcmp(kind, RSTORE_KIND_UPSTREAM) == 0) {
        const char *t0 = rstore_entry_field(en, RSTORE_SF_TIME);
        int64_t w = t0 ? strtoll(t0, NULL, 10) : 0;
        return apply_upstream(e, en, w <= 0 || w > now_ms ? now_ms : w, st);
    }
    if (!kind || !dev || core_reg_devid(dev, canon) < 0) {
        eg_warn("core: sighting %s without a valid device or kind: ignored", en->id);
        st->invalid++;
        return 0;
    }
    int64_t when = t ? strtoll(t, NULL, 10) : 0;
    if (when <= 0 || when > now_ms)
        when = now_ms; /* a proxy clock ahead of ours must not move last-seen into the future */
    if (strcmp(kind, RSTORE_KIND_UNKNOWN) == 0 || strcmp(kind, RSTORE_KIND_DEVINFO) == 0 ||
        strcmp(kind, RSTORE_KIND_SEEN) == 0) {
        char fam[CORE_SHORT_MAX], ver[CORE_SHORT_MAX];
        const char *os = rstore_entry_field(en, RSTORE_SF_OS);
        core_sight_split_os(os, fam, sizeof(fam), ver, sizeof(ver));
        struct core_devinfo in = {
            .device_type = rstore_entry_field(en, RSTORE_SF_DEVICE_TYPE),
            .model = rstore_entry_field(en, RSTORE_SF_MODEL),
            .eas_os = os && fam[0] ? fam : NULL,
            .eas_os_version = os && ver[0] ? ver : NULL,
            .imei = rstore_entry_field(en, RSTORE_SF_IMEI),
            .friendly_name = rstore_entry_field(en, RSTORE_SF_FRIENDLY_NAME),
            .phone_number = rstore_entry_field(en, RSTORE_SF_PHONE_NUMBER),
            .user_agent = rstore_entry_field(en, RSTORE_SF_USER_AGENT),
            .user = rstore_entry_field(en, RSTORE_SF_USER),
            .eas_version = eas_version(en),
            .client_addr = rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR),
        };
        enum core_sighted o;
        int rc = core_eng_sighting(e, canon, &in, authenticated(en),
                                   rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR), when, now_ms, &o);
        if (rc < 0)
            return rc;
        if (o == CORE_SIGHTED_PENDING || o == CORE_SIGHTED_IGNORED) {
            st->pending += o == CORE_SIGHTED_PENDING;
            st->unauthenticated++;
            return 0;
        }
        if (o == CORE_SIGHTED_CREATED) {
            st->created++;
            eg_debug("core: new device %s (user '%s', %s) first seen by %s", canon,
                     in.user ? in.user : "", in.device_type ? in.device_type : "?",
                     rstore_entry_field(en, RSTORE_SF_INSTANCE)
                         ? rstore_entry_field(en, RSTORE_SF_INSTANCE)
                         : "a proxy");
        }
    } else if (strcmp(kind, RSTORE_KIND_WIPE_ACK) == 0) {
        int rc = core_reg_wipe_acked(e->reg, canon, when);
        if (rc == CORE_REG_ENOTFOUND) {
            eg_warn("core: wipe acknowledgement from unknown device %s: ignored", canon);
            st->invalid++;
            return 0;
        }
        if (rc == 0)
            rc = core_reg_audit_add(e->reg, "proxy", rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR),
                                    "device.wipe-ack", canon,
                                    rstore_entry_field(en, RSTORE_SF_STATUS), when);
        if (rc < 0)
            return rc;
        st->wipe_acks++;
        eg_info("core: device %s acknowledged the remote wipe (status %s)", canon,
                rstore_entry_field(en, RSTORE_SF_STATUS) ? rstore_entry_field(en, RSTORE_SF_STATUS)
                                                         : "?");
        /* Wiped means gone: the device ends blocked, so a phone restored
         * from a backup with the same DeviceId gets nothing. Only a device
         * the admin ordered wiped (an acknowledgement is just a claim). */
        struct core_device d;
        if (core_reg_device_get(e->reg, canon, &d) == 0 && d.override == COMPLIANCE_OVR_WIPE) {
            rc = core_eng_action(e, canon, CORE_ACT_BLOCK, NULL, "proxy",
                                 rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR), "wiped", now_ms);
            if (rc < 0)
                return rc;
            eg_info("core: device %s wiped: now blocked", canon);
        }
    } else if (strcmp(kind, RSTORE_KIND_PROVISIONED) == 0) {
        return apply_provisioned(e, en, canon, when, now_ms, st);
    } else if (strcmp(kind, RSTORE_KIND_AUTOBLOCK) == 0) {
        return apply_autoblock(e, en, canon, when, now_ms, st);
    } else if (strcmp(kind, RSTORE_KIND_AUTH_BLOCK) == 0) {
        return apply_auth_block(e, en, canon, when, st);
    } else if (strcmp(kind, RSTORE_KIND_CERT_BIND) == 0) {
        return apply_cert_bind(e, en, canon, when, now_ms, st);
    } else if (strcmp(kind, RSTORE_KIND_CERT_MISMATCH) == 0) {
        const char *enr = rstore_entry_field(en, RSTORE_SF_ENROLLMENT);
        int rc = cert_mismatch_audit(e, canon, enrid_ok(enr) ? enr : "(none)",
                                     rstore_entry_field(en, RSTORE_SF_BOUND),
                                     rstore_entry_field(en, RSTORE_SF_CLIENT_ADDR), when);
        if (rc < 0)
            return rc;
    } else {
        eg_warn("core: sighting %s of unknown kind '%s': ignored", en->id, kind);
        st->invalid++;
        return 0;
    }
    st->applied++;
    return 0;
}

/* One batch in one transaction: all stored, or none (then nothing is
 * acknowledged and the entries come back as pending). */
int core_sight_apply(struct core_eng *e, const struct rstore_entry *en, size_t n, int64_t now_ms,
                     struct core_sight_stats *st)
{
    int rc = core_eng_begin(e);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = apply(e, &en[i], now_ms, st);
    if (rc < 0) {
        core_eng_rollback(e);
        return rc;
    }
    return core_eng_commit(e);
}

struct batch {
    struct core_wr *wr;
    int64_t now_ms;
    struct core_sight_stats *st;
    const struct rstore_entry *en;
    size_t n;
    bool handled; /* a batch came: the lag was measured */
};

static int batch_run(struct core_wr_env *env, void *arg)
{
    struct batch *b = arg;
    return core_sight_apply(env->eng, b->en, b->n, b->now_ms, b->st);
}

/* The consumer's callback: the entries are valid during it, and the call
 * returns after the writer committed them (or failed to: then nothing is
 * acknowledged). */
static int apply_batch(void *arg, const struct rstore_entry *en, size_t n)
{
    struct batch *b = arg;
    b->en = en;
    b->n = n;
    /* Now is when the batch came, not when the poll began: an entry that
     * arrived during the BLOCK would otherwise look younger than a last
     * seen written meanwhile (an admin's add), and its facts be dropped. */
    int64_t t = core_now_ms();
    if (t > b->now_ms)
        b->now_ms = t;
    int rc = core_wr_call(b->wr, batch_run, b);
    /* The lag: how old the newest entry was when it was handled (its
     * stream id starts with the ms the proxy's Redis added it at). */
    if (rc == 0 && n > 0) {
        long long added = strtoll(en[n - 1].id, NULL, 10);
        core_metrics_sightings(added > 0 ? b->now_ms - added : 0, n);
        b->handled = true;
    }
    return rc;
}

int core_sight_poll(struct rstore_consume *s, struct core_wr *wr, int64_t now_ms,
                    struct core_sight_stats *st)
{
    struct batch b = {.wr = wr, .now_ms = now_ms, .st = st};
    int rc = rstore_consume_poll(s, apply_batch, &b) < 0 ? CORE_PUSH_EREDIS : 0;
    if (rc == 0 && !b.handled)
        core_metrics_sightings(0, 0); /* nothing waiting: caught up */
    return rc;
}
