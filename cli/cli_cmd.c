/*
 * cli_cmd: the dispatcher over the command tables. See cli.h.
 *
 * Help is answered here, before a command parses anything, so no command
 * can forget it and none can start work when asked for its usage: a
 * -h/--help anywhere in a command's arguments (before "--") prints that
 * command's usage on stdout and exits 0. A group's usage ends with the list
 * of its subcommands, which is what tests/integration/test_cli_help.sh
 * walks.
 */
#include "cli/cli.h"

#include <string.h>

/* Longest command path in messages ("easgate core enroll invitations"). */
#define CLI_PATH_MAX 128

const struct cli_cmd *cli_find(const struct cli_cmd *const *table, const char *name)
{
    for (; table && *table; table++)
        if (strcmp((*table)->name, name) == 0)
            return *table;
    return NULL;
}

bool cli_help_asked(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}

void cli_usage(FILE *f, const struct cli_cmd *cmd, const char *path)
{
    fputs(cmd->usage, f);
    if (!cmd->sub)
        return;
    fprintf(f, "\ncommands:\n");
    for (const struct cli_cmd *const *c = cmd->sub; *c; c++)
        fprintf(f, "  %-12s %s\n", (*c)->name, (*c)->summary);
    fprintf(f, "\n'%s COMMAND --help' shows a command's usage.\n", path);
}

static void child_path(char *out, const char *path, const char *name)
{
    snprintf(out, CLI_PATH_MAX, "%s %s", path, name);
}

/* Help for a group whose first argument is not a subcommand: the usage of
 * the first argument that names one ("easgate admin --json devices -h"),
 * else the group's. */
static int group_help(const struct cli_cmd *g, const char *path, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const struct cli_cmd *c = cli_find(g->sub, argv[i]);
        if (c) {
            char p[CLI_PATH_MAX];
            child_path(p, path, c->name);
            return cli_dispatch(c, p, argc - i, argv + i);
        }
    }
    cli_usage(stdout, g, path);
    return 0;
}

int cli_dispatch(const struct cli_cmd *cmd, const char *path, int argc, char **argv)
{
    if (cmd->sub && argc >= 2) {
        const struct cli_cmd *c = cli_find(cmd->sub, argv[1]);
        if (c) {
            char p[CLI_PATH_MAX];
            child_path(p, path, c->name);
            return cli_dispatch(c, p, argc - 1, argv + 1);
        }
    }
    if (cli_help_asked(argc, argv))
        return cmd->sub ? group_help(cmd, path, argc, argv) : (cli_usage(stdout, cmd, path), 0);
    if (!cmd->run) {
        if (argc >= 2)
            fprintf(stderr, "%s: unknown command '%s'\n", path, argv[1]);
        else
            fprintf(stderr, "%s: give a command\n", path);
        cli_usage(stderr, cmd, path);
        return 2;
    }
    int rc = cmd->run(argc, argv);
    if (rc == CLI_USAGE) {
        cli_usage(stderr, cmd, path);
        return 2;
    }
    return rc;
}

int cli_redispatch(const struct cli_cmd *group, const char *path, int argc, char **argv, int word)
{
    const struct cli_cmd *c = word > 0 && word < argc ? cli_find(group->sub, argv[word]) : NULL;
    if (!c) {
        if (word > 0 && word < argc)
            fprintf(stderr, "%s: unknown command '%s'\n", path, argv[word]);
        cli_usage(stderr, group, path);
        return 2;
    }
    /* argv[0] (the group) gives way to the word; the rest keep their order. */
    char *w = argv[word];
    memmove(argv + 1, argv, (size_t)word * sizeof(*argv));
    argv[1] = w;
    char p[CLI_PATH_MAX];
    child_path(p, path, c->name);
    return cli_dispatch(c, p, argc - 1, argv + 1);
}
