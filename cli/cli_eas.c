/* cli_eas: placeholder until the eas command lands; it says so and fails. */
#include "cli/cli.h"

#include <stdio.h>

int cli_eas(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "easgate eas: not built yet\n");
    return 2;
}
