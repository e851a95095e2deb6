/*
 * loop: runs a worker (worker.h) on a thread of its own, with its own libuv
 * loop: listeners, wake-ups from other threads, the one-second tick, drain
 * and stop. Nothing in a worker is touched by another thread except through
 * loop_post() (an uv_async) and the relaxed-atomic metrics.
 */
#ifndef EG_LOOP_H
#define EG_LOOP_H

struct worker;

/* Start the thread (w->listen_fds must be bound sockets, one per
 * instance). 0 or a negative libuv error. */
int loop_start(struct worker *w);

/* Wake the worker to pick up w->pending_snap / pending_drain /
 * pending_stop (set under px->lock). Any thread. */
void loop_post(struct worker *w);

/* After the thread returned (w->done): free what the worker owned. */
void loop_free(struct worker *w);

#endif
