/*
 * cli_check: what `easgate check` shares between its files: cli_check.c
 * (the loaders, the effective settings) and cli_check_env.c (the host the
 * roles will start on: names, ports, files, modes).
 */
#ifndef EG_CLI_CHECK_H
#define EG_CLI_CHECK_H

#include "common/conf.h"

#include <stdbool.h>

struct check_env {
    const char *path; /* the configuration file, for messages */
    bool offline;     /* --offline: upstream names are not resolved */
    int errors, warnings;
};

/* Look at the host for c: errors and warnings are printed and counted in e. */
void check_env(struct check_env *e, const struct conf *c);

#endif
