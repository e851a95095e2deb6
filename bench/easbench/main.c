/*
 * easbench: micro-benchmarks of the ActiveSync protocol library, one per
 * subcommand. Numbers go to stdout, one line per case, so bench/run.sh and
 * people read the same thing. Timing uses CLOCK_MONOTONIC over millions of
 * iterations; nothing here is a pass/fail test.
 */
#include <stdio.h>
#include <string.h>

int easbench_query(int argc, char **argv); /* easbench_query.c */
/* easbench_wbxml.c belongs to the WBXML codec; weak so this tool links
 * (and says so) while that file does not exist yet. */
int easbench_wbxml(int argc, char **argv) __attribute__((weak));

static void usage(FILE *f)
{
    fprintf(f, "usage: easbench query [-n ITERATIONS]   request identity (plain, base64, headers)\n"
               "       easbench wbxml [ARGS]            WBXML walk and extraction\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "query") == 0)
        return easbench_query(argc - 1, argv + 1);
    if (strcmp(argv[1], "wbxml") == 0) {
        if (!easbench_wbxml) {
            fprintf(stderr,
                    "easbench wbxml: not built (bench/easbench/easbench_wbxml.c missing)\n");
            return 2;
        }
        return easbench_wbxml(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "easbench: unknown benchmark '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
