/* cli_run: placeholder until the run command lands; it says so and fails. */
#include "cli/cli.h"

#include <stdio.h>

int cli_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "easgate run: not built yet\n");
    return 2;
}
