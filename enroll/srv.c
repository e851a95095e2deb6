/* enr_srv: the enrollment endpoint over common/httpd. See srv.h. */
#include "enroll/srv.h"

#include "common/log.h"
#include "common/tls.h"
#include "core/run.h"
#include "enroll/err.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CRL_CHECK_MS 60000 /* how often the CRL's age is looked at */
#define CRL_FILE_MAX (16 << 20)

struct enr_srv {
    struct core_ctx core;
    struct enr_ctx enr;
    struct tls_ctx *tls;
    uv_loop_t loop;
    uv_async_t stop;
    uv_timer_t crl;
    struct httpd *httpd;
    pthread_t thread;
};

static void answer(struct httpd_resp *r, int status, const char *type, char *body, size_t len)
{
    r->status = status;
    r->content_type = type;
    r->body = body;
    r->len = len;
}

static void answer_json(struct httpd_resp *r, int status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    answer(r, s ? status : 500, "application/json", s, s ? strlen(s) : 0);
}

static void answer_err(struct httpd_resp *r, int status, const char *msg)
{
    answer_json(r, status, json_pack("{s:s}", "error", msg));
}

static char *b64(const unsigned char *d, size_t n)
{
    char *o = malloc(4 * ((n + 2) / 3) + 1);
    if (o)
        EVP_EncodeBlock((unsigned char *)o, d, (int)n);
    return o;
}

static json_t *result_json(const struct enr_result *res)
{
    char na[32];
    time_t t = (time_t)(res->not_after_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "device_id", res->device_id, "user",
                          res->user, "email", res->email, "serial", res->serial, "not_after", na,
                          "certificate", res->cert_pem ? res->cert_pem : "");
    if (!o)
        return NULL;
    if (res->p12) {
        char *p = b64(res->p12, res->p12_len);
        json_object_set_new(o, "pkcs12", json_string(p ? p : ""));
        json_object_set_new(o, "pkcs12_password", json_string(res->p12_password));
        free(p);
    }
    if (res->profile) {
        char *p = b64(res->profile, res->profile_len);
        json_object_set_new(o, "profile", json_string(p ? p : ""));
        json_object_set_new(o, "profile_type", json_string(res->profile_type));
        free(p);
    }
    return o;
}

static void do_enroll(struct enr_ctx *c, const struct httpd_req *req, struct httpd_resp *resp,
                      int64_t now_ms, int renew)
{
    json_error_t je;
    json_t *in = json_loadb(req->body, req->body_len, 0, &je);
    if (!in || !json_is_object(in)) {
        char m[300];
        snprintf(m, sizeof(m), "the body must be a JSON object (%s at line %d column %d)", je.text,
                 je.line, je.column);
        json_decref(in);
        answer_err(resp, 400, m);
        return;
    }
    const char *key = json_string_value(json_object_get(in, "key"));
    const char *dev = json_string_value(json_object_get(in, "device_id"));
    const char *csr = json_string_value(json_object_get(in, "csr"));
    const char *plat = json_string_value(json_object_get(in, "platform"));
    int gen = json_is_true(json_object_get(in, "generate_key"));
    enum enr_platform p = ENR_PLAT_NONE;
    const char *bad = NULL;
    if (!dev)
        bad = "device_id (the EAS DeviceId) is required";
    else if (!renew && !key)
        bad = "key (the enrollment key) is required";
    else if (renew ? !csr : (!csr == !gen))
        bad = renew ? "csr is required" : "give either csr (PEM) or \"generate_key\": true";
    else if (enr_platform_parse(plat, &p) < 0)
        bad = "platform must be ios, android or none";
    if (bad) {
        json_decref(in);
        answer_err(resp, 400, bad);
        return;
    }
    struct enr_result res;
    char err[1024] = "";
    int rc;
    if (renew) {
        rc = enr_renew(c, dev, (const unsigned char *)csr, strlen(csr), now_ms, &res, err,
                       sizeof(err));
    } else {
        struct enr_request r = {.key = key,
                                .device_id = dev,
                                .csr = (const unsigned char *)csr,
                                .csr_len = csr ? strlen(csr) : 0,
                                .platform = p,
                                .address = req->peer};
        rc = enr_enroll(c, &r, now_ms, &res, err, sizeof(err));
    }
    json_decref(in);
    if (rc < 0) {
        int st = enr_err_status(rc);
        eg_info("enroll: %s from %s refused (%d): %s", renew ? "renewal" : "enrollment", req->peer,
                st, err);
        answer_err(resp, st, st >= 500 ? "internal error; see the server log" : err);
        if (st >= 500)
            eg_error("enroll: %s", err);
        return;
    }
    json_t *o = result_json(&res);
    enr_result_free(&res);
    if (!o)
        answer_err(resp, 500, "out of memory");
    else
        answer_json(resp, 200, o);
}

static void do_file(const char *path, const char *type, struct httpd_resp *resp)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    char err[512];
    if (enr_read_file(path, CRL_FILE_MAX, &buf, &len, err, sizeof(err)) < 0) {
        eg_warn("enroll: %s", err);
        answer_err(resp, 404, "not available");
        return;
    }
    answer(resp, 200, type, (char *)buf, len);
}

void enr_srv_handle(struct enr_ctx *c, const struct httpd_req *req, struct httpd_resp *resp,
                    int64_t now_ms)
{
    static const struct httpd_route routes[] = {
        {"POST", "/enroll/v1/enroll"},
        {"POST", "/enroll/v1/renew"},
        {"GET", "/enroll/v1/crl"},
        {"GET", "/enroll/v1/ca"},
        {NULL, NULL},
    };
    char params[HTTPD_PARAMS_MAX][HTTPD_PARAM_LEN];
    int r = httpd_route_match(routes, req->method, req->path, params);
    switch (r) {
    case 0:
    case 1:
        do_enroll(c, req, resp, now_ms, r == 1);
        return;
    case 2:
        enr_crl_update(c, false, now_ms, NULL, 0);
        do_file(c->cfg->crl_path, "application/pkix-crl", resp);
        return;
    case 3:
        do_file(c->cfg->ca.cert, "application/x-pem-file", resp);
        return;
    case -405:
        answer_err(resp, 405, "method not allowed");
        return;
    default:
        answer_err(resp, 404, "no such endpoint");
        return;
    }
}

static void on_request(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct enr_srv *s = arg;
    enr_srv_handle(&s->enr, req, resp, core_now_ms());
}

static void on_crl(uv_timer_t *t)
{
    struct enr_srv *s = t->data;
    char err[512];
    if (enr_crl_update(&s->enr, false, core_now_ms(), err, sizeof(err)) < 0)
        eg_error("enroll: CRL refresh failed: %s", err);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void on_stop(uv_async_t *a)
{
    struct enr_srv *s = a->data;
    if (s->httpd)
        httpd_stop(s->httpd);
    uv_close((uv_handle_t *)&s->crl, close_cb);
    uv_close((uv_handle_t *)&s->stop, close_cb);
}

static void *srv_main(void *arg)
{
    struct enr_srv *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void srv_free(struct enr_srv *s)
{
    enr_close(&s->enr);
    core_ctx_close(&s->core);
    tls_ctx_free(s->tls);
    free(s);
}

int enr_srv_start(const char *config, struct enr_srv **out, char *err, size_t errlen)
{
    *out = NULL;
    struct enr_srv *s = calloc(1, sizeof(*s));
    if (!s)
        return ENR_ENOMEM;
    enr_cfg_register();
    if (core_ctx_open(&s->core, config, CORE_REDIS_TRY, err, errlen) != 0) {
        srv_free(s);
        return ENR_EINVAL;
    }
    const struct enr_cfg *cfg = enr_cfg_get(s->core.conf);
    if (!cfg || cfg->listen.port == 0) {
        srv_free(s);
        return 0;
    }
    if (!cfg->tls.cert) {
        snprintf(err, errlen,
                 "enroll.listen %s needs enroll.tls (cert and key): enrollment "
                 "carries keys and certificates",
                 cfg->listen.text);
        srv_free(s);
        return ENR_EINVAL;
    }
    struct tls_server_opts to = {.cert = cfg->tls.cert, .key = cfg->tls.key};
    char e[512];
    if (tls_ctx_server(&to, &s->tls, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "enroll.tls: %s", e);
        srv_free(s);
        return ENR_EINVAL;
    }
    if (enr_open(&s->enr, cfg, &s->core.eng, err, errlen) < 0) {
        srv_free(s);
        return ENR_EINVAL;
    }
    uv_loop_init(&s->loop);
    struct httpd_opts ho = {.tls = s->tls, .max_body = (size_t)cfg->max_body, .keepalive = 1};
    int r = httpd_serve(&s->loop, (const struct sockaddr *)&cfg->listen.sa, &ho, on_request, s,
                        &s->httpd);
    if (r < 0) {
        snprintf(err, errlen, "enroll.listen %s: %s", cfg->listen.text, uv_strerror(r));
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        srv_free(s);
        return ENR_EIO;
    }
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    uv_timer_init(&s->loop, &s->crl);
    s->crl.data = s;
    uv_timer_start(&s->crl, on_crl, 0, CRL_CHECK_MS);
    if (pthread_create(&s->thread, NULL, srv_main, s) != 0) {
        snprintf(err, errlen, "enroll: cannot start its thread");
        on_stop(&s->stop);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        srv_free(s);
        return ENR_EIO;
    }
    eg_info("enroll: endpoint on https://%s/enroll/v1", cfg->listen.text);
    *out = s;
    return 0;
}

void enr_srv_stop(struct enr_srv *s)
{
    if (!s)
        return;
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    uv_loop_close(&s->loop);
    srv_free(s);
}
