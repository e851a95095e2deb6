/* cli_proxy: easgate proxy -c FILE. Argument parsing only; proxy/ does the work. */
#include "cli/cli.h"

#include "proxy/proxy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where the installed easgate-proxy-lean is (dist/install.cmake). */
#ifndef EG_LEAN_PROXY
#define EG_LEAN_PROXY "/usr/local/libexec/easgate/easgate-proxy-lean"
#endif

/* Run easgate-proxy-lean (cli/lean/proxy_lean.c) in this process's place:
 * the same proxy without the other roles' libraries, 4-5 MiB less RSS. It
 * is looked for beside this binary (a build tree), then where it is
 * installed. Returns only if it cannot be run (not built, not installed,
 * EASGATE_LEAN_PROXY=0): then this binary runs the proxy itself. */
static void exec_lean(const char *conf)
{
    const char *opt = getenv("EASGATE_LEAN_PROXY");
    if (opt && strcmp(opt, "0") == 0)
        return;
    char self[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    const char *cands[2] = {NULL, EG_LEAN_PROXY};
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            snprintf(path, sizeof(path), "%s/easgate-proxy-lean", self);
            cands[0] = path;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (!cands[i] || access(cands[i], X_OK) != 0)
            continue;
        char *const args[] = {(char *)cands[i], "-c", (char *)conf, NULL};
        execv(cands[i], args);
        fprintf(stderr, "easgate proxy: cannot run %s (%m); going on without it\n", cands[i]);
    }
}

static int run_proxy(int argc, char **argv)
{
    const char *conf = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            conf = argv[++i];
        } else {
            fprintf(stderr, "easgate proxy: unexpected argument '%s'\n", argv[i]);
            return CLI_USAGE;
        }
    }
    if (!conf) {
        fprintf(stderr, "easgate proxy: -c FILE is required\n");
        return CLI_USAGE;
    }
    exec_lean(conf);
    return proxy_main(conf);
}

extern const struct cli_cmd cli_proxy_explain_cmd;
static const struct cli_cmd *const proxy_sub[] = {&cli_proxy_explain_cmd, NULL};

const struct cli_cmd cli_proxy_cmd = {
    "proxy", "run the ActiveSync filtering proxy (-c FILE)",
    "usage: easgate proxy -c FILE\n"
    "       easgate proxy explain -c FILE 'QUERY' [-H 'Name: value']...\n"
    "  run the ActiveSync filtering proxy configured in FILE (proxy: section),\n"
    "  or explain how it decides one request (easgate proxy explain --help)\n"
    "signals: HUP reload configuration and policy, TERM/INT drain and stop,\n"
    "         USR1 reopen log files\n",
    run_proxy, proxy_sub};
