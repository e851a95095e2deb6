/*
 * cli_core: `easgate core`, the management core (server role), and the one
 * table of its commands. The commands live by subject, each file defining
 * its struct cli_cmd beside its code:
 *
 *   easgate core -c FILE                run: evaluate, resync, then keep the
 *                                       time-based rules and Redis up to date
 *   easgate core init-admin | token     accounts and API tokens (cli_auth.c)
 *   easgate core init-ca | enroll ...   the device CA and enrollment (cli_enroll.c)
 *   easgate core resync | evaluate | devices | device | audit
 *                                       the registry, directly (cli_registry.c)
 *
 * Also here: what those commands share (opening the core's context, the
 * actor named in the audit log, times in UTC).
 */
#include "cli/cli.h"

#include "common/log.h"
#include "common/logfile.h"
#include "core/api.h"
#include "core/ctx.h"
#include "core/run.h"
#include "enroll/cfg.h"
#include "enroll/srv.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define ERR_MAX 1024

/* ---- the table ------------------------------------------------------------ */

static const struct cli_cmd *const enroll_cmds[] = {
    &cli_enroll_invite_cmd, &cli_enroll_invitations_cmd, &cli_enroll_uninvite_cmd,
    &cli_enroll_device_cmd, &cli_enroll_renew_cmd,       &cli_enroll_certs_cmd,
    &cli_enroll_revoke_cmd, &cli_enroll_crl_cmd,         NULL,
};

static const struct cli_cmd enroll_cmd = {
    "enroll", "invitations, device certificates, revocation and the CRL",
    "usage: easgate core enroll COMMAND -c FILE [OPTIONS]\n"
    "  the enrollment role from the command line, for scripts and the break-glass\n"
    "  case (devices enroll over HTTPS on enroll.listen; docs/enrollment.md)\n",
    NULL, enroll_cmds};

static const struct cli_cmd *const core_cmds[] = {
    &cli_init_admin_cmd,
    &cli_token_cmd,
    &cli_init_ca_cmd,
    &enroll_cmd,
    &cli_resync_cmd,
    &cli_evaluate_cmd,
    &cli_devices_cmd,
    &cli_device_cmd,
    &cli_pending_cmd,
    &cli_audit_cmd,
    &cli_directory_cmd,
    &cli_notify_cmd,
    NULL,
};

static int core_main(int argc, char **argv);

const struct cli_cmd cli_core_cmd = {
    "core", "run the management core, or one of its commands (init-admin, init-ca, ...)",
    "usage: easgate core -c FILE\n"
    "       easgate core COMMAND [ARGS] -c FILE\n"
    "  run the management core configured in FILE (core: section): the registry,\n"
    "  the compliance engine, the admin API (core.listen) and the enrollment\n"
    "  endpoint (enroll.listen); or run one of its commands\n"
    "signals: HUP re-read the compliance rules, TERM/INT stop\n",
    core_main, core_cmds};

/* ---- easgate core -c FILE ------------------------------------------------- */

static volatile sig_atomic_t stop_flag, hup_flag;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        hup_flag = 1;
    else if (sig == SIGUSR1)
        logfile_reopen_all(); /* open/dup2/close only: safe in a handler */
    else
        stop_flag = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int core_main(int argc, char **argv)
{
    struct cli_core_opts o;
    int first, rc = cli_core_opts_parse(argc, argv, &o, &first);
    if (rc)
        return rc;
    /* Options before the word ("easgate core -c FILE resync"): the registry
     * commands share these options, so they may come first. */
    if (first < argc)
        return cli_redispatch(&cli_core_cmd, "easgate core", argc, argv, first);
    struct core_ctx c;
    enr_cfg_register(); /* its files are reported by /metrics (cli_core_logs) */
    rc = cli_core_open(&c, o.config, CORE_REDIS_TRY, "easgate core");
    if (rc)
        return rc;
    if (cli_core_logs(c.conf, true) < 0) {
        core_ctx_close(&c);
        return 2;
    }
    struct enr_srv *enr = NULL; /* the enrollment endpoint, when enroll.listen is set */
    char e[ERR_MAX];
    if (enr_srv_start(o.config, &enr, e, sizeof(e)) < 0) {
        fprintf(stderr, "easgate core: %s\n", e);
        rc = 2;
    }
    cli_core_invitations(enr);
    /* A certificate revoked through the admin API: this process's
     * enrollment role holds the CA key and rewrites the CRL at once. */
    if (enr)
        core_api_on_revoke(enr_srv_revoked, enr);
    if (rc == 0) {
        install_signals();
        rc = core_run(&c, &stop_flag, &hup_flag);
    }
    /* The API has stopped (core_run): nothing calls the endpoint now. */
    cli_core_invitations(NULL);
    core_api_on_revoke(NULL, NULL);
    enr_srv_stop(enr);
    core_ctx_close(&c);
    return rc;
}

/* ---- shared by the core's commands ----------------------------------------- */

void cli_core_invitations(struct enr_srv *enr)
{
    struct core_api_inv inv = {0};
    if (enr)
        enr_srv_invitations(enr, &inv);
    core_api_invitations(enr ? &inv : NULL);
}

/* The files whose expiry the core's /metrics reports (see cli.h). */
static const char *metric_certs[16], *metric_crls[16];

static void add_file(const char **list, size_t max, const char *path)
{
    for (size_t i = 0; path && i + 1 < max; i++) {
        if (list[i] && strcmp(list[i], path) == 0)
            return;
        if (!list[i]) {
            list[i] = path;
            return;
        }
    }
}

int cli_core_logs(const struct conf *conf, bool error_log)
{
    if (error_log && conf->log.error && strcmp(conf->log.error, "-") != 0) {
        int fd = logfile_open(conf->log.error, 2);
        if (fd < 0) {
            fprintf(stderr, "easgate core: log.error %s: %s\n", conf->log.error, strerror(-fd));
            return -1;
        }
        eg_log_set_fd(fd);
    }
    if (conf->log.access) {
        int fd = logfile_open(conf->log.access, 1);
        if (fd < 0) {
            fprintf(stderr, "easgate core: log.access %s: %s\n", conf->log.access, strerror(-fd));
            return -1;
        }
        core_api_set_log(fd);
    }
    /* Certificates and CRLs this host serves with, for the expiry alerts. */
    const struct core_cfg *cc = core_cfg_get(conf);
    const struct enr_cfg *ec = enr_cfg_get(conf);
    size_t nc = sizeof(metric_certs) / sizeof(metric_certs[0]);
    if (cc)
        add_file(metric_certs, nc, cc->tls.cert);
    if (ec) {
        add_file(metric_certs, nc, ec->tls.cert);
        add_file(metric_certs, nc, ec->ca.cert);
        add_file(metric_crls, nc, ec->crl_path);
    }
    core_api_metric_files(metric_certs, metric_crls);
    return 0;
}

int cli_core_open(struct core_ctx *c, const char *config, int redis, const char *what)
{
    memset(c, 0, sizeof(*c));
    if (!config) {
        fprintf(stderr, "%s: -c FILE is required\n", what);
        return CLI_USAGE;
    }
    char err[ERR_MAX];
    umask(CLI_CORE_UMASK);
    int rc = core_ctx_open(c, config, (enum core_redis_need)redis, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "%s%s\n", rc == 1 ? "easgate core: " : "", err);
        core_ctx_close(c);
    }
    return rc;
}

void cli_actor(char *buf, size_t len)
{
    const char *login = getenv("USER");
    snprintf(buf, len, "cli:%s", login && *login ? login : "unknown");
}

void cli_fmt_time(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
