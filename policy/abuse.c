/*
 * abuse: the abuse: section of policy.yaml (abuse.h). Tables only, as the
 * rest of the policy: defaults parsed by the same code as the file.
 *
 * The defaults are meant to be met by no real phone (docs/configuration.md
 * says why each one): a phone holds a Ping for minutes and syncs what
 * changed, a few requests a minute; the first sync of a large mailbox is a
 * few hundred in a row, which the burst covers.
 */
#include "policy/abuse.h"

#include <stddef.h>

#define AB(f) offsetof(struct pol_abuse, f)
#define SUB(outer, fld) (offsetof(struct pol_abuse, fld) - offsetof(struct pol_abuse, outer))
#define BK(f) offsetof(struct pol_bucket, f)
#define AR(f) offsetof(struct pol_autoblock, f)

static const char *const budget_reasons[POL_BUDGET_N] = {"budget-device", "budget-user",
                                                         "budget-client"};
static const char *const autoblock_names[POL_AB_N] = {"SyncCommands", "CommandFrequency",
                                                      "UserAgentChanges", "OutOfBudgets"};

const char *pol_budget_reason(enum pol_budget_kind k)
{
    return k < POL_BUDGET_N ? budget_reasons[k] : "budget";
}

const char *pol_autoblock_name(enum pol_autoblock_rule r)
{
    return r < POL_AB_N ? autoblock_names[r] : "";
}

static const char *const action_names[] = {"block", "quarantine", NULL};

const char *pol_autoblock_action_name(int action)
{
    return action == POL_AB_QUARANTINE ? action_names[1] : action_names[0];
}

static int bucket_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    struct pol_bucket *b = obj;
    /* Twenty minutes' worth: the first sync of a large mailbox, a few
     * hundred requests in a row, fits the device's default. */
    if (b->burst == 0)
        b->burst = b->per_minute * POL_BURST_MINUTES;
    if (b->per_minute > 0 && b->burst < 1)
        return yt_err(ctx, map, "burst must be at least 1");
    return 0;
}

#define BUCKET_KEYS(tbl, rate_def)                                                                 \
    static const struct yt_key tbl[] = {                                                           \
        {.name = "per_minute",                                                                     \
         .type = YK_INT,                                                                           \
         .off = BK(per_minute),                                                                    \
         .def = rate_def,                                                                          \
         .max = 1000000},                                                                          \
        {.name = "burst", .type = YK_INT, .off = BK(burst), .def = "0", .max = 10000000},          \
        {.check = bucket_check},                                                                   \
    }
BUCKET_KEYS(device_keys, "30");
BUCKET_KEYS(user_keys, "60");
BUCKET_KEYS(client_keys, "6000");

static const struct yt_key budget_keys[] = {
    {.name = "device",
     .type = YK_MAP,
     .off = SUB(budget, budget[POL_BUDGET_DEVICE]),
     .sub = device_keys},
    {.name = "user", .type = YK_MAP, .off = SUB(budget, budget[POL_BUDGET_USER]), .sub = user_keys},
    {.name = "client",
     .type = YK_MAP,
     .off = SUB(budget, budget[POL_BUDGET_CLIENT]),
     .sub = client_keys},
    {.name = "retry_after",
     .type = YK_DUR,
     .off = SUB(budget, retry_after_ms),
     .def = "30s",
     .min = 1000,
     .max = 3600000},
    {0},
};

static int cred_check(void *obj, const struct yt_node *map, struct yt_ctx *ctx)
{
    const struct pol_abuse *a = (const struct pol_abuse *)((char *)obj - AB(cred));
    if (a->cred.block_max_ms < a->cred.block_ms)
        return yt_err(ctx, map, "credentials: block_max must be at least block");
    return 0;
}

static const struct yt_key cred_keys[] = {
    {.name = "window",
     .type = YK_DUR,
     .off = SUB(cred, cred.window_ms),
     .def = "10m",
     .min = 1000,
     .max = 86400000},
    {.name = "client_failures",
     .type = YK_INT,
     .off = SUB(cred, cred.client_failures),
     .def = "50",
     .max = 1000000},
    {.name = "user_failures",
     .type = YK_INT,
     .off = SUB(cred, cred.user_failures),
     .def = "10",
     .max = 1000000},
    {.name = "known_device_failures",
     .type = YK_INT,
     .off = SUB(cred, cred.known_failures),
     .def = "30",
     .max = 1000000},
    {.name = "block",
     .type = YK_DUR,
     .off = SUB(cred, cred.block_ms),
     .def = "1m",
     .min = 1000,
     .max = 86400000},
    {.name = "block_max",
     .type = YK_DUR,
     .off = SUB(cred, cred.block_max_ms),
     .def = "1h",
     .min = 1000,
     .max = 7 * 86400000LL},
    {.name = "memory",
     .type = YK_DUR,
     .off = SUB(cred, cred.memory_ms),
     .def = "24h",
     .min = 1000,
     .max = 30 * 86400000LL},
    {.check = cred_check},
};

static const struct yt_key rule_keys[] = {
    {.name = "limit", .type = YK_INT, .off = AR(limit), .def = "0", .max = 10000000},
    {.name = "window",
     .type = YK_DUR,
     .off = AR(window_ms),
     .def = "1h",
     .min = 1000,
     .max = 7 * 86400000LL},
    {.name = "block",
     .type = YK_DUR,
     .off = AR(block_ms),
     .def = "1h",
     .min = 1000,
     .max = 30 * 86400000LL},
    {.name = "action", .type = YK_ENUM, .off = AR(action), .def = "block", .enums = action_names},
    {0},
};

static const struct yt_key autoblock_keys[] = {
    {.name = "sync_commands",
     .type = YK_MAP,
     .off = SUB(autoblock, autoblock[POL_AB_SYNC_COMMANDS]),
     .sub = rule_keys},
    {.name = "command_frequency",
     .type = YK_MAP,
     .off = SUB(autoblock, autoblock[POL_AB_COMMAND_FREQUENCY]),
     .sub = rule_keys},
    {.name = "user_agent_changes",
     .type = YK_MAP,
     .off = SUB(autoblock, autoblock[POL_AB_USER_AGENT_CHANGES]),
     .sub = rule_keys},
    {.name = "out_of_budgets",
     .type = YK_MAP,
     .off = SUB(autoblock, autoblock[POL_AB_OUT_OF_BUDGETS]),
     .sub = rule_keys},
    {0},
};

const struct yt_key pol_abuse_keys[] = {
    {.name = "budgets", .type = YK_MAP, .off = AB(budget), .sub = budget_keys},
    {.name = "credentials", .type = YK_MAP, .off = AB(cred), .sub = cred_keys},
    {.name = "autoblock", .type = YK_MAP, .off = AB(autoblock), .sub = autoblock_keys},
    {0},
};
