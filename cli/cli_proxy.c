/* cli_proxy: easgate proxy -c FILE. Argument parsing only; proxy/ does the work. */
#include "cli/cli.h"

#include "proxy/proxy.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: easgate proxy -c FILE\n"
               "  run the ActiveSync filtering proxy configured in FILE (proxy: section)\n"
               "signals: HUP reload configuration and policy, TERM/INT drain and stop,\n"
               "         USR1 reopen log files\n");
}

int cli_proxy(int argc, char **argv)
{
    const char *conf = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            conf = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "easgate proxy: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!conf) {
        fprintf(stderr, "easgate proxy: -c FILE is required\n");
        usage(stderr);
        return 2;
    }
    return proxy_main(conf);
}
