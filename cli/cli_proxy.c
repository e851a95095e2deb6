/* cli_proxy: placeholder until the proxy command lands; it says so and fails. */
#include "cli/cli.h"

#include <stdio.h>

int cli_proxy(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "easgate proxy: not built yet\n");
    return 2;
}
