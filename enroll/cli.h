/*
 * enr_cli: the enrollment commands of the command line, reached through
 * `easgate core init-ca ...` and `easgate core enroll ...` (cli/cli_core.c
 * hands argv over from its first word on). Exit status as cli/cli.h: 0 ok,
 * 1 the thing asked failed, 2 usage or configuration error.
 */
#ifndef EG_ENR_CLI_H
#define EG_ENR_CLI_H

/* argv[0] is "init-ca" or "enroll". */
int enr_cli(int argc, char **argv);

#endif
