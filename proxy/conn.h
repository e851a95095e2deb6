/*
 * conn: one client connection and the request it is working on.
 *
 * A connection parses requests with llhttp, one at a time: the parser pauses
 * when a head is complete (to route and decide) and when a message is
 * complete (pipelined requests wait until the answer before them is out, so
 * answers leave in order). Bytes that arrive while paused wait in a small
 * stash; reading stops when the stash or the upstream's write queue is full.
 *
 * The decision point (decide.c) is asked at the head, after a body read
 * first and after the device's state lookup; the connection applies each
 * verdict: answer, forward (upstream.c), read the body, look the device up.
 *
 * Memory: between requests a connection holds its struct, its TLS session
 * and nothing else; the head buffer, the request struct and any body read
 * for a decision live only as long as the request. A held Ping keeps only the
 * request struct and a compact log record. The structs are in conn_int.h,
 * shared by conn.c and the conn_*.c files only.
 */
#ifndef EG_CONN_H
#define EG_CONN_H

#include <uv.h>

struct worker;
struct instance;
struct rstore_result;

/* Accept a connection on listener (the worker's, for inst). */
void conn_accept(struct worker *w, const struct instance *inst, uv_stream_t *listener);

/* Drain: held Pings are answered now, idle connections close, requests in
 * flight finish and then close. */
void conn_drain_all(struct worker *w);
/* Close every connection now (stop). */
void conn_close_all(struct worker *w);

/* Every client connection is bounded (timeouts.max_connection_age,
 * limits.max_requests_per_connection) so that nothing a connection was
 * admitted with (its certificate, a policy since changed) stays in force
 * for ever. At a limit the connection closes after its current answer
 * (Connection: close); a held Ping is answered first (the "no changes"
 * form: the phone comes back on a new connection). conn_sweep_age retires
 * this worker's connections past their age (the 1 s tick). */
void conn_sweep_age(struct worker *w);
/* The client CRL changed: connections whose verified certificate it now
 * revokes are closed at once, a held Ping answered first. */
void conn_revoke_check(struct worker *w);

/* The state store's change callback (arg: the worker; device_id NULL: the
 * cache was rebuilt after a reconnect). A Ping held by a device that may
 * no longer sync is answered at once, so the phone comes back and meets
 * the new decision. */
void conn_state_changed(void *arg, const char *device_id, const struct rstore_result *res);

#endif
