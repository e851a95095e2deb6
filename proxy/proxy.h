/*
 * proxy: the ActiveSync filtering reverse proxy (easgate proxy -c FILE).
 *
 * proxy_main loads and validates the configuration and the policy, binds
 * every listener (so a port in use is reported before anything runs), starts
 * proxy.workers event-loop threads and serves the admin listener on the main
 * thread until SIGTERM/SIGINT has drained it. Returns the process exit status:
 * 0 after a clean drain, 1 when it could not start, 2 for a configuration
 * error. It never exits the process itself.
 */
#ifndef EG_PROXY_H
#define EG_PROXY_H

#include <stddef.h>

int proxy_main(const char *conf_path);

/* Load every instance's certificate, key, client CA and CRL, and upstream
 * CA, as the proxy would (for `easgate check`): 0, or -1 with "instance
 * NAME: FILE: what is wrong" in err. */
struct conf;
int proxy_check_tls(struct conf *c, char *err, size_t el);

#endif
