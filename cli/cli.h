/*
 * cli: the easgate command line. main.c dispatches on the first word; each
 * command lives in its own cli_*.c and returns the process exit status
 * (0 ok, 1 failure of the thing asked, 2 usage or configuration error).
 */
#ifndef EG_CLI_H
#define EG_CLI_H

int cli_proxy(int argc, char **argv); /* easgate proxy -c FILE */
int cli_run(int argc, char **argv);   /* easgate run -c FILE: every role configured */
int cli_core(int argc, char **argv);  /* easgate core -c FILE | core init-admin|init-ca|resync */
int cli_admin(int argc, char **argv); /* easgate admin ...: CLI over the admin API */
/* easgate core init-admin|token (argv[0] is the word): accounts and API tokens */
int cli_core_auth(int argc, char **argv);
int cli_check(int argc, char **argv); /* easgate check -c FILE */
int cli_eas(int argc, char **argv);   /* easgate eas query 'QUERY' */
int cli_wbxml(int argc, char **argv); /* easgate wbxml decode|encode [FILE] */

#endif
