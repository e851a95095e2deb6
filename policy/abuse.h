/*
 * abuse: the policy's abuse: section, what the proxy holds back before
 * Exchange sees it (docs/security.md, "Abuse"):
 *
 *   budgets      request rates per DeviceId, per user and per client
 *                address (token buckets: a sustained rate and a burst);
 *   credentials  Exchange's 401 answers counted per client address
 *                (password spray) and per user and address (brute force),
 *                blocked with a back-off that doubles on every repeat;
 *                devices the registry knows are counted apart;
 *   autoblock    Exchange's autoblock thresholds (the BehaviorType names of
 *                Get-ActiveSyncDeviceAutoblockThreshold) the proxy can
 *                observe, reported to the core as sightings when crossed.
 *
 * Only the configuration lives here (pure, like the rest of policy/); the
 * counting is proxy/budget.c's and the shared counters are Redis's
 * (connectors/rstore_count.c). A limit of 0 turns that limit off.
 */
#ifndef EG_POL_ABUSE_H
#define EG_POL_ABUSE_H

#include "common/ytree.h"

#include <stdint.h>

/* One token bucket: per_minute tokens a minute, at most burst saved up. */
struct pol_bucket {
    int per_minute; /* 0: no limit */
    int burst;      /* 0: POL_BURST_MINUTES minutes' worth */
};
#define POL_BURST_MINUTES 20

enum pol_budget_kind { POL_BUDGET_DEVICE, POL_BUDGET_USER, POL_BUDGET_CLIENT, POL_BUDGET_N };

/* Exchange's autoblock BehaviorTypes that a proxy can count. RecentlyDeleted
 * and Watsons are events inside the mailbox server; the proxy never sees
 * them, so the policy does not take them. */
enum pol_autoblock_rule {
    POL_AB_SYNC_COMMANDS,      /* SyncCommands: Sync requests */
    POL_AB_COMMAND_FREQUENCY,  /* CommandFrequency: any command */
    POL_AB_USER_AGENT_CHANGES, /* UserAgentChanges: a new User-Agent for the device */
    POL_AB_OUT_OF_BUDGETS,     /* OutOfBudgets: the device's budget ran out */
    POL_AB_N
};

/* What the core does to a device that crossed a threshold. */
enum pol_autoblock_action { POL_AB_BLOCK, POL_AB_QUARANTINE };

struct pol_autoblock {
    int limit;         /* incidents within window; 0: rule off */
    int64_t window_ms; /* BehaviorTypeIncidenceDuration */
    int64_t block_ms;  /* DeviceBlockDuration, for the core */
    int action;        /* enum pol_autoblock_action */
};

struct pol_abuse {
    struct pol_bucket budget[POL_BUDGET_N];
    int64_t retry_after_ms; /* least Retry-After of a budget answer */
    struct {
        int64_t window_ms;
        int client_failures; /* 401s from one address (devices not known) */
        int user_failures;   /* 401s for one user from one address */
        int known_failures;  /* 401s for one known device from one address */
        int64_t block_ms;    /* first block; doubled on each repeat */
        int64_t block_max_ms;
        int64_t memory_ms; /* how long repeats are remembered */
    } cred;
    struct pol_autoblock autoblock[POL_AB_N];
};

/* The abuse: section's keys, for pol.c's table. */
extern const struct yt_key pol_abuse_keys[];

/* "budget-device", "budget-user", "budget-client" */
const char *pol_budget_reason(enum pol_budget_kind k);
/* Exchange's BehaviorType name: "SyncCommands", ... */
const char *pol_autoblock_name(enum pol_autoblock_rule r);
/* "block" or "quarantine" */
const char *pol_autoblock_action_name(int action);

#endif
