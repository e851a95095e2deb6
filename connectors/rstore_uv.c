/*
 * rstore_uv: hiredis's async API driven by a libuv loop.
 *
 * Our own glue rather than hiredis's adapters/libuv.h, for two reasons that
 * matter here: that adapter restarts the poll handle (an epoll_ctl pair) on
 * every queued command, which made a burst of misses cost ~10 us each; and it
 * ignores poll errors, so a refused connect never reported back. This one
 * touches the poll handle only when the wanted events change, and on an error
 * lets hiredis look at the socket and report it.
 *
 * hiredis 0.14 calls every pending callback with a NULL reply when a context
 * is freed, and defers the free when asked from inside one of its own
 * callbacks; rstore_link.c leans on both.
 */
#include "connectors/rstore_int.h"

#include <errno.h>
#include <stdlib.h>

struct rs_poll {
    uv_poll_t h;
    redisAsyncContext *ac;
    int events;
};

static void rs_poll_cb(uv_poll_t *h, int status, int events)
{
    struct rs_poll *p = h->data;
    if (status < 0)
        events = p->events; /* hiredis reads the socket error itself */
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void rs_poll_set(struct rs_poll *p, int events)
{
    if (events == p->events)
        return;
    p->events = events;
    if (events)
        uv_poll_start(&p->h, events, rs_poll_cb);
    else
        uv_poll_stop(&p->h);
}

static void rs_add_read(void *d)
{
    struct rs_poll *p = d;
    rs_poll_set(p, p->events | UV_READABLE);
}

static void rs_del_read(void *d)
{
    struct rs_poll *p = d;
    rs_poll_set(p, p->events & ~UV_READABLE);
}

static void rs_add_write(void *d)
{
    struct rs_poll *p = d;
    rs_poll_set(p, p->events | UV_WRITABLE);
}

static void rs_del_write(void *d)
{
    struct rs_poll *p = d;
    rs_poll_set(p, p->events & ~UV_WRITABLE);
}

static void rs_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void rs_cleanup(void *d)
{
    struct rs_poll *p = d;
    p->ac = NULL; /* hiredis is freeing the context */
    uv_close((uv_handle_t *)&p->h, rs_poll_closed);
}

int rs_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct rs_poll *p = calloc(1, sizeof(*p));
    if (!p)
        return RSTORE_ENOMEM;
    if (uv_poll_init(loop, &p->h, ac->c.fd) < 0) {
        free(p);
        return RSTORE_EREDIS;
    }
    p->h.data = p;
    p->ac = ac;
    ac->ev.data = p;
    ac->ev.addRead = rs_add_read;
    ac->ev.delRead = rs_del_read;
    ac->ev.addWrite = rs_add_write;
    ac->ev.delWrite = rs_del_write;
    ac->ev.cleanup = rs_cleanup;
    return 0;
}
