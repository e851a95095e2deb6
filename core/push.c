/*
 * core_push: device records into the state contract's words, and the
 * registry as a resync's source (see push.h). Everything Redis is in
 * connectors/rstore_push.c.
 */
#include "core/push.h"

/* compliance_state and rstore_state name the same four states in the same
 * order; say so where it matters rather than trust it. */
static enum rstore_state state_of(enum compliance_state s)
{
    switch (s) {
    case COMPLIANCE_ALLOW:
        return RSTORE_ALLOW;
    case COMPLIANCE_QUARANTINE:
        return RSTORE_QUARANTINE;
    case COMPLIANCE_WIPE:
        return RSTORE_WIPE;
    case COMPLIANCE_BLOCK:
        break;
    }
    return RSTORE_BLOCK;
}

static struct rstore_dev dev_of(const struct core_device *d)
{
    return (struct rstore_dev){
        .device_id = d->device_id,
        .state = state_of(d->state),
        .user = d->user,
        .reason = d->reason,
        .version = d->version,
        .updated_ms = d->updated_ms,
        .wipe_account = d->wipe_account,
        .pk_epoch = d->pk_epoch,
        .policy_key = d->policy_key,
        .provisioned_ms = d->provisioned_ms,
        .enrollment = d->cert_enrollment,
    };
}

int core_push_device(struct rstore_push *p, const struct core_device *d)
{
    struct rstore_dev rd = dev_of(d);
    int rc = rstore_push_write(p, &rd);
    if (rc < 0)
        return CORE_PUSH_EREDIS;
    return rc == RSTORE_PUSH_OLDER ? CORE_PUSH_OLDER : 0;
}

int core_push_devices(struct rstore_push *p, const struct core_device *const *ds, size_t n)
{
    struct rstore_dev rd[CORE_PUSH_MANY];
    int out[CORE_PUSH_MANY];
    if (n > CORE_PUSH_MANY)
        return CORE_PUSH_EREDIS;
    for (size_t i = 0; i < n; i++)
        rd[i] = dev_of(ds[i]);
    return rstore_push_write_many(p, rd, n, out) < 0 ? CORE_PUSH_EREDIS : 0;
}

int core_push_delete(struct rstore_push *p, const char *device_id, int64_t version)
{
    return rstore_push_delete(p, device_id, version) < 0 ? CORE_PUSH_EREDIS : 0;
}

/* ---- The registry as a resync's source ------------------------------------- */

struct each_ctx {
    int (*put)(const struct rstore_dev *d, void *ctx);
    void *ctx;
};

static int each_device(const struct core_device *d, void *arg)
{
    struct each_ctx *e = arg;
    struct rstore_dev rd = dev_of(d);
    return e->put(&rd, e->ctx);
}

static int src_each(void *arg, int (*put)(const struct rstore_dev *d, void *ctx), void *ctx)
{
    struct each_ctx e = {.put = put, .ctx = ctx};
    return core_reg_state_foreach(arg, each_device, &e);
}

static int src_exists(void *arg, const char *device_id)
{
    return core_reg_device_exists(arg, device_id);
}

static int src_next_version(void *arg, int64_t *version)
{
    return core_reg_next_version(arg, version);
}

struct bind_ctx {
    struct rstore_push *p;
    size_t n;
};

static int put_binding(const char *enrollment, const char *user, const char *device_id,
                       int64_t bound_ms, void *arg)
{
    struct bind_ctx *b = arg;
    if (rstore_push_enrollment(b->p, enrollment, user, device_id, bound_ms) < 0)
        return CORE_PUSH_EREDIS;
    b->n++;
    return 0;
}

int core_push_resync(struct rstore_push *p, struct core_reg *reg, struct rstore_resync_stats *st)
{
    const struct rstore_resync_src src = {
        .name = "registry",
        .each = src_each,
        .exists = src_exists,
        .next_version = src_next_version,
        .arg = reg,
    };
    int rc = rstore_push_resync(p, &src, st);
    if (rc == RSTORE_ESOURCE)
        return CORE_PUSH_EREG;
    if (rc < 0)
        return CORE_PUSH_EREDIS;
    /* The enrollment hashes too: after Redis lost its data, a bound portal
     * certificate would otherwise pass with another device until that
     * device's first 2xx (docs/state-contract.md). Only bound ones: a
     * missing hash already means "bound to none". */
    struct bind_ctx b = {.p = p};
    rc = core_reg_binding_foreach(reg, put_binding, &b);
    if (st)
        st->bindings = b.n;
    if (rc == CORE_PUSH_EREDIS)
        return rc;
    return rc < 0 ? CORE_PUSH_EREG : 0;
}
