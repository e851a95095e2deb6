/*
 * core_notify: the two ways out, SMTP and webhook POSTs, both over libcurl
 * and both called only by the sender thread (a send may take up to the
 * configured timeout; nothing else waits for it).
 *
 * SMTP: smtp:// with STARTTLS required (CURLUSESSL_ALL: a server that does
 * not offer it is an error, never a silent downgrade) unless tls: none;
 * smtps:// for implicit TLS. The server's certificate is verified against
 * ca_file or the system store unless verify: false.
 *
 * Webhooks: the body is signed with HMAC-SHA256 over "<timestamp>.<body>"
 * (docs/notifications.md shows how a receiver checks it); the timestamp
 * lets the receiver refuse replays.
 */
#include "core/notify_int.h"

#include "common/log.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct upload {
    const char *p;
    size_t left;
};

static size_t read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    struct upload *u = arg;
    size_t n = size * nitems < u->left ? size * nitems : u->left;
    memcpy(buf, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

static size_t discard_cb(char *buf, size_t size, size_t nitems, void *arg)
{
    return size * nitems;
}

int core_smtp_send(const struct core_notify_cfg *cfg, const char *password, const char *to,
                   const char *msg, size_t len, bool *permanent, char *err, size_t errlen)
{
    *permanent = false;
    CURL *h = curl_easy_init();
    if (!h) {
        eg_errf(err, errlen, "libcurl: no handle");
        return -1;
    }
    char rcpt[300];
    snprintf(rcpt, sizeof(rcpt), "<%s>", to);
    struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
    char from[300];
    snprintf(from, sizeof(from), "<%s>", cfg->smtp.from);
    struct upload u = {msg, len};
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, cfg->smtp.url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    if (cfg->smtp.tls == CORE_SMTP_STARTTLS)
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    if (cfg->smtp.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg->smtp.ca_file);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, cfg->smtp.verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, cfg->smtp.verify ? 2L : 0L);
    if (cfg->smtp.username) {
        curl_easy_setopt(h, CURLOPT_USERNAME, cfg->smtp.username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, password ? password : "");
    }
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, &u);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg->smtp.timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->smtp.timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(rcpts);
    curl_easy_cleanup(h);
    if (rc == CURLE_OK)
        return 0;
    /* 5xx to MAIL/RCPT/DATA: the server refuses this mail for good. */
    *permanent = code >= 500 && code < 600 && rc != CURLE_LOGIN_DENIED;
    eg_errf(err, errlen, "smtp %s: %s%s%s (reply %ld)", cfg->smtp.url, curl_easy_strerror(rc),
            *ebuf ? ": " : "", ebuf, code);
    return -1;
}

void core_webhook_sign(const char *secret, const char *ts, const char *body, size_t len,
                       char out[72])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    /* EVP_MAC: the timestamp, the dot and the body without joining them. */
    size_t tl = strlen(ts);
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = m ? EVP_MAC_CTX_new(m) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t ml = 0;
    if (c && EVP_MAC_init(c, (const unsigned char *)secret, strlen(secret), params) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)ts, tl) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)".", 1) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)body, len) == 1 &&
        EVP_MAC_final(c, mac, &ml, sizeof(mac)) == 1)
        mlen = (unsigned int)ml;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(m);
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < mlen && i < 32; i++)
        snprintf(out + 7 + 2 * i, 3, "%02x", mac[i]);
    out[7 + 2 * (mlen < 32 ? mlen : 32)] = 0;
}

int core_webhook_send(const struct core_webhook_cfg *w, const char *secret, const char *event,
                      int64_t id, const char *body, size_t len, int64_t now_ms, bool *permanent,
                      char *err, size_t errlen)
{
    *permanent = false;
    CURL *h = curl_easy_init();
    if (!h) {
        eg_errf(err, errlen, "libcurl: no handle");
        return -1;
    }
    char ts[32], sig[72], hdr[4][160];
    snprintf(ts, sizeof(ts), "%lld", (long long)(now_ms / 1000));
    core_webhook_sign(secret, ts, body, len, sig);
    snprintf(hdr[0], sizeof(hdr[0]), "X-Easgate-Timestamp: %s", ts);
    snprintf(hdr[1], sizeof(hdr[1]), "X-Easgate-Signature: %s", sig);
    snprintf(hdr[2], sizeof(hdr[2]), "X-Easgate-Event: %s", event);
    snprintf(hdr[3], sizeof(hdr[3]), "X-Easgate-Delivery: %lld", (long long)id);
    struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
    for (int i = 0; i < 4; i++)
        hs = curl_slist_append(hs, hdr[i]);
    hs = curl_slist_append(hs, "Expect:");
    char ebuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, w->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (w->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, w->ca_file);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, w->verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, w->verify ? 2L : 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hs);
    curl_easy_cleanup(h);
    if (rc == CURLE_OK && code >= 200 && code < 300)
        return 0;
    if (rc == CURLE_OK) {
        *permanent = code >= 400 && code < 500 && code != 408 && code != 429;
        eg_errf(err, errlen, "webhook %s: HTTP %ld", w->name, code);
    } else {
        eg_errf(err, errlen, "webhook %s: %s%s%s", w->name, curl_easy_strerror(rc),
                *ebuf ? ": " : "", ebuf);
    }
    return -1;
}
