/*
 * limits: open connections in total and per client address, across every
 * worker of the process (limits.max_connections and
 * max_connections_per_client). Touched once at accept and once at close,
 * from any worker thread.
 */
#ifndef EG_LIMITS_H
#define EG_LIMITS_H

#include <pthread.h>
#include <stdint.h>

struct sockaddr;
struct ip_count;

struct limits {
    int64_t open_total;    /* atomic */
    struct ip_count **ipc; /* per client address counts, guarded by lock; made on first use */
    pthread_mutex_t lock;
};

void limits_init(struct limits *l);
void limits_free(struct limits *l);

/* A client address as the 16-byte key the limits count by (IPv4 as
 * ::ffff:a.b.c.d, so a dual-stack listener counts it the same). */
void limits_ip_key(const struct sockaddr *sa, uint8_t out[16]);

/* Count one connection from key: 0 admitted (release it with
 * limits_release), -1 over the total limit, -2 over the per-client limit
 * (nothing counted). A limit of 0 or less is no limit. */
int limits_admit(struct limits *l, const uint8_t key[16], int max_total, int max_per);
void limits_release(struct limits *l, const uint8_t key[16]);

#endif
