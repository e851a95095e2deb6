/*
 * easgate: one binary for every role and tool. This file holds the top of
 * the command table and nothing else; each command's struct cli_cmd lives
 * beside its code, and cli_cmd.c walks the tables (help, usage, errors).
 */
#include "cli/cli.h"

#include "common/version.h"

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
    "  the same as 'easgate COMMAND [SUBCOMMAND ...] --help'\n",
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

static int run_help(int argc, char **argv)
{
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
