/*
 * budget: what a worker holds back before Exchange sees it (policy/abuse.h,
 * docs/security.md "Abuse"): request budgets per DeviceId, user and client
 * address; blocks after failed logins; Exchange's autoblock thresholds,
 * reported to the core.
 *
 * Every decision is local and immediate: a worker keeps a token bucket per
 * key and charges it at once; what it let through goes to Redis a few times
 * a second (rstore_count_add), and the totals that come back charge its
 * buckets with what every other worker and proxy let through. So a limit
 * holds behind a load balancer (within each worker's burst and the
 * requests of one sync interval), and no request ever waits on Redis.
 * Without Redis each worker holds its own limits alone.
 *
 * One struct budget per worker, on its loop: not thread-safe.
 */
#ifndef EG_BUDGET_H
#define EG_BUDGET_H

#include "policy/abuse.h"
#include "proxy/metrics.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct rstore;

/* ---- The token bucket (pure) ------------------------------------------- */

struct budget_bucket {
    double tokens;
    int64_t last_ms; /* 0: new, full */
};

/* Refill for the time since the last call and take one token: 0, or the
 * ms until one is there (nothing taken). A bucket with per_minute 0 always
 * gives. */
int64_t budget_bucket_take(struct budget_bucket *bk, const struct pol_bucket *cf, int64_t now_ms);
/* Charge n tokens others used (after a refill to now); the bucket may owe
 * at most a minute's worth and a burst. */
void budget_bucket_charge(struct budget_bucket *bk, const struct pol_bucket *cf, double n,
                          int64_t now_ms);

/* ---- A worker's budgets ------------------------------------------------ */

/* Who a request is, as far as the budgets care; kept by the request from
 * its decision to its end (the identity itself is gone by then). */
struct budget_mark {
    uint64_t user_h;                   /* hash of the lower-cased user; 0: none */
    char user[64];                     /* for logs and sightings, cut short */
    char devid[EASQ_DEVICEID_MAX + 1]; /* canonical, "" none */
    char client[46];
    bool checked;  /* the budgets have counted this request */
    bool known;    /* the state store knows the device */
    bool cred;     /* it carried credentials Exchange checks (Basic, NTLM, Bearer) */
    int cmd;       /* the easq command, and the User-Agent's hash (0: none), */
    uint32_t ua_h; /* for the autoblock counts once Exchange has answered */
};

/* Fill m for a request. user: "user" or "DOMAIN\user" as easq_user_full
 * gives it ("" none); cred: the request carried a credential whose 401
 * means a wrong password, not a challenge. */
void budget_mark_set(struct budget_mark *m, const char *user, const char *devid, const char *client,
                     bool known, bool cred);

struct budget;
/* rs may be NULL (no Redis: local limits only). m: the worker's metrics. */
struct budget *budget_new(uv_loop_t *loop, struct rstore *rs, struct metrics *m);
/* Close the timer; the memory goes when the loop has closed it. Call after
 * rstore_free (whose pending replies still call back into the budget). */
void budget_free(struct budget *b);

/* What a request gets. */
struct budget_verdict {
    bool refused;
    const char *reason;   /* access log: budget-device, auth-block-client, ... */
    const char *throttle; /* X-MS-ASThrottle value, NULL: none */
    int64_t retry_ms;     /* Retry-After */
};

/*
 * Count one request against the budgets and the blocks (once per request;
 * a Ping counts once when it starts, never while it is held). cmd: the
 * easq command, ua: its User-Agent, both kept in m for budget_answered.
 * now_ms: loop time. A refusal is an OutOfBudgets incident of the device
 * only when it has the credentials, the user and the address of the
 * device's last request Exchange accepted: anyone can name a DeviceId.
 */
void budget_take(struct budget *b, const struct pol_abuse *a, struct budget_mark *m, int cmd,
                 const char *ua, int64_t now_ms, struct budget_verdict *v);

/* Exchange accepted (2xx) the request marked m: it is one of the device's
 * own, and counts towards the autoblock thresholds (CommandFrequency,
 * SyncCommands, UserAgentChanges). Nothing that Exchange did not accept
 * counts, so nobody sets off another's autoblock by naming its DeviceId.
 * now_ms: loop time. */
void budget_answered(struct budget *b, const struct pol_abuse *a, const struct budget_mark *m,
                     int64_t now_ms);

/* Exchange answered 401 to a request marked m: the device's and the
 * user's budgets get its token back (here and in Redis), so that wrong
 * passwords sent in someone's name do not spend that someone's budget. */
void budget_refund(struct budget *b, const struct pol_abuse *a, const struct budget_mark *m);

/* Exchange answered 401 to a request marked m: count it (shared in Redis)
 * and block its address, its user from that address, or the known device
 * from that address when a limit is crossed. */
void budget_auth_failed(struct budget *b, const struct pol_abuse *a, const struct budget_mark *m);

#endif
