/*
 * conn_ping: the held Pings of a worker, indexed by canonical DeviceId, so
 * that a state change published by the core (the state store's change
 * callback) or a drain finds and answers them at once. A Ping is held from
 * the moment its request went upstream until the response head comes back.
 */
#include "proxy/conn.h"

#include "common/log.h"
#include "connectors/rstore.h"
#include "proxy/conn_int.h"
#include "proxy/upstream.h"

#include <string.h>

static uint32_t devid_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

void conn_ping_hold(struct conn *c)
{
    struct worker *w = c->w;
    struct req *r = c->req;
    if (!r || r->held_ping || !r->dec.devid_norm[0] || !w->pings)
        return;
    r->ping_hash = devid_hash(r->dec.devid_norm) % WORKER_PING_BUCKETS;
    r->ping_prev = NULL;
    r->ping_next = w->pings[r->ping_hash];
    if (r->ping_next)
        r->ping_next->req->ping_prev = c;
    w->pings[r->ping_hash] = c;
    r->held_ping = 1;
    psock_lean(&c->s, 1);
    if (c->up)
        psock_lean(&c->up->s, 1);
    M_ADD(w->m.held_now, 1);
}

void conn_ping_release(struct conn *c)
{
    struct worker *w = c->w;
    struct req *r = c->req;
    if (!r || !r->held_ping)
        return;
    if (r->ping_prev)
        r->ping_prev->req->ping_next = r->ping_next;
    else
        w->pings[r->ping_hash] = r->ping_next;
    if (r->ping_next)
        r->ping_next->req->ping_prev = r->ping_prev;
    r->held_ping = 0;
    r->ping_next = r->ping_prev = NULL;
    M_ADD(w->m.held_now, -1);
}

static int cut_pings(struct worker *w, const char *devid, int blocked)
{
    if (!w->pings)
        return 0;
    int n = 0;
    struct conn *c = w->pings[devid_hash(devid) % WORKER_PING_BUCKETS];
    while (c) {
        struct conn *next = c->req->ping_next;
        if (strcmp(c->req->dec.devid_norm, devid) == 0) {
            conn_cut_ping(c, blocked);
            n++;
        }
        c = next;
    }
    return n;
}

/* ---- state changes ---- */

/* May a device with this state go on holding a Ping? */
static int still_ok(const struct worker *w, const struct rstore_result *res)
{
    const struct pol_policy *pol = w->snap->pol;
    return (res->status == RSTORE_FOUND && res->state == RSTORE_ALLOW && !res->stale) ||
           (res->status != RSTORE_FOUND && (!pol || pol->unknown_devices == POL_ALLOW));
}

static int blocked_form(const struct rstore_result *res)
{
    return res->status == RSTORE_FOUND && res->state == RSTORE_BLOCK;
}

static void on_recheck(struct rstore_wait *wt, void *arg, const struct rstore_result *res)
{
    struct conn *c = arg;
    c->req->lookup_pending = 0;
    if (!still_ok(c->w, res))
        conn_cut_ping(c, blocked_form(res));
}

/* After a reconnect the store may have missed changes: look every device
 * that holds a Ping up again (the cache is unverified, so this asks Redis;
 * lookups of one device are shared). */
static void recheck_all(struct worker *w)
{
    for (size_t b = 0; b < WORKER_PING_BUCKETS; b++) {
        struct conn *c = w->pings[b];
        while (c) {
            struct conn *next = c->req->ping_next;
            struct req *r = c->req;
            if (!r->lookup_pending) {
                struct rstore_result res;
                int rc = rstore_lookup(w->rs, r->dec.devid_norm, strlen(r->dec.devid_norm), &res,
                                       &r->wait, on_recheck, c);
                if (rc == RSTORE_PENDING)
                    r->lookup_pending = 1;
                else if (rc == 0 && !still_ok(w, &res))
                    conn_cut_ping(c, blocked_form(&res));
            }
            c = next;
        }
    }
}

/* A device's state changed (device_id NULL: the cache was rebuilt after a
 * reconnect). A Ping held by a device that may no longer sync is answered
 * at once so the phone comes back and meets the new decision. */
void conn_state_changed(void *arg, const char *device_id, const struct rstore_result *res)
{
    struct worker *w = arg;
    if (!device_id || !res) {
        recheck_all(w);
        return;
    }
    if (still_ok(w, res))
        return;
    int n = cut_pings(w, device_id, blocked_form(res));
    if (n > 0)
        eg_info("device %s: state now %s, %d held Ping%s answered", device_id,
                res->status == RSTORE_FOUND ? rstore_state_name(res->state) : "unknown", n,
                n == 1 ? "" : "s");
}
