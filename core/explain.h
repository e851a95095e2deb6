/*
 * core_explain: "why is this phone blocked?" from the core's side, for
 * GET /api/v1/devices/{id}/explain and `easgate admin devices explain`.
 *
 * One JSON object says, for a device (or a DeviceId the registry does not
 * hold) and a request it might send: the registry record with its facts
 * and their age, the state the core wrote (which Redis holds) and where it
 * came from, each compliance rule evaluated on its own, the core's verdict
 * recomputed now, each policy list and device rule with match / no match
 * (pol_explain, the proxy's own steps), the final decision (pol_decide)
 * and the answer the phone would get at its protocol version
 * (docs/access-model.md). Pure: no registry, no Redis; the caller reads.
 */
#ifndef EG_CORE_EXPLAIN_H
#define EG_CORE_EXPLAIN_H

#include "core/reg.h"
#include "policy/compliance.h"

#include <jansson.h>
#include <stdint.h>

/* The hypothetical request; NULL fields take the device's recorded ones. */
struct core_explain_req {
    const char *user, *user_agent, *device_type;
    const char *version; /* "14.1"; NULL: the recorded version, else none */
};

/* d NULL: the registry has no such device. rules->devrules is the policy
 * the proxies read (NULL: none). rank is d's user rank (0 n/a). Returns a
 * new object (NULL without memory). */
json_t *core_explain(const struct compliance_rules *rules, const char *device_id,
                     const struct core_device *d, uint32_t rank, const struct core_explain_req *rq,
                     int64_t now_ms);

#endif
