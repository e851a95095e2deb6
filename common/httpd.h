/*
 * httpd: a tiny HTTP/1.1 server for operational endpoints (health checks,
 * metrics). One request per connection, answered and closed; the head is
 * bounded (8 KiB) and must arrive within 5 s. Not for traffic: the proxy's
 * data plane has its own machinery.
 */
#ifndef EG_HTTPD_H
#define EG_HTTPD_H

#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

struct httpd;

struct httpd_resp {
    int status;
    const char *content_type;
    char *body; /* malloc'd by the handler, freed by httpd; NULL = empty */
    size_t len;
};

/* Called on the loop thread for each request. method "GET", path without
 * the query. Fill resp; status 0 means 404. */
typedef void (*httpd_handler)(void *arg, const char *method, const char *path,
                              struct httpd_resp *resp);

/* Listen on addr. 0 or a negative libuv error (the address is in use...). */
int httpd_start(uv_loop_t *loop, const struct sockaddr *addr, httpd_handler fn, void *arg,
                struct httpd **out);
/* Stop listening and close open connections; freed once the loop runs the
 * close callbacks. */
void httpd_stop(struct httpd *h);

#endif
