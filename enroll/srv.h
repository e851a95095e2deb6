/*
 * enr_srv: the enrollment endpoint, HTTPS on enroll.listen.
 *
 *   POST /enroll/v1/enroll  {"key", "device_id", "csr" (PEM) | "generate_key": true,
 *                            "platform": "ios"|"android"|"none"}
 *   POST /enroll/v1/renew   {"device_id", "csr" (PEM, signed by the current key)}
 *   GET  /enroll/v1/crl     the CRL (DER, application/pkix-crl)
 *   GET  /enroll/v1/ca      the device CA certificate (PEM)
 *
 * Success is 200 with {"device_id", "user", "email", "serial", "not_after",
 * "certificate" (PEM), "pkcs12" + "pkcs12_password" (server-made keys),
 * "profile" (base64) + "profile_type"}; failure is the 4xx of enroll/err.h
 * with {"error": "what went wrong"}.
 *
 * The server runs on its own thread and loop with its own registry
 * connection, Redis connection and engine (core_ctx_open on the same
 * file), so it never blocks the core's loop or the admin API. It also
 * keeps the CRL fresh (rewritten at half its validity).
 */
#ifndef EG_ENR_SRV_H
#define EG_ENR_SRV_H

#include "common/httpd.h"
#include "core/api.h"
#include "enroll/enr.h"

#include <stddef.h>

struct enr_srv;

/* Start it if config has enroll.listen; *out = NULL (and 0) when it has not. */
int enr_srv_start(const char *config, struct enr_srv **out, char *err, size_t errlen);
void enr_srv_stop(struct enr_srv *s);

/*
 * The entry point the core's API answers /api/v1/invitations through when
 * both roles run in one process (core/api.h, core_api_invitations): its
 * calls run on this server's thread with the same handlers, checks and
 * audit lines as /enroll/v1/invitations. Stop the core's API before s.
 */
void enr_srv_invitations(struct enr_srv *s, struct core_api_inv *out);

/* A certificate was revoked in the registry by someone else (the admin
 * API: core_api_on_revoke): rewrite the CRL on the server's loop, at once.
 * Any thread; srv is a struct enr_srv that has not been stopped. */
void enr_srv_revoked(void *srv);

/* One request against c (what the server calls; tests call it directly). */
void enr_srv_handle(struct enr_ctx *c, const struct httpd_req *req, struct httpd_resp *resp,
                    int64_t now_ms);

#endif
