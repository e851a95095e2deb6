/*
 * admin: the operational endpoints on proxy.admin_listen, served by the main
 * thread so that a saturated worker never makes a health check time out.
 *   GET /healthz  200 while the process runs
 *   GET /readyz   200 when accepting traffic, 503 from the moment a drain
 *                 starts (load balancers take the instance out at once)
 *   GET /metrics  Prometheus text format (proxy/metrics.h)
 */
#include "proxy/admin.h"

#include "common/promx.h"
#include "connectors/rstore.h"
#include "proxy/metrics.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#define ADMIN_METRICS_MAX (256 * 1024)

static char *dup_text(const char *s, size_t *len)
{
    *len = strlen(s);
    return strdup(s);
}

static void handle(void *arg, const char *method, const char *path, struct httpd_resp *r)
{
    struct proxy *px = arg;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        r->status = 405;
        r->body = dup_text("method not allowed\n", &r->len);
        return;
    }
    int draining = __atomic_load_n(&px->draining, __ATOMIC_RELAXED);
    if (strcmp(path, "/healthz") == 0) {
        r->status = 200;
        r->body = dup_text("ok\n", &r->len);
    } else if (strcmp(path, "/readyz") == 0) {
        /* A Redis outage does not take the instance out: every instance
         * shares it, and cached state keeps serving (max_stale). It is
         * reported, for humans and alerting. */
        int have = 0, up = 0, stale = 0;
        /* Workers free their store only after a drain began, and a drain
         * begins on this thread: not draining means every rs is alive. */
        for (int i = 0; i < px->n_workers && !draining; i++) {
            const struct rstore *rs = px->workers[i].rs;
            if (!rs)
                continue;
            have++;
            up += rstore_connected(rs);
            stale |= rstore_stale(rs);
        }
        r->status = draining ? 503 : 200;
        const char *text = draining ? "draining\n"
                           : !have  ? "ready\n"
                           : stale  ? "ready; redis: unreachable beyond max_stale, failing closed\n"
                           : up < have ? "ready; redis: degraded (serving cached state)\n"
                                       : "ready; redis: connected\n";
        r->body = dup_text(text, &r->len);
    } else if (strcmp(path, "/metrics") == 0) {
        struct metrics *ms[256];
        size_t n = 0;
        for (int i = 0; i < px->n_workers && n < 256; i++)
            ms[n++] = &px->workers[i].m;
        const char *names[M_INST_MAX];
        size_t ni = 0;
        for (; ni < px->n_inst && ni < M_INST_MAX; ni++)
            names[ni] = px->inst[ni].ci->name;
        struct metrics_extra x = {!draining,
                                  draining,
                                  __atomic_load_n(&px->reloads, __ATOMIC_RELAXED),
                                  __atomic_load_n(&px->reload_failures, __ATOMIC_RELAXED),
                                  names,
                                  ni};
        r->body = malloc(ADMIN_METRICS_MAX);
        if (!r->body) {
            r->status = 503;
            return;
        }
        r->len = metrics_render(ms, n, &x, r->body, ADMIN_METRICS_MAX);
        struct rstore_stats sum, one;
        int have = 0;
        memset(&sum, 0, sizeof(sum));
        for (int i = 0; i < px->n_workers && !draining; i++) {
            if (!px->workers[i].rs)
                continue;
            rstore_stats_get(px->workers[i].rs, &one);
            rstore_stats_add(&sum, &one);
            have = 1;
        }
        if (have) {
            int k = rstore_stats_format(&sum, r->body + r->len, ADMIN_METRICS_MAX - r->len);
            if (k > 0)
                r->len += (size_t)k;
        }
        /* What every role exports alike: build, process, the certificates
         * and CRLs the instances serve with (read now: a renewal shows). */
        promx_build_info(r->body, ADMIN_METRICS_MAX, &r->len, "proxy");
        promx_process(r->body, ADMIN_METRICS_MAX, &r->len);
        promx_cert_headers(r->body, ADMIN_METRICS_MAX, &r->len);
        for (size_t i = 0; i < px->n_inst; i++) {
            promx_cert_expiry(r->body, ADMIN_METRICS_MAX, &r->len, px->inst[i].ci->tls.cert);
            promx_crl_next_update(r->body, ADMIN_METRICS_MAX, &r->len,
                                  px->inst[i].ci->client_auth.crl);
        }
        r->status = 200;
        r->content_type = "text/plain; version=0.0.4";
    }
}

int admin_start(struct proxy *px, uv_loop_t *loop, const struct sockaddr *addr, struct httpd **out)
{
    return httpd_start(loop, addr, handle, px, out);
}
