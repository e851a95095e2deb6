/*
 * cli_complete: `easgate complete -- WORDS...`, what bash completion asks
 * (dist/bash-completion/easgate). WORDS are the command line after
 * "easgate" up to the word being completed; the answer, one candidate per
 * line, is what may come next:
 *
 *   - after an option that takes a path (its usage names FILE, DIR, POLICY,
 *     PREFIX or a file type): the line "@file", and the shell completes
 *     file names;
 *   - after an option with choices ("--role admin|viewer|device"): them;
 *   - after an option with any other argument (N, URL, NAME): nothing;
 *   - else the subcommands of the deepest command named so far, and the
 *     options its usage text shows.
 *
 * Everything comes from the command table and its usage texts, the ones
 * --help prints, so completion cannot drift from the commands.
 */
#include "cli/cli.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define COMPLETE_TOK_MAX 64

/* The argument an option takes in cmd's usage ("FILE", "admin|viewer"),
 * into arg; false if the usage does not show opt, or shows it bare. */
static bool option_arg(const char *usage, const char *opt, char *arg, size_t n, bool *found)
{
    size_t ol = strlen(opt);
    *found = false;
    for (const char *p = usage; (p = strstr(p, opt)) != NULL; p += ol) {
        bool start = p == usage || strchr(" [(|\n", p[-1]);
        bool end = !isalnum((unsigned char)p[ol]) && p[ol] != '-';
        if (!start || !end)
            continue;
        *found = true;
        const char *a = p + ol;
        if (*a == '=')
            a++;
        else if (*a == ' ')
            a++;
        else
            return false;
        size_t l = 0;
        while (a[l] && !strchr(" ])\n", a[l]))
            l++;
        if (l == 0 || a[0] == '-' || a[0] == '[' || a[0] == '(' || l >= n)
            return false;
        /* An argument is written in capitals (FILE, N) or as choices (a|b). */
        bool caps = isupper((unsigned char)a[0]), choices = memchr(a, '|', l) != NULL;
        if (!caps && !choices)
            return false;
        memcpy(arg, a, l);
        arg[l] = '\0';
        return true;
    }
    return false;
}

static bool is_path_arg(const char *arg)
{
    static const char *const pathy[] = {"FILE", "DIR",  "POLICY", "PREFIX", ".png",
                                        ".pem", ".p12", "KEY",    NULL};
    for (int i = 0; pathy[i]; i++)
        if (strstr(arg, pathy[i]))
            return true;
    return false;
}

/* Every option token (-x, --long) of a usage text, once each. */
static void print_options(const char *usage)
{
    char seen[4096] = " ";
    for (const char *p = usage; *p; p++) {
        if (*p != '-' || (p != usage && !strchr(" [(|\n", p[-1])))
            continue;
        size_t l = 1;
        while (p[l] && (isalnum((unsigned char)p[l]) || p[l] == '-'))
            l++;
        bool lng = p[1] == '-';
        bool ok = lng ? isalpha((unsigned char)p[2]) : l == 2 && isalpha((unsigned char)p[1]);
        if (!ok || l >= COMPLETE_TOK_MAX)
            continue;
        char tok[COMPLETE_TOK_MAX + 2];
        snprintf(tok, sizeof(tok), " %.*s ", (int)l, p);
        if (strstr(seen, tok))
            continue;
        if (strlen(seen) + strlen(tok) < sizeof(seen))
            strcat(seen, tok + 1);
        printf("%.*s\n", (int)l, p);
    }
}

static int run_complete(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--") != 0) {
        fprintf(stderr, "easgate complete: give '--' and the words typed so far\n");
        return CLI_USAGE;
    }
    const struct cli_cmd *cmd = &cli_easgate_cmd;
    char arg[COMPLETE_TOK_MAX];
    bool found;
    for (int i = 2; i < argc; i++) {
        const char *w = argv[i];
        if (w[0] == '-') {
            /* An option taking an argument swallows the next word. */
            if (!strchr(w, '=') && option_arg(cmd->usage, w, arg, sizeof(arg), &found)) {
                if (i + 1 == argc) {
                    if (is_path_arg(arg)) {
                        printf("@file\n");
                    } else if (strchr(arg, '|')) {
                        for (char *c = strtok(arg, "|"); c; c = strtok(NULL, "|"))
                            printf("%s\n", c);
                    }
                    return 0;
                }
                i++;
            }
            continue;
        }
        const struct cli_cmd *s = cli_find(cmd->sub, w);
        if (s)
            cmd = s;
    }
    for (const struct cli_cmd *const *c = cmd->sub; c && *c; c++)
        if (*c != &cli_complete_cmd)
            printf("%s\n", (*c)->name);
    print_options(cmd->usage);
    if (cmd != &cli_easgate_cmd)
        printf("--help\n");
    return 0;
}

const struct cli_cmd cli_complete_cmd = {
    "complete", "what may follow a command line (for bash completion)",
    "usage: easgate complete -- [WORD...]\n"
    "  the subcommands and options that may follow 'easgate WORD...', one a line;\n"
    "  \"@file\" when a file name comes next (dist/bash-completion/easgate uses it)\n",
    run_complete, NULL};
