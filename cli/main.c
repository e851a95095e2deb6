/*
 * easgate: one binary for every role and tool. This is the only file that
 * knows them all; it dispatches on the first word and nothing else.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#define EASGATE_VERSION "0.1.0"

struct cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

static const struct cli_cmd commands[] = {
    {"proxy", cli_proxy, "run the ActiveSync filtering proxy (-c FILE)"},
    {"core", cli_core, "run the management core, or: init-admin, init-ca, resync"},
    {"run", cli_run, "run every role the configuration file sets up (-c FILE)"},
    {"admin", cli_admin, "administer devices, users and invitations over the API"},
    {"check", cli_check, "validate the configuration and policy (-c FILE)"},
    {"eas", cli_eas, "decode ActiveSync request identity: eas query 'QUERY'"},
    {"wbxml", cli_wbxml, "convert ActiveSync WBXML: wbxml decode|encode [FILE]"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: easgate COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-7s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "  version print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("easgate %s\n", EASGATE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "easgate: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
