/* cli_admin: placeholder until the admin command lands; it says so and fails. */
#include "cli/cli.h"

#include <stdio.h>

int cli_admin(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "easgate admin: not built yet\n");
    return 2;
}
