/*
 * proxy: start-up, signals and shutdown. Everything that can fail is checked
 * before the first worker starts: configuration, policy, certificates,
 * upstream names (resolved once here: the request path never waits on DNS)
 * and every listening socket.
 */
#include "proxy/proxy.h"

#include "connectors/rstore.h"

#include "common/jwks.h"
#include "common/log.h"
#include "common/logfile.h"
#include "proxy/accesslog.h"
#include "proxy/admin.h"
#include "proxy/limits.h"
#include "proxy/loop.h"
#include "proxy/memtrim.h"
#include "proxy/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_BACKLOG 511

struct mainctx {
    struct proxy *px;
    uv_loop_t loop;
    uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
    uv_timer_t poll, grace, trim, crl;
    struct memtrim mt; /* when on_trim looks at the heap */
    struct httpd *admin;
    int error_fd;
    const char *error_path;
    int stopping;
};

/* ---- instances ---- */

static int resolve(const struct conf_url *u, struct sockaddr_storage *out, char *err, size_t el)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    char port[8];
    snprintf(port, sizeof(port), "%d", u->port);
    int r = getaddrinfo(u->host, port, &hints, &res);
    if (r != 0 || !res) {
        snprintf(err, el, "upstream %s: cannot resolve %s: %s", u->url, u->host, gai_strerror(r));
        return -1;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* Each instance's TLS contexts, from the files as they are now: at start and
 * on every reload, so that a renewed certificate is served without a
 * restart. 0, or -1 with "instance NAME: FILE: what is wrong" in err (then
 * s has no contexts). warn: log that an upstream is not verified. */
static int snap_build_tls(struct snap *s, int warn, char *err, size_t el)
{
    const struct conf_proxy *cp = &s->conf->proxy;
    struct snap_tls *t = calloc(cp->n_instances ? cp->n_instances : 1, sizeof(*t));
    if (!t) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    s->tls = t;
    s->n_tls = cp->n_instances;
    char e[512];
    for (size_t i = 0; i < cp->n_instances; i++) {
        const struct conf_instance *ci = &cp->instances[i];
        if (ci->tls.cert) {
            struct tls_server_opts o = {ci->tls.cert, ci->tls.key, ci->client_auth.ca,
                                        ci->client_auth.required};
            if (tls_ctx_server(&o, &t[i].server, e, sizeof(e)) < 0) {
                snprintf(err, el, "instance %s: %s", ci->name, e);
                goto fail;
            }
            if (ci->client_auth.crl && ci->client_auth.ca &&
                tls_ctx_server_crl(t[i].server, ci->client_auth.ca, ci->client_auth.crl, e,
                                   sizeof(e)) < 0) {
                snprintf(err, el, "instance %s: client_auth.crl: %s", ci->name, e);
                goto fail;
            }
        }
        const struct conf_upstream *up = &ci->upstream;
        int any_tls = 0;
        for (size_t k = 0; k < up->n_urls; k++)
            any_tls |= up->urls[k].tls;
        if (!any_tls)
            continue;
        if (tls_ctx_client(up->ca, up->verify, &t[i].client, e, sizeof(e)) < 0) {
            snprintf(err, el, "instance %s: upstream: %s", ci->name, e);
            goto fail;
        }
        if (!up->verify && warn)
            eg_warn("instance %s: upstream.verify is false: the upstream's certificate is NOT "
                    "checked, anyone on the path can read and change all mail traffic",
                    ci->name);
    }
    return 0;
fail:
    for (size_t i = 0; i < s->n_tls; i++) {
        tls_ctx_free(t[i].server);
        tls_ctx_free(t[i].client);
    }
    free(t);
    s->tls = NULL;
    s->n_tls = 0;
    return -1;
}

int proxy_check_tls(struct conf *c, char *err, size_t el)
{
    struct snap s = {.refs = 1, .conf = c};
    if (snap_build_tls(&s, 0, err, el) < 0)
        return -1;
    for (size_t i = 0; i < s.n_tls; i++) {
        tls_ctx_free(s.tls[i].server);
        tls_ctx_free(s.tls[i].client);
    }
    free(s.tls);
    return 0;
}

/* The new snapshot keeps the old one's contexts (a reload that cannot
 * apply its instances). */
static int snap_share_tls(struct snap *ns, const struct snap *old)
{
    ns->tls = calloc(old->n_tls ? old->n_tls : 1, sizeof(*ns->tls));
    if (!ns->tls)
        return -1;
    ns->n_tls = old->n_tls;
    for (size_t i = 0; i < old->n_tls; i++) {
        ns->tls[i].server = old->tls[i].server ? tls_ctx_ref(old->tls[i].server) : NULL;
        ns->tls[i].client = old->tls[i].client ? tls_ctx_ref(old->tls[i].client) : NULL;
    }
    return 0;
}

static int setup_instance(struct instance *in, int index, const struct conf_instance *ci, char *err,
                          size_t el)
{
    in->index = index;
    in->ci = ci;
    const struct conf_upstream *up = &ci->upstream;
    in->up_addr = calloc(up->n_urls ? up->n_urls : 1, sizeof(*in->up_addr));
    in->up_host_hdr = calloc(up->n_urls ? up->n_urls : 1, sizeof(*in->up_host_hdr));
    if (!in->up_addr || !in->up_host_hdr) {
        snprintf(err, el, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < up->n_urls; i++) {
        const struct conf_url *u = &up->urls[i];
        if (resolve(u, &in->up_addr[i], err, el) < 0)
            return -1;
        int v6 = strchr(u->host, ':') != NULL;
        int def = u->port == (u->tls ? 443 : 80);
        char hh[300];
        snprintf(hh, sizeof(hh), "%s%s%s%s%.0d", v6 ? "[" : "", u->host, v6 ? "]" : "",
                 def ? "" : ":", def ? 0 : u->port);
        in->up_host_hdr[i] = strdup(hh);
        if (!in->up_host_hdr[i]) {
            snprintf(err, el, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void free_instance(struct instance *in)
{
    if (in->up_host_hdr)
        for (size_t i = 0; i < in->ci->upstream.n_urls; i++)
            free(in->up_host_hdr[i]);
    free(in->up_host_hdr);
    free(in->up_addr);
}

static int listen_socket(const struct units_addr *a, char *err, size_t el, const char *name)
{
    const struct sockaddr *sa = (const struct sockaddr *)&a->sa;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, a->salen) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
        goto fail;
    return fd;
fail:
    snprintf(err, el, "instance %s: cannot listen on %s: %s", name, a->text, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* ---- memory ---- */

/* After a burst of TLS handshakes the heap keeps holes at the burst's high
 * water; memtrim.h says when handing free pages back pays (measured at
 * 5,000 held Pings: 37.6 -> 34.7 KiB per Ping, bench/RESULTS.md). */
static void counted_now(const struct proxy *px, uint64_t *hs, uint64_t *answers)
{
    *hs = *answers = 0;
    for (int i = 0; i < px->n_workers; i++) {
        *hs += M_GET(px->workers[i].m.tls_handshakes);
        *answers += M_GET(px->workers[i].m.lat_count);
    }
}

static void on_trim(uv_timer_t *t)
{
    struct mainctx *m = t->data;
    uint64_t hs, an;
    counted_now(m->px, &hs, &an);
    enum memtrim_look why = memtrim_due(&m->mt, hs, an, uv_now(&m->loop));
    if (why == MEMTRIM_NO)
        return;
    struct mallinfo2 mi = mallinfo2();
    if (!memtrim_worth(why, mi.fordblks, mi.uordblks))
        return;
    uint64_t t0 = uv_hrtime();
    malloc_trim(0);
    eg_debug("memory: %zu MiB free in the heap (%zu MiB used), trimmed in %llu us",
             mi.fordblks >> 20, mi.uordblks >> 20, (unsigned long long)((uv_hrtime() - t0) / 1000));
}

/* The CRL files (client_auth.crl) are rewritten by enrollment on every
 * revocation; a stat() a second here keeps that off the workers. */
static void on_crl(uv_timer_t *t)
{
    struct mainctx *m = t->data;
    struct proxy *px = m->px;
    const struct snap *s = px->snap; /* changed only on this thread */
    int changed = 0;
    for (size_t i = 0; i < s->n_tls && i < px->n_inst; i++) {
        const char *name = px->inst[i].ci->name;
        char e[512];
        int r = tls_ctx_crl_refresh(s->tls[i].server, e, sizeof(e));
        if (r < 0)
            eg_error("instance %s: %s; the CRL loaded before stays in force", name, e);
        else if (r > 0)
            eg_info("instance %s: reloaded the CRL %s", name, tls_ctx_crl_path(s->tls[i].server));
        changed |= r > 0;
    }
    if (!changed)
        return;
    /* Connections made before the change are checked against it now. */
    for (int i = 0; i < px->n_workers; i++) {
        pthread_mutex_lock(&px->lock);
        px->workers[i].pending_revoke = 1;
        pthread_mutex_unlock(&px->lock);
        loop_post(&px->workers[i]);
    }
}

/* ---- signals ---- */

static void broadcast(struct proxy *px, int drain, int stop)
{
    for (int i = 0; i < px->n_workers; i++) {
        struct worker *w = &px->workers[i];
        pthread_mutex_lock(&px->lock);
        if (drain)
            w->pending_drain = 1;
        if (stop)
            w->pending_stop = 1;
        pthread_mutex_unlock(&px->lock);
        loop_post(w);
    }
}

static void on_poll(uv_timer_t *t)
{
    struct mainctx *m = t->data;
    for (int i = 0; i < m->px->n_workers; i++)
        if (!__atomic_load_n(&m->px->workers[i].done, __ATOMIC_ACQUIRE))
            return;
    /* every worker is finished: close the main loop's handles */
    httpd_stop(m->admin);
    m->admin = NULL;
    uv_close((uv_handle_t *)&m->poll, NULL);
    uv_close((uv_handle_t *)&m->grace, NULL);
    uv_close((uv_handle_t *)&m->trim, NULL);
    uv_close((uv_handle_t *)&m->crl, NULL);
    uv_close((uv_handle_t *)&m->sig_term, NULL);
    uv_close((uv_handle_t *)&m->sig_int, NULL);
    uv_close((uv_handle_t *)&m->sig_hup, NULL);
    uv_close((uv_handle_t *)&m->sig_usr1, NULL);
}

static void on_grace(uv_timer_t *t)
{
    struct mainctx *m = t->data;
    eg_warn("drain grace period over: closing the connections still open");
    broadcast(m->px, 0, 1);
}

static void start_drain(struct mainctx *m)
{
    if (m->stopping) {
        eg_warn("second stop signal: closing every connection now");
        broadcast(m->px, 0, 1);
        return;
    }
    m->stopping = 1;
    __atomic_store_n(&m->px->draining, 1, __ATOMIC_RELAXED);
    int64_t grace = m->px->snap->conf->proxy.timeouts.drain_grace_ms;
    eg_info("draining: /readyz now answers 503, held Pings are answered, in-flight requests "
            "have %lld ms",
            (long long)grace);
    broadcast(m->px, 1, 0);
    uv_timer_start(&m->grace, on_grace, grace > 0 ? (uint64_t)grace : 1, 0);
    uv_timer_start(&m->poll, on_poll, 50, 50);
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
    start_drain(s->data);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Changes a reload cannot apply; say so instead of pretending. Returns 1
 * when the instances themselves (count, names, listen addresses, upstream
 * urls) changed: then their TLS settings are not applied either. */
static int warn_restart_needed(const struct conf *old, const struct conf *nw)
{
    const struct conf_proxy *a = &old->proxy, *b = &nw->proxy;
    int inst = a->n_instances != b->n_instances;
    for (size_t i = 0; !inst && i < a->n_instances; i++) {
        const struct conf_instance *x = &a->instances[i], *y = &b->instances[i];
        inst = !same_str(x->name, y->name) || strcmp(x->listen.text, y->listen.text) != 0 ||
               x->upstream.n_urls != y->upstream.n_urls;
        for (size_t k = 0; !inst && k < x->upstream.n_urls; k++)
            inst = !same_str(x->upstream.urls[k].url, y->upstream.urls[k].url);
    }
    int pp = 0; /* per-instance settings read from the startup configuration */
    for (size_t i = 0; !inst && i < a->n_instances; i++) {
        const struct conf_instance *x = &a->instances[i], *y = &b->instances[i];
        pp |=
            x->proxy_protocol != y->proxy_protocol || x->trusted_proxies.n != y->trusted_proxies.n;
        for (size_t k = 0; !pp && k < x->trusted_proxies.n; k++)
            pp = !same_str(x->trusted_proxies.v[k].text, y->trusted_proxies.v[k].text);
        pp |= x->server_names.n != y->server_names.n;
        for (size_t k = 0; !pp && k < x->server_names.n; k++)
            pp = !same_str(x->server_names.v[k], y->server_names.v[k]);
    }
    int differ =
        inst || pp || a->workers != b->workers ||
        strcmp(a->admin_listen.text, b->admin_listen.text) != 0 ||
        old->redis.enabled != nw->redis.enabled || !same_str(old->redis.url, nw->redis.url) ||
        !same_str(old->log.access, nw->log.access) || !same_str(old->log.error, nw->log.error);
    if (inst)
        eg_warn("reload: the instances changed (count, names, listen addresses or upstream urls): "
                "they, and their TLS files, keep their startup values; restart to change them");
    else if (differ)
        eg_warn("reload: workers, admin_listen, proxy_protocol, trusted_proxies, server_names, "
                "redis and log file paths keep their startup values; restart to change them");
    return inst;
}

/* What the policy and its identity section mean for this run, said once
 * per load. */
static void say_policy(const struct snap *sn)
{
    const struct pol_policy *p = sn->pol;
    if (!sn->conf->policy_path)
        eg_warn("proxy: %s names no policy file: the defaults of an empty policy apply "
                "(unknown_devices: allow, no user_agents, devices or device_rules, the default "
                "abuse budgets), with the device states the core writes to Redis; give every "
                "proxy and the core the same policy.yaml (policy: at the top)",
                sn->conf->path);
    if (p->identity.bearer.trust_unverified)
        eg_warn("%s: identity.bearer.trust_unverified: Bearer tokens are believed without a "
                "signature check; anyone can name any user (a test bed only)",
                p->path);
    else if (sn->jwks)
        eg_info("%s: Bearer tokens checked against %s (%zu keys)", p->path, p->identity.bearer.jwks,
                jwks_count(sn->jwks));
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct mainctx *m = s->data;
    struct proxy *px = m->px;
    char err[1024];
    struct snap *ns;
    if (snap_load(px->conf_path, &ns, err, sizeof(err)) < 0) {
        __atomic_add_fetch(&px->reload_failures, 1, __ATOMIC_RELAXED);
        eg_error("reload rejected, the running configuration and policy stay: %s", err);
        return;
    }
    if (!ns->conf->has_proxy || ns->conf->proxy.n_instances == 0) {
        __atomic_add_fetch(&px->reload_failures, 1, __ATOMIC_RELAXED);
        eg_error("reload rejected, the running configuration stays: %s has no proxy instances",
                 px->conf_path);
        snap_unref(ns);
        return;
    }
    /* Against the startup configuration: that is what listens. */
    int keep_tls = warn_restart_needed(px->boot->conf, ns->conf);
    if (keep_tls ? snap_share_tls(ns, px->snap) < 0 : snap_build_tls(ns, 1, err, sizeof(err)) < 0) {
        __atomic_add_fetch(&px->reload_failures, 1, __ATOMIC_RELAXED);
        eg_error("reload rejected, the running configuration and TLS files stay: %s",
                 keep_tls ? "out of memory" : err);
        snap_unref(ns);
        return;
    }
    eg_log_set_level(ns->conf->log.level);
    pthread_mutex_lock(&px->lock);
    struct snap *old = px->snap;
    px->snap = ns;
    for (int i = 0; i < px->n_workers; i++) {
        struct worker *w = &px->workers[i];
        snap_unref(w->pending_snap);
        w->pending_snap = snap_ref(ns);
    }
    pthread_mutex_unlock(&px->lock);
    snap_unref(old);
    for (int i = 0; i < px->n_workers; i++)
        loop_post(&px->workers[i]);
    __atomic_add_fetch(&px->reloads, 1, __ATOMIC_RELAXED);
    const char *pp = ns->conf->policy_path;
    eg_info("reloaded %s%s%s", px->conf_path, pp ? " and " : "", pp ? pp : "");
    say_policy(ns);
}

static void on_usr1(uv_signal_t *s, int signum)
{
    struct mainctx *m = s->data;
    int r = accesslog_reopen();
    logfile_reopen_all(); /* files other roles opened (easgate run: the core's API log) */
    if (r < 0)
        eg_error("reopening the access log failed: %s (still writing the old file)", strerror(-r));
    if (m->error_path) {
        int fd = open(m->error_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd >= 0) {
            dup2(fd, m->error_fd);
            close(fd);
        }
    }
    eg_info("log files reopened");
}

/* ---- main ---- */

static int start_error_log(struct mainctx *m, const struct conf *c, char *err, size_t el)
{
    m->error_fd = -1;
    if (!c->log.error || strcmp(c->log.error, "-") == 0)
        return 0;
    int fd = open(c->log.error, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        snprintf(err, el, "log.error %s: %s", c->log.error, strerror(errno));
        return -1;
    }
    m->error_fd = fd;
    m->error_path = c->log.error;
    eg_log_set_fd(fd);
    return 0;
}

/* The error and access logs, the TLS contexts and the workers' shared
 * fallback store: 0, 2 on a configuration error (said on stderr), 1
 * otherwise. */
static int open_outputs(struct mainctx *m, const struct conf *cf, struct snap *snap)
{
    char err[1024];
    if (start_error_log(m, cf, err, sizeof(err)) < 0) {
        fprintf(stderr, "easgate proxy: %s\n", err);
        return 2;
    }
    int ar = accesslog_open(cf->log.access);
    if (ar < 0) {
        fprintf(stderr, "easgate proxy: log.access %s: %s\n", cf->log.access, strerror(-ar));
        return 2;
    }
    if (snap_build_tls(snap, 1, err, sizeof(err)) < 0) {
        fprintf(stderr, "easgate proxy: %s\n", err);
        return 2;
    }
    if (cf->redis.enabled && !(m->px->rs_shared = rstore_shared_new(RSTORE_SHARED_SLOTS)))
        return 1;
    return 0;
}

/* Every instance resolved: 0, 2 on a configuration error, 1 otherwise. */
static int setup_instances(struct proxy *px, const struct conf *cf)
{
    char err[1024];
    px->n_inst = cf->proxy.n_instances;
    px->inst = calloc(px->n_inst, sizeof(*px->inst));
    if (!px->inst)
        return 1;
    for (size_t i = 0; i < px->n_inst; i++) {
        if (setup_instance(&px->inst[i], (int)i, &cf->proxy.instances[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "easgate proxy: %s\n", err);
            return 2;
        }
    }
    return 0;
}

static void free_instances(struct proxy *px)
{
    for (size_t i = 0; px->inst && i < px->n_inst; i++)
        if (px->inst[i].ci)
            free_instance(&px->inst[i]);
    free(px->inst);
}

/* The workers, each with its listening sockets bound (so a port in use is
 * said before anything runs): 0, or 1. */
static int setup_workers(struct proxy *px, const struct conf *cf, struct snap *snap)
{
    char err[1024];
    px->n_workers = cf->proxy.workers > 0 ? cf->proxy.workers : 1;
    px->workers = calloc((size_t)px->n_workers, sizeof(*px->workers));
    if (!px->workers)
        return 1;
    for (int i = 0; i < px->n_workers; i++) {
        struct worker *w = &px->workers[i];
        w->id = i;
        w->px = px;
        w->snap = snap_ref(snap);
        w->listen_fds = calloc(px->n_inst, sizeof(int));
        if (!w->listen_fds)
            return 1;
        for (size_t k = 0; k < px->n_inst; k++)
            w->listen_fds[k] = -1;
        for (size_t k = 0; k < px->n_inst; k++) {
            w->listen_fds[k] = listen_socket(&cf->proxy.instances[k].listen, err, sizeof(err),
                                             cf->proxy.instances[k].name);
            if (w->listen_fds[k] < 0) {
                fprintf(stderr, "easgate proxy: %s\n", err);
                return 1;
            }
        }
    }
    return 0;
}

static void free_workers(struct proxy *px)
{
    if (!px->workers)
        return;
    for (int i = 0; i < px->n_workers; i++) {
        struct worker *w = &px->workers[i];
        if (w->listen_fds)
            for (size_t k = 0; k < px->n_inst; k++)
                if (w->listen_fds[k] >= 0)
                    close(w->listen_fds[k]);
        free(w->listen_fds);
        if (!w->done)
            snap_unref(w->snap);
    }
    free(px->workers);
}

/* The main thread's signals and timers. */
static void start_main_handles(struct mainctx *m)
{
    uv_signal_init(&m->loop, &m->sig_term);
    uv_signal_init(&m->loop, &m->sig_int);
    uv_signal_init(&m->loop, &m->sig_hup);
    uv_signal_init(&m->loop, &m->sig_usr1);
    m->sig_term.data = m->sig_int.data = m->sig_hup.data = m->sig_usr1.data = m;
    uv_signal_start(&m->sig_term, on_stop_signal, SIGTERM);
    uv_signal_start(&m->sig_int, on_stop_signal, SIGINT);
    uv_signal_start(&m->sig_hup, on_hup, SIGHUP);
    uv_signal_start(&m->sig_usr1, on_usr1, SIGUSR1);
    uv_timer_init(&m->loop, &m->poll);
    uv_timer_init(&m->loop, &m->grace);
    uv_timer_init(&m->loop, &m->trim);
    uv_timer_init(&m->loop, &m->crl);
    m->poll.data = m->grace.data = m->trim.data = m->crl.data = m;
    uint64_t hs, an;
    counted_now(m->px, &hs, &an);
    memtrim_init(&m->mt, hs, an, uv_now(&m->loop));
    uv_timer_start(&m->trim, on_trim, MEMTRIM_TICK_MS, MEMTRIM_TICK_MS);
    uv_timer_start(&m->crl, on_crl, 1000, 1000);
}

static void say_running(const struct proxy *px, const struct conf *cf)
{
    for (size_t i = 0; i < px->n_inst; i++) {
        const struct conf_instance *ci = px->inst[i].ci;
        eg_info("instance %s: listening on %s (%s%s), upstream %s%s", ci->name, ci->listen.text,
                ci->tls.cert ? "TLS" : "plain HTTP",
                ci->client_auth.ca ? (ci->client_auth.required ? ", client certificate required"
                                                               : ", client certificate optional")
                                   : "",
                ci->upstream.urls[0].url, ci->upstream.n_urls > 1 ? " (+ more)" : "");
        if (ci->server_names.n == 0)
            eg_warn("instance %s: no server_names: any Host and any absolute-form authority is "
                    "accepted; list the names clients use (docs/security.md)",
                    ci->name);
    }
    eg_info("easgate proxy running: %d workers, admin %s", px->n_workers,
            cf->proxy.has_admin ? cf->proxy.admin_listen.text : "off");
}

/* Start the admin listener and the worker threads, serve until drained,
 * join them: 0 after a clean drain, 1 when something could not start. */
static int serve(struct mainctx *m, const struct conf *cf)
{
    struct proxy *px = m->px;
    uv_loop_init(&m->loop);
    if (cf->proxy.has_admin) {
        int r = admin_start(px, &m->loop, (const struct sockaddr *)&cf->proxy.admin_listen.sa,
                            &m->admin);
        if (r < 0) {
            fprintf(stderr, "easgate proxy: admin_listen %s: %s\n", cf->proxy.admin_listen.text,
                    uv_strerror(r));
            uv_run(&m->loop, UV_RUN_DEFAULT);
            uv_loop_close(&m->loop);
            return 1;
        }
    }
    int started = 0;
    for (int i = 0; i < px->n_workers; i++) {
        int r = loop_start(&px->workers[i]);
        if (r < 0) {
            eg_error("worker %d: %s", i, uv_strerror(r));
            break;
        }
        started++;
    }
    start_main_handles(m);
    int rc = 0;
    if (started < px->n_workers) {
        px->n_workers = started; /* only those threads exist */
        start_drain(m);
        rc = 1;
    } else {
        say_running(px, cf);
    }
    uv_run(&m->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < px->n_workers; i++)
        uv_thread_join(&px->workers[i].thread);
    for (int i = 0; i < px->n_workers; i++)
        loop_free(&px->workers[i]);
    uv_loop_close(&m->loop);
    eg_info("easgate proxy stopped");
    px->n_workers = (int)(cf->proxy.workers > 0 ? cf->proxy.workers : 1);
    return rc;
}

int proxy_main(const char *conf_path)
{
    char err[1024];
    struct snap *snap;
    if (snap_load(conf_path, &snap, err, sizeof(err)) < 0) {
        fprintf(stderr, "easgate proxy: %s\n", err);
        return 2;
    }
    const struct conf *cf = snap->conf;
    if (!cf->has_proxy || cf->proxy.n_instances == 0) {
        fprintf(stderr, "easgate proxy: %s: no proxy.instances configured\n", conf_path);
        snap_unref(snap);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    eg_log_set_level(cf->log.level);

    struct mainctx m;
    memset(&m, 0, sizeof(m));
    struct proxy *px = calloc(1, sizeof(*px));
    if (!px) {
        snap_unref(snap);
        return 1;
    }
    m.px = px;
    px->conf_path = conf_path;
    px->snap = snap;
    px->boot = snap_ref(snap);
    pthread_mutex_init(&px->lock, NULL);
    limits_init(&px->limits);
    int rc = open_outputs(&m, cf, snap);
    if (rc == 0)
        say_policy(snap);
    if (rc == 0)
        rc = setup_instances(px, cf);
    if (rc == 0) {
        rc = setup_workers(px, cf, snap);
        if (rc == 0)
            rc = serve(&m, cf);
        free_workers(px);
    }
    free_instances(px);

    accesslog_close();
    rstore_shared_free(px->rs_shared); /* the workers' stores are gone */
    limits_free(&px->limits);
    snap_unref(px->snap);
    snap_unref(px->boot);
    pthread_mutex_destroy(&px->lock);
    free(px);
    if (m.error_fd >= 0) {
        eg_log_set_fd(2);
        close(m.error_fd);
    }
    return rc;
}
