/*
 * limits: open connections in total and per client address, across every
 * worker. The total is one atomic; the per-address counts sit in a small
 * chained hash under a mutex, touched once at accept and once at close.
 */
#include "proxy/limits.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define IPC_BUCKETS 4096

struct ip_count {
    struct ip_count *next;
    uint8_t ip[16];
    int n;
};

void limits_ip_key(const struct sockaddr *sa, uint8_t out[16])
{
    memset(out, 0, 16);
    if (sa->sa_family == AF_INET) {
        /* as ::ffff:a.b.c.d, so a dual-stack listener counts the same */
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static uint32_t ip_hash(const uint8_t ip[16])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 16; i++)
        h = (h ^ ip[i]) * 16777619u;
    return h % IPC_BUCKETS;
}

void limits_init(struct limits *l)
{
    l->open_total = 0;
    l->ipc = NULL;
    pthread_mutex_init(&l->lock, NULL);
}

static struct ip_count **buckets(struct limits *l)
{
    if (!l->ipc)
        l->ipc = calloc(IPC_BUCKETS, sizeof(struct ip_count *));
    return l->ipc;
}

int limits_admit(struct limits *l, const uint8_t key[16], int max_total, int max_per)
{
    int64_t total = __atomic_add_fetch(&l->open_total, 1, __ATOMIC_RELAXED);
    if (max_total > 0 && total > max_total) {
        __atomic_sub_fetch(&l->open_total, 1, __ATOMIC_RELAXED);
        return -1;
    }
    const uint8_t *ip = key;
    pthread_mutex_lock(&l->lock);
    struct ip_count **b = buckets(l);
    if (!b) {
        pthread_mutex_unlock(&l->lock);
        return 0;
    }
    uint32_t hv = ip_hash(ip);
    struct ip_count *e = b[hv];
    while (e && memcmp(e->ip, ip, 16) != 0)
        e = e->next;
    if (e && max_per > 0 && e->n >= max_per) {
        pthread_mutex_unlock(&l->lock);
        __atomic_sub_fetch(&l->open_total, 1, __ATOMIC_RELAXED);
        return -2;
    }
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (e) {
            memcpy(e->ip, ip, 16);
            e->next = b[hv];
            b[hv] = e;
        }
    }
    if (e)
        e->n++;
    pthread_mutex_unlock(&l->lock);
    return 0;
}

void limits_release(struct limits *l, const uint8_t key[16])
{
    __atomic_sub_fetch(&l->open_total, 1, __ATOMIC_RELAXED);
    const uint8_t *ip = key;
    pthread_mutex_lock(&l->lock);
    struct ip_count **b = l->ipc;
    if (b) {
        struct ip_count **pp = &b[ip_hash(ip)];
        while (*pp && memcmp((*pp)->ip, ip, 16) != 0)
            pp = &(*pp)->next;
        if (*pp && --(*pp)->n <= 0) {
            struct ip_count *e = *pp;
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&l->lock);
}

void limits_free(struct limits *l)
{
    struct ip_count **b = l->ipc;
    if (b) {
        for (size_t i = 0; i < IPC_BUCKETS; i++) {
            while (b[i]) {
                struct ip_count *e = b[i];
                b[i] = e->next;
                free(e);
            }
        }
        free(b);
        l->ipc = NULL;
    }
    pthread_mutex_destroy(&l->lock);
}
