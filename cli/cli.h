/*
 * cli: the easgate command line.
 *
 * Commands are tables of struct cli_cmd: main.c holds the top one (proxy,
 * core, run, admin, ...), cli_core.c the one of `easgate core` (its auth,
 * enrollment and registry commands live in cli_auth.c, cli_enroll.c and
 * cli_registry.c), cli_admin.c, cli_eas.c and cli_wbxml.c their own. One
 * dispatcher (cli_cmd.c) walks them, so every command and subcommand
 * answers -h/--help with its usage, a group lists its subcommands, and a
 * command that returns CLI_USAGE has its usage printed.
 *
 * Exit status of every command: 0 ok, 1 the thing asked failed, 2 usage or
 * configuration error. Only main() exits.
 */
#ifndef EG_CLI_H
#define EG_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Returned by a command's run: "print my usage on stderr", exit status 2.
 * The command prints what was wrong first. */
#define CLI_USAGE (-1)

struct cli_cmd {
    const char *name;
    const char *summary; /* one line in the parent's list */
    const char *usage;   /* the whole usage text: "usage: easgate ...\n..." */
    /*
     * argv[0] is name. For a group (sub set), run is what the group does
     * when its first argument is not a subcommand (NULL: an error); it may
     * parse options and hand over with cli_redispatch.
     */
    int (*run)(int argc, char **argv);
    const struct cli_cmd *const *sub; /* a group's subcommands, ended by NULL */
};

/*
 * Run cmd (argv[0] is its name; path "easgate core" names it in messages):
 * -h/--help anywhere before "--" prints the usage on stdout and returns 0;
 * a group passes on to the subcommand its first argument names.
 */
int cli_dispatch(const struct cli_cmd *cmd, const char *path, int argc, char **argv);

/*
 * For a group's run that parsed its options first ("easgate core -c FILE
 * resync"): argv[word] is the subcommand; it runs with its word moved to
 * the front, the other arguments in order.
 */
int cli_redispatch(const struct cli_cmd *group, const char *path, int argc, char **argv, int word);

const struct cli_cmd *cli_find(const struct cli_cmd *const *table, const char *name);
void cli_usage(FILE *f, const struct cli_cmd *cmd, const char *path);
bool cli_help_asked(int argc, char **argv);

/* ---- the commands, each defined beside its code ---- */

/* easgate proxy | run | check | eas | wbxml | admin (main.c's table) */
extern const struct cli_cmd cli_proxy_cmd, cli_run_cmd, cli_check_cmd, cli_eas_cmd, cli_wbxml_cmd,
    cli_admin_cmd;

/* easgate init (cli_init.c), easgate complete (cli_complete.c) */
extern const struct cli_cmd cli_init_cmd, cli_complete_cmd;

/* The top of the table (main.c), for walkers such as completion. */
extern const struct cli_cmd cli_easgate_cmd;

/* easgate core and its table (cli_core.c) */
extern const struct cli_cmd cli_core_cmd;
/* accounts and API tokens (cli_auth.c) */
extern const struct cli_cmd cli_init_admin_cmd, cli_token_cmd;
/* the device CA and enrollment (cli_enroll.c) */
extern const struct cli_cmd cli_init_ca_cmd, cli_enroll_invite_cmd, cli_enroll_invitations_cmd,
    cli_enroll_uninvite_cmd, cli_enroll_device_cmd, cli_enroll_renew_cmd, cli_enroll_certs_cmd,
    cli_enroll_revoke_cmd, cli_enroll_crl_cmd;
/* the registry, straight from SQLite (cli_registry.c) */
extern const struct cli_cmd cli_resync_cmd, cli_evaluate_cmd, cli_devices_cmd, cli_device_cmd,
    cli_audit_cmd, cli_pending_cmd, cli_directory_cmd, cli_notify_cmd;

struct cli_core_opts {
    const char *config;
    const char *user, *note, *type, *state, *managed, *after;
    const char *os, *os_version, *passcode, *encrypted, *jailbroken; /* device checkin */
    long limit;
    bool account_only; /* device wipe: AccountOnlyRemoteWipe */
    bool allow;        /* pending approve: and an admin allow override */
};
/*
 * The options of `easgate core` and its registry commands (getopt_long,
 * permuting): 0 with argv[*first..argc) the words, 2 after a bad value,
 * CLI_USAGE after an option it does not know.
 */
int cli_core_opts_parse(int argc, char **argv, struct cli_core_opts *o, int *first);

/* ---- helpers the core's commands share (cli_core.c) ---- */

struct core_ctx;

/*
 * Open the core's context from config for the command named what ("easgate
 * core resync"); redis is an enum core_redis_need. 0, or an exit status
 * with the error printed: CLI_USAGE when config is NULL (-c FILE missing),
 * 1 or 2 as core_ctx_open. The context is closed again on failure.
 */
int cli_core_open(struct core_ctx *c, const char *config, int redis, const char *what);

/*
 * The umask of every command that opens the registry (cli_core_open, `run`
 * with core:): what the core writes (the registry, its logs, the CA's
 * files, certificates) is never readable by others, and writable by the
 * owner only; the group may read the logs (adm, logrotate).
 */
#define CLI_CORE_UMASK 0027

/*
 * The core's log: section (cli_core.c): log.error opened (when error_log:
 * the proxy opens it itself in `easgate run`), the admin API's request log
 * on log.access, and the certificate and CRL files /metrics reports. 0, or
 * -1 with the error printed. SIGUSR1 reopens them (logfile_reopen_all).
 */
struct conf;
int cli_core_logs(const struct conf *conf, bool error_log);

/*
 * The core's admin API answers /api/v1/invitations through the enrollment
 * endpoint running in the same process (core/api.h): set it with the
 * endpoint before the core runs, clear it (NULL) after the core stopped and
 * before the endpoint stops.
 */
struct enr_srv;
void cli_core_invitations(struct enr_srv *enr);

/* One line from stdin; with a terminal, prompted and without echo. 0 or -1 (cli_auth.c). */
int cli_read_password(const char *prompt, char *pw, size_t n);

/* "cli:$USER", who the audit log says did it. */
void cli_actor(char *buf, size_t len);
/* UTC "2026-11-22T03:18:03Z"; "-" for 0 or less. */
void cli_fmt_time(int64_t ms, char *buf, size_t len);

#endif
