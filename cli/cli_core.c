/* cli_core: placeholder until the core command lands; it says so and fails. */
#include "cli/cli.h"

#include <stdio.h>

int cli_core(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "easgate core: not built yet\n");
    return 2;
}
