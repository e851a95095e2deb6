/* cli_check: placeholder until the check command lands; it says so and fails. */
#include "cli/cli.h"

#include <stdio.h>

int cli_check(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "easgate check: not built yet\n");
    return 2;
}
