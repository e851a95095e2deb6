/* cli_wbxml: placeholder until the wbxml command lands; it says so and fails. */
#include "cli/cli.h"

#include <stdio.h>

int cli_wbxml(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "easgate wbxml: not built yet\n");
    return 2;
}
