/*
 * httpd: a small HTTP/1.1 server for the operational endpoints (health
 * checks, metrics) and the management core's JSON API. Not for traffic: the
 * proxy's data plane has its own machinery.
 *
 * Handlers run on the loop thread. They answer at once (synchronously), or
 * hold the request (httpd_hold) and answer it later from the loop thread
 * (httpd_answer) once some other thread has done the work: a connection
 * parses no further request while one is held, so answers still leave in
 * request order and pipelining stays simple. Each connection owns its
 * request buffers (head bounded to 16 KiB, body to max_body: 413 past it);
 * all of it is freed with the connection. Malformed HTTP gets 400 and a
 * close, never more.
 *
 * Two ways in:
 *   httpd_start:  the original one (GET-style, one request per connection,
 *                 the handler sees method and path only) for /healthz and
 *                 /metrics;
 *   httpd_serve:  TLS (common/tls), keep-alive, headers, query, bodies, the
 *                 client's address: what an API needs.
 */
#ifndef EG_HTTPD_H
#define EG_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

struct httpd;
struct tls_ctx;

struct httpd_resp {
    int status;
    const char *content_type;
    char *body; /* malloc'd by the handler, freed by httpd; NULL = empty */
    size_t len;
    int retry_after; /* seconds: a Retry-After header (with 503), 0 = none */
    /* More header lines, each ending in CRLF ("Set-Cookie: ...\r\n"),
     * malloc'd by the handler and freed by httpd like body; NULL = none. */
    char *headers;
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

/* ---- the full server --------------------------------------------------- */

#define HTTPD_PEER_MAX 64

/* One request, valid during the handler call only. */
struct httpd_req {
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* raw path, without the query */
    const char *query;           /* raw query after '?', "" if none */
    const char *authorization;   /* the Authorization header, NULL if absent */
    const char *content_type;    /* NULL if absent */
    const char *cookie;          /* the Cookie header(s), NULL if absent */
    const char *csrf;            /* the X-CSRF-Token header, NULL if absent */
    const char *accept_language; /* NULL if absent (cut at 255 bytes) */
    const char *body;            /* NUL-terminated for convenience; "" if none */
    size_t body_len;
    const char *peer; /* client address, "127.0.0.1" / "::1" */
    void *conn;       /* private: the connection, for httpd_hold */
};

typedef void (*httpd_req_fn)(void *arg, const struct httpd_req *req, struct httpd_resp *resp);

struct httpd_opts {
    struct tls_ctx *tls; /* server context (borrowed, outlives the server); NULL = plain */
    size_t max_body;     /* bytes; a longer body gets 413 and the connection closes */
    int keepalive;       /* 0 = one request per connection */
    int64_t idle_ms;     /* a connection with nothing to do is closed after; 0 = 30 s */
    int max_connections; /* over it new connections are closed at once; 0 = 1024 */
    /* From one client address at most this many; more are closed at once,
     * so that one client cannot hold the listener. 0 = no cap. */
    int max_per_client;
    /* A request (head and body) must arrive whole within this from its
     * first byte (the first request: from the accept, TLS handshake
     * included). Never renewed by the bytes that trickle in. 0 = 5 s. */
    int64_t head_ms;
};

int httpd_serve(uv_loop_t *loop, const struct sockaddr *addr, const struct httpd_opts *o,
                httpd_req_fn fn, void *arg, struct httpd **out);

/*
 * Answering later. A handler that passes the work to another thread calls
 * httpd_hold(req) and leaves resp alone; the request's strings are valid
 * only during the handler, so copy what the work needs. The connection
 * reads no further request, and its idle timeout is off, until the answer:
 * httpd_answer(h, resp) on the loop thread, exactly once per hold, queues
 * resp (taking resp->body) and goes on with the connection. A connection
 * that closed meanwhile (the client left, httpd_stop) is freed then and the
 * answer dropped, so every hold must be answered, even after httpd_stop.
 * NULL when out of memory (answer at once instead).
 */
struct httpd_hold;
struct httpd_hold *httpd_hold(const struct httpd_req *req);
void httpd_answer(struct httpd_hold *h, struct httpd_resp *resp);

/* ---- routing ------------------------------------------------------------ */

/* A route: method and a pattern whose ":name" segments match one path
 * segment each ("/api/v1/devices/:id/:action"). The table ends with a
 * NULL pattern. */
struct httpd_route {
    const char *method;
    const char *pattern;
};

#define HTTPD_PARAMS_MAX 4
#define HTTPD_PARAM_LEN 128

/*
 * Match path against the table: the index of the route, with the ":name"
 * segments copied (percent-decoded) into params in order; -404 when no
 * pattern matches, -405 when a pattern matches but not with this method,
 * -400 when a segment is too long or badly encoded.
 */
int httpd_route_match(const struct httpd_route *table, const char *method, const char *path,
                      char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN]);

/* The value of key in a raw query string, percent-decoded into out
 * (+ is a space). 1 found, 0 absent, -1 too long or badly encoded. */
int httpd_query_get(const char *query, const char *key, char *out, size_t outlen);

/* Percent-decode n bytes of s into out (NUL-terminated). 0 or -1. */
int httpd_pct_decode(const char *s, size_t n, char *out, size_t outlen, int plus_space);

#endif
