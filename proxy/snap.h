/*
 * snap: what a request is decided and limited by: the configuration and the
 * policy loaded together. SIGHUP builds a new snapshot; each worker swaps its
 * pointer on its own thread and every request holds a reference for its
 * lifetime, so a reload never changes the rules under a request in flight.
 * The snapshot also carries each instance's TLS contexts, built from the
 * files as they were when it was loaded: a reload picks up renewed
 * certificates, and connections keep the context they started with.
 * Listeners, workers and upstream addresses come from the startup
 * configuration and need a restart to change (a reload says so in the log).
 */
#ifndef EG_SNAP_H
#define EG_SNAP_H

#include "common/conf.h"
#include "policy/pol.h"

struct tls_ctx;
struct jwks;

/* One instance's contexts; each pointer holds a reference (tls.h). */
struct snap_tls {
    struct tls_ctx *server; /* NULL = plain HTTP */
    struct tls_ctx *client; /* for https upstreams, NULL if none */
};

struct snap {
    int refs; /* atomic */
    struct conf *conf;
    struct pol_policy *pol; /* never NULL: without a policy file, POL_NO_FILE's defaults */
    struct jwks *jwks;      /* identity.bearer.jwks as loaded with the policy, or NULL */
    struct snap_tls *tls;   /* one per instance, by index; set by the proxy */
    size_t n_tls;
};

/* Load conf_path, the policy it names and the policy's key set for Bearer
 * tokens (identity.bearer.jwks): a reload reads the key set again, so a
 * rotated key is picked up by SIGHUP. 0, or -1 with err filled
 * ("FILE:LINE:COL: message"). */
int snap_load(const char *conf_path, struct snap **out, char *err, size_t errlen);
struct snap *snap_ref(struct snap *s);
void snap_unref(struct snap *s);

#endif
