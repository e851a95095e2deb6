/*
 * cli_auth: `easgate core init-admin` and `easgate core token`, which create
 * accounts and mint API tokens straight in the registry (no API needed:
 * that is how the first credentials come to exist). `easgate admin login`
 * reads its password the same way (cli_read_password).
 */
#include "cli/cli.h"

#include "core/auth.h"
#include "core/ctx.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PW_MAX 1100

/* One line from stdin; with a terminal, prompted and without echo. 0 or -1. */
int cli_read_password(const char *prompt, char *pw, size_t n)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *r = fgets(pw, (int)n, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!r)
        return -1;
    pw[strcspn(pw, "\r\n")] = '\0';
    return 0;
}

static const char init_admin_usage[] =
    "usage: easgate core init-admin -c FILE --user NAME [--role admin|viewer]\n"
    "  create an account straight in the registry (how the first admin comes to\n"
    "  exist); the password is read from stdin, or prompted for twice\n";
static const char token_usage[] =
    "usage: easgate core token -c FILE --user NAME [--role admin|viewer|device] [--name LABEL]\n"
    "  mint an API token for the account straight in the registry; printed once\n";

static int run_auth(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"user", required_argument, NULL, 'u'},
        {"role", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *user = NULL, *role_s = NULL, *label = NULL;
    bool init = strcmp(argv[0], "init-admin") == 0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:u:r:n:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            config = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'r':
            role_s = optarg;
            break;
        case 'n':
            label = optarg;
            break;
        default:
            return CLI_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "easgate core %s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return CLI_USAGE;
    }
    if (!config || !user) {
        fprintf(stderr, "easgate core %s: %s is required\n", argv[0],
                !config ? "-c FILE" : "--user NAME");
        return CLI_USAGE;
    }
    int role = role_s ? core_role_parse(role_s) : CORE_ROLE_ADMIN;
    if (role < 0 || (init && role == CORE_ROLE_DEVICE)) {
        fprintf(stderr, "easgate core %s: --role must be admin or viewer%s\n", argv[0],
                init ? "" : " or device");
        return 2;
    }
    struct core_ctx c;
    char err[1024];
    int rc = cli_core_open(&c, config, CORE_REDIS_NO,
                           init ? "easgate core init-admin" : "easgate core token");
    if (rc)
        return rc;
    struct core_auth *a = NULL;
    if (core_auth_open(c.reg, &a) < 0) {
        fprintf(stderr, "easgate core: cannot open the accounts tables\n");
        core_ctx_close(&c);
        return 1;
    }
    int64_t now = core_now_ms();
    rc = 0;
    if (init) {
        char pw[PW_MAX], pw2[PW_MAX];
        if (cli_read_password("password: ", pw, sizeof(pw)) < 0) {
            fprintf(stderr, "easgate core init-admin: no password given (stdin was empty)\n");
            rc = 1;
        } else if (isatty(STDIN_FILENO) &&
                   (cli_read_password("again: ", pw2, sizeof(pw2)) < 0 || strcmp(pw, pw2) != 0)) {
            fprintf(stderr, "easgate core init-admin: the passwords differ\n");
            rc = 1;
        } else if (core_auth_account_add(a, user, (enum core_role)role, pw, now, err, sizeof(err)) <
                   0) {
            fprintf(stderr, "easgate core init-admin: %s\n", err);
            rc = 1;
        } else {
            core_reg_audit_add(c.reg, "cli", "", "account.create", user,
                               core_role_name((enum core_role)role), now);
            printf("account '%s' created with role %s\n", user,
                   core_role_name((enum core_role)role));
        }
        memset(pw, 0, sizeof(pw));
    } else {
        char token[CORE_TOKEN_MAX];
        int64_t id = 0;
        int r = core_auth_token_mint(a, user, (enum core_role)role, label, now, token, &id);
        if (r == CORE_AUTH_ENOTFOUND) {
            fprintf(stderr, "easgate core token: no account '%s' (create it with init-admin)\n",
                    user);
            rc = 1;
        } else if (r == CORE_AUTH_EINVAL) {
            fprintf(stderr,
                    "easgate core token: '%s' is not an admin; it cannot mint an %s token\n", user,
                    core_role_name((enum core_role)role));
            rc = 1;
        } else if (r < 0) {
            fprintf(stderr, "easgate core token: minting failed (registry error)\n");
            rc = 1;
        } else {
            char target[32];
            snprintf(target, sizeof(target), "token:%lld", (long long)id);
            core_reg_audit_add(c.reg, "cli", "", "token.mint", target,
                               core_role_name((enum core_role)role), now);
            printf("%s\n", token);
            fprintf(stderr, "token %lld (%s, account %s); it is shown only this once\n",
                    (long long)id, core_role_name((enum core_role)role), user);
        }
    }
    core_auth_close(a);
    core_ctx_close(&c);
    return rc;
}

const struct cli_cmd cli_init_admin_cmd = {
    "init-admin", "create an account (the first admin); password from stdin", init_admin_usage,
    run_auth, NULL};
const struct cli_cmd cli_token_cmd = {"token", "mint an API token for an account", token_usage,
                                      run_auth, NULL};
