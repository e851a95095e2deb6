/*
 * core_run: the management core as a running service, over a context
 * opened by core_ctx_open (core/ctx.h).
 *
 * core_run() is the loop of `easgate core -c FILE` and of the core inside
 * `easgate run`: evaluate everything, resync, start the writer (core/wr.h:
 * every change, the due timers, the buffered times) and the admin API,
 * then wait for sightings up to one tick at a time, hand each batch to the
 * writer, and resync Redis whenever the writer's pushes are held back. It
 * returns when *stop becomes non-zero (checked at least once per tick).
 * Signals are the caller's business: the CLI sets *stop on TERM/INT and
 * *reload on HUP; `easgate run` lets the proxy own the signals.
 */
#ifndef EG_CORE_RUN_H
#define EG_CORE_RUN_H

#include "core/ctx.h"

#include <signal.h>

/* Run until *stop; *reload (may be NULL) re-reads the rules. 0 or 1 on a fatal error. */
int core_run(struct core_ctx *c, volatile sig_atomic_t *stop, volatile sig_atomic_t *reload);

#endif
