/*
 * exsim: an Exchange ActiveSync simulator for tests and benchmarks.
 * exsim.c is the server (listeners, HTTP, routing, held Pings, stats);
 * exsim_answers.c builds the WBXML bodies. This header joins the two.
 */
#ifndef EG_EXSIM_H
#define EG_EXSIM_H

#include <stddef.h>

/* The policy keys exsim hands out in the two Provision phases. */
#define EXSIM_TEMP_POLICY_KEY "3141592653"
#define EXSIM_FINAL_POLICY_KEY "2718281828"

struct exsim_body {
    unsigned char *buf; /* malloc'd; free with exsim_body_free */
    size_t len;
};

/* Answer bodies; size is the rough target in bytes where it applies. Each
 * returns 0 or -1 (out of memory). */
int exsim_foldersync(struct exsim_body *b, size_t size);
int exsim_sync(struct exsim_body *b, size_t size);
int exsim_estimate(struct exsim_body *b);
int exsim_itemops(struct exsim_body *b, size_t size);
int exsim_ping(struct exsim_body *b, int status);
/* ack: the request carried a PolicyKey (second phase); devinfo: it carried
 * settings:DeviceInformation, which the answer acknowledges. */
int exsim_provision(struct exsim_body *b, int ack, int devinfo);
int exsim_settings(struct exsim_body *b, int devinfo);
void exsim_body_free(struct exsim_body *b);

#endif
