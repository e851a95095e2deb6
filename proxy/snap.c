/* snap: configuration + policy, reference-counted across worker threads. */
#include "proxy/snap.h"

#include "common/jwks.h"
#include "common/tls.h"

#include <stdlib.h>

int snap_load(const char *conf_path, struct snap **out, char *err, size_t errlen)
{
    struct conf *c = NULL;
    if (conf_load(conf_path, &c, err, errlen) < 0)
        return -1;
    /* No policy file is an empty one, as for the core (core_cfg_rules): its
     * defaults and the device states in Redis decide. Allowing everything
     * instead would let a phone an admin blocked or wiped through. */
    struct pol_policy *p = NULL;
    int rc = c->policy_path ? pol_load(c->policy_path, &p, err, errlen)
                            : pol_load_buf(POL_NO_FILE, "", 0, &p, err, errlen);
    if (rc < 0) {
        conf_free(c);
        return -1;
    }
    struct jwks *ks = NULL;
    if (p && p->identity.bearer.jwks && jwks_load(p->identity.bearer.jwks, &ks, err, errlen) < 0) {
        pol_unref(p);
        conf_free(c);
        return -1;
    }
    struct snap *s = calloc(1, sizeof(*s));
    if (!s) {
        jwks_free(ks);
        pol_unref(p);
        conf_free(c);
        return -1;
    }
    s->refs = 1;
    s->conf = c;
    s->pol = p;
    s->jwks = ks;
    *out = s;
    return 0;
}

struct snap *snap_ref(struct snap *s)
{
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
    return s;
}

void snap_unref(struct snap *s)
{
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < s->n_tls; i++) {
        tls_ctx_free(s->tls[i].server);
        tls_ctx_free(s->tls[i].client);
    }
    free(s->tls);
    jwks_free(s->jwks);
    pol_unref(s->pol);
    conf_free(s->conf);
    free(s);
}
