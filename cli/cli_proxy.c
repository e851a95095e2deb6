/* cli_proxy: easgate proxy -c FILE. Argument parsing only; proxy/ does the work. */
#include "cli/cli.h"

#include "proxy/proxy.h"

#include <stdio.h>
#include <string.h>

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
