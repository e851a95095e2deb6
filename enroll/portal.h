/*
 * enr_portal: the self-service enrollment pages behind the invitation link
 * (enroll.url + /enroll?key=KEY, the link and QR code of every invitation).
 *
 *   GET  /enroll?key=K       who invited the user and for which account, the
 *                            platform choice (a form), what happens next;
 *   POST /enroll             key, platform (ios | android | other): the key
 *                            is used (enr_portal_enroll) and the page gives
 *                            the download (a signed .mobileconfig for iOS, a
 *                            PKCS#12 for the others) with its password and
 *                            the steps for the platform's mail apps;
 *   GET  /enroll/dl/TOKEN    that download, for DOWNLOAD_MS after the POST;
 *   GET  /enroll/portal.css  the one stylesheet.
 *
 * Server-rendered HTML with no script and no inline style, so the strictest
 * Content-Security-Policy holds; every value a page shows is escaped
 * (sbuf_xml). Viewing the page uses nothing: mail scanners and link
 * previews fetch links, so only the POST, which a person makes, spends the
 * key. English and Japanese (enroll/msg.h). Refusals are pages with the
 * status that fits (400 malformed key, 404 unknown key, 410 used, expired
 * or withdrawn, 429 rate limit), never JSON.
 *
 * Every request but the stylesheet counts against a per-address and a
 * per-key budget (enroll.portal_per_address, enroll.portal_per_key within
 * enroll.portal_window), past which the answer is 429 with Retry-After.
 *
 * One portal is used by the enrollment server's thread only.
 */
#ifndef EG_ENR_PORTAL_H
#define EG_ENR_PORTAL_H

#include "common/httpd.h"
#include "enroll/enr.h"

#include <stdint.h>

struct enr_portal;

/* NULL without memory. */
struct enr_portal *enr_portal_new(const struct enr_cfg *cfg);
void enr_portal_free(struct enr_portal *p);

/* 1 when req is a portal page (resp filled), 0 when it is not. */
int enr_portal_handle(struct enr_portal *p, struct enr_ctx *c, const struct httpd_req *req,
                      struct httpd_resp *resp, int64_t now_ms);

#endif
