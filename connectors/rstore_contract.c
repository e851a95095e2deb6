/*
 * rstore_contract: the few functions of the state contract (see
 * rstore_contract.h): the DeviceId rule, as eas/ defines it, and the names of
 * states and sighting kinds, shared by the writer and the readers so that a
 * name read is always a name some side writes.
 */
#include "connectors/rstore_contract.h"

#include <string.h>
#include <strings.h>

static const char *const state_names[] = {"allow", "block", "quarantine", "wipe"};

static const char *const kind_names[] = {RSTORE_KIND_UNKNOWN,       RSTORE_KIND_DEVINFO,
                                         RSTORE_KIND_WIPE_ACK,      RSTORE_KIND_PROVISIONED,
                                         RSTORE_KIND_SEEN,          RSTORE_KIND_AUTOBLOCK,
                                         RSTORE_KIND_AUTH_BLOCK,    RSTORE_KIND_CERT_BIND,
                                         RSTORE_KIND_CERT_MISMATCH, RSTORE_KIND_UPSTREAM};

int rstore_devid_norm(const char *in, size_t len, char *out)
{
    int n = easq_deviceid_norm(in, len, out, RSTORE_DEVID_MAX + 1);
    return n < 0 ? RSTORE_EINVAL : n;
}

const char *rstore_state_name(enum rstore_state s)
{
    return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

int rstore_state_parse(const char *s, size_t len, enum rstore_state *out)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strlen(state_names[i]) == len && strncasecmp(s, state_names[i], len) == 0) {
            *out = (enum rstore_state)i;
            return 0;
        }
    return RSTORE_EINVAL;
}

const char *rstore_sighting_kind_name(enum rstore_sighting_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : NULL;
}
