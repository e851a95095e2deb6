/*
 * answer: the ActiveSync answers the proxy gives itself, in the form the
 * client's protocol version expects (eas/easr.h decides the form and
 * builds the WBXML; this is the glue to HTTP).
 */
#ifndef EG_ANSWER_H
#define EG_ANSWER_H

#include "eas/easq.h"
#include "eas/easr.h"

#include <stddef.h>
#include <stdint.h>

#define ANSWER_WBXML_TYPE "application/vnd.ms-sync.wbxml"

struct answer {
    int http_status;
    const char *content_type; /* NULL: no body */
    const uint8_t *body;
    size_t len;
    uint8_t buf[128];
};

/* The answer for sit to a cmd request of this protocol version (141 =
 * 14.1, 0 unknown). 0, or -1 if no form could be built (the caller then
 * answers the legacy HTTP status). */
int answer_eas(enum easq_cmd cmd, int version, enum easr_situation sit, struct answer *a);

/* A Ping answer "heartbeat expired, no changes" (Status 1): the phone simply
 * sends its next Ping, and meets whatever the decision is then. */
int answer_ping_expired(struct answer *a);

#endif
