/* answer: easr plans and bodies into a fixed buffer (no allocation). */
#include "proxy/answer.h"

#include <string.h>

static int legacy(struct answer *a, int status)
{
    a->http_status = status;
    a->content_type = NULL;
    a->body = NULL;
    a->len = 0;
    return 0;
}

int answer_eas(enum easq_cmd cmd, int version, enum easr_situation sit, struct answer *a)
{
    struct easr_plan plan;
    memset(a, 0, sizeof(*a) - sizeof(a->buf));
    if (easr_plan(version, cmd, sit, &plan) < 0)
        return legacy(a,
                      sit == EASR_SIT_BAD_DEVICE_ID || sit == EASR_SIT_INVALID_WBXML ? 400 : 403);
    a->http_status = plan.http_status;
    if (!plan.wbxml)
        return 0;
    struct wbxml_w w;
    wbxml_w_init(&w, a->buf, sizeof(a->buf));
    easr_status_body(&w, cmd, plan.eas_status);
    const uint8_t *out;
    size_t len;
    if (wbxml_w_finish(&w, &out, &len) < 0)
        return legacy(a,
                      sit == EASR_SIT_BAD_DEVICE_ID || sit == EASR_SIT_INVALID_WBXML ? 400 : 403);
    a->content_type = ANSWER_WBXML_TYPE;
    a->body = out;
    a->len = len;
    return 0;
}

int answer_ping_expired(struct answer *a)
{
    memset(a, 0, sizeof(*a) - sizeof(a->buf));
    struct wbxml_w w;
    wbxml_w_init(&w, a->buf, sizeof(a->buf));
    easr_status_body(&w, EASQ_CMD_PING, 1);
    const uint8_t *out;
    size_t len;
    if (wbxml_w_finish(&w, &out, &len) < 0)
        return -1;
    a->http_status = 200;
    a->content_type = ANSWER_WBXML_TYPE;
    a->body = out;
    a->len = len;
    return 0;
}
