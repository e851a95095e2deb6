/* admin: /healthz, /readyz and /metrics on the main thread's loop. */
#ifndef EG_ADMIN_H
#define EG_ADMIN_H

#include "common/httpd.h"
#include "proxy/worker.h"

int admin_start(struct proxy *px, uv_loop_t *loop, const struct sockaddr *addr, struct httpd **out);

#endif
