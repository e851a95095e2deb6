/*
 * cli_run: `easgate run -c FILE` runs every role the file configures in one
 * process, for small sites and the demo: the proxy (proxy:) on the main
 * thread, the management core (core:) on a thread of its own, and the
 * enrollment endpoint (enroll.listen, needs core:) on its own thread as
 * `easgate core` runs it. They still meet only through Redis and the
 * registry, exactly as separate processes would.
 *
 * Signals belong to the proxy (HUP reload, TERM/INT drain, USR1 reopen
 * logs): the core thread blocks them, and stops when the proxy returns.
 * With a core but no proxy this is `easgate core -c FILE`.
 */
#include "cli/cli.h"

#include "common/conf.h"
#include "common/log.h"
#include "common/logfile.h"
#include "core/api.h"
#include "core/ctx.h"
#include "core/run.h"
#include "enroll/cfg.h"
#include "enroll/srv.h"
#include "proxy/proxy.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct core_thread {
    struct core_ctx ctx;
    volatile sig_atomic_t stop;
    int rc;
};

static void *core_main(void *arg)
{
    struct core_thread *t = arg;
    t->rc = core_run(&t->ctx, &t->stop, NULL);
    return NULL;
}

static volatile sig_atomic_t core_only_stop, core_only_hup;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        logfile_reopen_all(); /* open/dup2/close only: safe in a handler */
    else if (sig == SIGHUP)
        core_only_hup = 1;
    else
        core_only_stop = 1;
}

static int run_run(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else {
            fprintf(stderr, "easgate run: unexpected argument '%s'\n", argv[i]);
            return CLI_USAGE;
        }
    }
    if (!path) {
        fprintf(stderr, "easgate run: -c FILE is required\n");
        return CLI_USAGE;
    }
    /* Look first: which roles does the file set up? */
    char err[1024];
    struct conf *conf = NULL;
    core_cfg_register();
    enr_cfg_register();
    if (conf_load(path, &conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    bool has_proxy = conf->has_proxy, has_core = core_cfg_get(conf) != NULL;
    conf_free(conf);
    if (!has_proxy && !has_core) {
        fprintf(stderr, "%s: neither proxy: nor core: is configured; nothing to run\n", path);
        return 2;
    }

    static struct core_thread t;
    if (has_core) {
        umask(CLI_CORE_UMASK);
        int rc = core_ctx_open(&t.ctx, path, CORE_REDIS_TRY, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "%s%s\n", rc == 1 ? "easgate run: core: " : "", err);
            core_ctx_close(&t.ctx);
            return rc;
        }
        /* With a proxy, the proxy opens log.error and owns SIGUSR1 (its
         * handler reopens these files too). */
        if (cli_core_logs(t.ctx.conf, !has_proxy) < 0) {
            core_ctx_close(&t.ctx);
            return 2;
        }
    }
    /* Started with every signal blocked: its thread inherits the mask, so
     * signals reach the proxy (or the core alone) as before. */
    struct enr_srv *enr = NULL;
    if (has_core) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        int r = enr_srv_start(path, &enr, err, sizeof(err));
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
            fprintf(stderr, "easgate run: %s\n", err);
            core_ctx_close(&t.ctx);
            return 2;
        }
        if (enr) {
            eg_info("run: enrollment endpoint started");
            core_api_on_revoke(enr_srv_revoked, enr); /* the API's revocations: the CRL at once */
        }
    }
    if (!has_proxy) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGUSR1, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        cli_core_invitations(enr);
        int rc = core_run(&t.ctx, &core_only_stop, &core_only_hup);
        cli_core_invitations(NULL);
        core_api_on_revoke(NULL, NULL);
        enr_srv_stop(enr);
        core_ctx_close(&t.ctx);
        return rc;
    }

    pthread_t tid;
    bool started = false;
    if (has_core) {
        cli_core_invitations(enr);
        /* The thread inherits this mask: every signal goes to the proxy. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        started = pthread_create(&tid, NULL, core_main, &t) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!started) {
            fprintf(stderr, "easgate run: cannot start the core thread\n");
            cli_core_invitations(NULL);
            core_api_on_revoke(NULL, NULL);
            enr_srv_stop(enr);
            core_ctx_close(&t.ctx);
            return 1;
        }
        eg_info("run: core started beside the proxy");
    }
    int rc = proxy_main(path);
    /* The core first: its API may be waiting for the enrollment endpoint
     * to answer an invitation call. */
    if (started) {
        t.stop = 1; /* seen within one core tick */
        pthread_join(tid, NULL);
        core_ctx_close(&t.ctx);
        if (rc == 0)
            rc = t.rc;
    }
    cli_core_invitations(NULL);
    core_api_on_revoke(NULL, NULL);
    enr_srv_stop(enr);
    return rc;
}

const struct cli_cmd cli_run_cmd = {
    "run", "run every role the configuration file sets up (-c FILE)",
    "usage: easgate run -c FILE\n"
    "  run every role FILE configures (proxy:, core:, enroll.listen) in one process\n"
    "signals: as for easgate proxy (HUP reload, TERM/INT drain and stop, USR1 reopen logs);\n"
    "         the core re-reads its compliance rules only when restarted\n",
    run_run, NULL};
