/*
 * easgate: one binary for every role and tool. This file holds the top of
 * the command table and nothing else; each command's struct cli_cmd lives
 * beside its code, and cli_cmd.c walks the tables (help, usage, errors).
 */
#include "cli/cli.h"

#include "common/version.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int run_version(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "easgate version: unexpected argument '%s'\n", argv[1]);
        return CLI_USAGE;
    }
    printf("easgate %s\ncommit %s\n", eg_version(), eg_commit());
    return 0;
}

static int run_help(int argc, char **argv);

static const struct cli_cmd version_cmd = {"version", "print the version (also --version, -V)",
                                           "usage: easgate version\n", run_version, NULL};

static const struct cli_cmd help_cmd = {
    "help", "the usage of easgate, or of a command: help [COMMAND [SUBCOMMAND]]",
    "usage: easgate help [COMMAND [SUBCOMMAND ...]]\n"
    "       easgate help --man\n"
    "  the same as 'easgate COMMAND [SUBCOMMAND ...] --help'; --man prints easgate(8)\n",
    run_help, NULL};

static const struct cli_cmd *const commands[] = {
    &cli_init_cmd, &cli_proxy_cmd, &cli_core_cmd, &cli_run_cmd,      &cli_admin_cmd, &cli_check_cmd,
    &cli_eas_cmd,  &cli_wbxml_cmd, &version_cmd,  &cli_complete_cmd, &help_cmd,      NULL,
};

const struct cli_cmd cli_easgate_cmd = {
    "easgate", NULL,
    "usage: easgate COMMAND [ARGS]\n"
    "       easgate --version | -V\n"
    "  the ActiveSync gate: every role (proxy, core, enrollment) and its tools\n",
    NULL, commands};

/* ---- easgate help --man: easgate(8), from this table ------------------------ */

/* Text for a roff line: backslashes doubled, a leading dot or quote guarded. */
static void roff(const char *text)
{
    bool bol = true;
    for (const char *p = text; *p; p++) {
        if (bol && (*p == '.' || *p == '\''))
            fputs("\\&", stdout);
        if (*p == '\\')
            fputs("\\e", stdout);
        else if (*p == '-')
            fputs("\\-", stdout);
        else
            putchar(*p);
        bol = *p == '\n';
    }
}

static void man_commands(const struct cli_cmd *c, const char *path)
{
    if (c != &cli_easgate_cmd) {
        printf(".TP\n.B %s\n%s\n.RS\n.nf\n", path, c->summary ? c->summary : "");
        roff(c->usage);
        printf(".fi\n.RE\n");
    }
    for (const struct cli_cmd *const *s = c->sub; s && *s; s++) {
        char p[128];
        snprintf(p, sizeof(p), "%s %s", path, (*s)->name);
        man_commands(*s, p);
    }
}

static const char man_head[] =
    ".TH EASGATE 8 \"\" \"easgate %s\" \"System Administration\"\n"
    ".SH NAME\n"
    "easgate \\- Exchange ActiveSync filtering reverse proxy, management core and enrollment\n"
    ".SH SYNOPSIS\n"
    ".B easgate\n.I COMMAND\n.RI [ ARGS ]\n.br\n"
    ".B easgate\n.BR \\-\\-version \" | \" \\-V\n"
    ".SH DESCRIPTION\n"
    "One binary runs every role: the ActiveSync filtering proxy\n.RB ( \"easgate proxy\" ),\n"
    "the management core with the device registry, compliance engine and admin API\n"
    ".RB ( \"easgate core\" ),\n"
    "and both with the enrollment endpoint in one process\n.RB ( \"easgate run\" ).\n"
    "The tools beside them set up, check and administer a site.\n"
    "Every command and subcommand answers\n.B \\-h\nand\n.B \\-\\-help\n"
    "with its usage, as does\n.BR \"easgate help\" \" COMMAND\".\n"
    ".PP\n"
    "A new site: install the package, run\n.BR \"easgate init \\-\\-system\" ,\n"
    "check the result with\n.BR \"easgate check\" ,\n"
    "start\n.BR easgate.service ,\n"
    "then invite users with\n.BR \"easgate admin invite\" .\n"
    ".SH COMMANDS\n"
    "This list is generated from the command table; each entry is the command's\n"
    ".B \\-\\-help\ntext.\n";

static const char man_tail[] =
    ".SH ENVIRONMENT\n"
    ".TP\n.B EASGATE_URL, EASGATE_TOKEN, EASGATE_CACERT\n"
    "where the admin API is, the bearer token, and the CA of its certificate, for\n"
    ".BR \"easgate admin\" .\n"
    ".TP\n.B EASGATE_ENROLL_URL, EASGATE_ENROLL_CACERT\n"
    "the enrollment server and its CA, for the invitation commands.\n"
    ".TP\n.B EASGATE_ADMIN_CONFIG\n"
    "the admin client's file (default\n.IR ~/.config/easgate/admin.yaml ,\n"
    "or under\n.BR XDG_CONFIG_HOME ):\n"
    ".BR url ,\n.BR cacert ,\n.BR token_file ,\n.BR enroll_url ,\n.BR enroll_cacert .\n"
    "Options win over the environment, which wins over the file.\n"
    ".SH FILES\n"
    ".TP\n.I /etc/easgate/easgate.yaml\nthe configuration (easgate.yaml(5)).\n"
    ".TP\n.I /etc/easgate/policy.yaml\nthe policy (easgate\\-policy(5)).\n"
    ".TP\n.I /etc/easgate/tls/\nthe server's and the admin API's keys and certificates.\n"
    ".TP\n.I /var/lib/easgate/\nthe registry (registry.db) and the device CA (ca/), the easgate "
    "user's only.\n"
    ".TP\n.I /var/log/easgate/\nthe access log, rotated by logrotate with SIGUSR1.\n"
    ".SH SIGNALS\n"
    "HUP reloads the configuration and policy (the core: its compliance rules);\n"
    "TERM and INT drain and stop; USR1 reopens the log files.\n"
    ".SH EXIT STATUS\n"
    "0 done; 1 the thing asked failed; 2 usage or configuration error.\n"
    ".SH SEE ALSO\n"
    ".BR easgate.yaml (5),\n.BR easgate\\-policy (5),\n"
    ".IR /usr/share/doc/easgate/ :\n"
    "configuration.md, operations.md, core.md, enrollment.md, exchange.md, upgrade.md.\n";

static int run_help(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--man") == 0) {
        printf(man_head, eg_version());
        man_commands(&cli_easgate_cmd, "easgate");
        fputs(man_tail, stdout);
        return 0;
    }
    const struct cli_cmd *c = &cli_easgate_cmd;
    char path[128] = "easgate";
    for (int i = 1; i < argc; i++) {
        const struct cli_cmd *s = cli_find(c->sub, argv[i]);
        if (!s) {
            fprintf(stderr, "%s: no command '%s'\n", path, argv[i]);
            cli_usage(stderr, c, path);
            return 2;
        }
        size_t l = strlen(path);
        snprintf(path + l, sizeof(path) - l, " %s", s->name);
        c = s;
    }
    cli_usage(stdout, c, path);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0))
        return run_version(1, argv);
    return cli_dispatch(&cli_easgate_cmd, "easgate", argc, argv);
}
