/*
 * exsim: a stand-in for Exchange that speaks just enough ActiveSync for the
 * proxy's integration tests, the demo and the benchmarks.
 *
 * One libuv loop per process; --workers N forks N processes that each listen
 * on the same port through SO_REUSEPORT, because a held Ping costs a file
 * descriptor and a process may have only so many. Answers are prebuilt at
 * start (or built per request when a test asks for a size), so a request
 * costs a parse, one lookup and one write: the simulator must never be what
 * a benchmark measures. Every answer echoes what exsim saw in X-Exsim-*
 * headers so tests can check what the proxy forwarded.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llhttp.h>
#include <uv.h>

#include "bench/exsim/exsim.h"
#include "bench/exsim/exsim_auth.h"
#include "bench/lib/beas.h"
#include "bench/lib/bnet.h"

#define URL_MAX 2048
#define HVAL_MAX 256
#define BODY_KEEP (64 * 1024) /* request body kept for parsing (WBXML commands) */
#define PENDING_MAX (64 * 1024)
#define NCMD 23         /* command codes 0..22 */
#define AUTHZ_MAX 12288 /* Authorization kept for exsim_auth (NTLM messages are small) */

struct opts {
    const char *listen, *plain_listen;
    const char *cert, *key;
    int ping_cap;     /* seconds */
    int ping_default; /* seconds, when the Ping names no interval */
    size_t sync_size, fetch_size, folder_size;
    int workers;
    int quiet;
    const char *auth, *users;
    const char *prefix; /* served under this path ("" = at the root) */
    int drop_reused;    /* close a connection when its second request starts */
};

static struct opts opt = {
    .ping_cap = 3600,
    .ping_default = 60,
    .sync_size = 512,
    .fetch_size = 4096,
    .folder_size = 0,
    .workers = 1,
    .prefix = "",
};

enum hdr {
    H_NONE,
    H_HOST,
    H_EXPECT,
    H_PROTO,
    H_SIZE,
    H_HOLD,
    H_CTYPE,
    H_XFF,
    H_AUTHZ,
    H_CLOSE,
    H_THROTTLE,
    H_REDIRECT
};

struct conn {
    struct bnet_conn nc;
    uv_timer_t hold;
    llhttp_t parser;
    struct conn *prev, *next;
    int refs; /* handles still open: nc and hold */
    int tls;
    /* current request */
    char url[URL_MAX];
    size_t url_len;
    int url_bad;
    enum hdr cur;
    char host[HVAL_MAX], xff[HVAL_MAX], proto[16], size[24], hold_ms[24];
    char throttle[24], redirect[HVAL_MAX]; /* faults a test asks for */
    uint64_t answered;                     /* answers sent on this connection */
    int expect;
    uint64_t body_bytes;
    unsigned char *body;
    size_t body_len;
    /* a held answer and bytes that arrived meanwhile */
    int deferred;
    uint64_t hold_start;
    int keep_alive;
    int close_quiet; /* X-Exsim-Close: close after the answer without saying so */
    struct beas_query q;
    char *pending;
    size_t pending_len;
    uint64_t serial; /* echoed: tests see which upstream connection served them */
    char *authz;     /* Authorization of this request (--auth only), malloc'd */
    size_t authz_len;
    int authz_count;
    const char *auth_user;
    struct exsim_auth_conn auth;
};

static struct {
    uint64_t accepted, open, requests, bytes_in, handshakes, resumed;
    uint64_t by_cmd[NCMD], b64_queries, options, autodiscover, notfound, bad;
    uint64_t held, held_max, held_total;
} st;

static uv_loop_t *loop;
static SSL_CTX *tls_ctx;
static uv_tcp_t srv_tls, srv_plain;
static int have_tls_srv, have_plain_srv;
static uv_signal_t sig_term, sig_int, sig_usr1;
static struct conn *conns;
static int stopping;
static llhttp_settings_t settings;
static struct exsim_body ans_folder, ans_sync, ans_gie, ans_io, ans_ping, ans_empty;
static char *outbuf; /* response scratch buffer, grown as needed */
static size_t outbuf_cap;

/* ---- connection list and teardown ---- */

static void conn_unref(struct conn *c)
{
    if (--c->refs > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->body);
    free(c->pending);
    free(c->authz);
    free(c);
}

static void on_hold_close(uv_handle_t *h);

static void on_nc_close(struct bnet_conn *nc)
{
    struct conn *c = nc->data;
    st.open--;
    if (c->deferred) {
        c->deferred = 0;
        st.held--;
    }
    if (!uv_is_closing((uv_handle_t *)&c->hold))
        uv_close((uv_handle_t *)&c->hold, on_hold_close);
    conn_unref(c);
}

static void on_hold_close(uv_handle_t *h)
{
    conn_unref(h->data);
}

/* Close once what was written has gone out (an answer with
 * "Connection: close" must still arrive). */
static void conn_close(struct conn *c)
{
    uv_timer_stop(&c->hold);
    bnet_close_after_write(&c->nc);
}

/* ---- responses ---- */

static char *out_reserve(size_t n)
{
    if (n > outbuf_cap) {
        size_t cap = outbuf_cap ? outbuf_cap : 16384;
        while (cap < n)
            cap *= 2;
        char *p = realloc(outbuf, cap);
        if (!p)
            return NULL;
        outbuf = p;
        outbuf_cap = cap;
    }
    return outbuf;
}

/* Echoed values must not break the header block. */
static void clean(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F)
            *s = '?';
}

static void respond(struct conn *c, int status, const char *reason, const char *ctype,
                    const void *body, size_t len, const char *extra)
{
    char head[2048];
    clean(c->host);
    clean(c->xff);
    clean(c->q.user);
    clean(c->q.device_id);
    const char *proto = c->proto[0] ? c->proto : c->q.proto;
    int hl = snprintf(
        head, sizeof(head),
        "HTTP/1.1 %d %s\r\n"
        "Server: exsim\r\n"
        "Content-Length: %zu\r\n"
        "%s%s%s"
        "X-Exsim-Cmd: %s\r\n"
        "X-Exsim-Host: %s\r\n"
        "X-Exsim-Forwarded-For: %s\r\n"
        "X-Exsim-Bytes: %" PRIu64 "\r\n"
        "X-Exsim-Query: %s\r\n"
        "X-Exsim-User: %s\r\n"
        "X-Exsim-DeviceId: %s\r\n"
        "X-Exsim-Proto: %s\r\n"
        "X-Exsim-Tls: %d\r\n"
        "X-Exsim-Pid: %d\r\n"
        "X-Exsim-Conn: %" PRIu64 "\r\n"
        "%s%s%s"
        "%s"
        "Connection: %s\r\n\r\n",
        status, reason, len, ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
        c->q.cmd[0] ? c->q.cmd : "-", c->host, c->xff[0] ? c->xff : "-", c->body_bytes,
        c->q.cmd[0] ? (c->q.base64 ? "base64" : "plain") : "-", c->q.user, c->q.device_id, proto,
        c->tls, (int)getpid(), c->serial, c->auth_user ? "X-Exsim-Auth-User: " : "",
        c->auth_user ? c->auth_user : "", c->auth_user ? "\r\n" : "", extra ? extra : "",
        c->keep_alive ? "keep-alive" : "close");
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        conn_close(c);
        return;
    }
    char *p = out_reserve((size_t)hl + len);
    if (!p) {
        conn_close(c);
        return;
    }
    memcpy(p, head, (size_t)hl);
    if (len)
        memcpy(p + hl, body, len);
    bnet_write(&c->nc, p, (size_t)hl + len);
    st.requests++;
    c->answered++;
}

static void respond_wbxml(struct conn *c, const struct exsim_body *b, const char *extra)
{
    respond(c, 200, "OK", "application/vnd.ms-sync.wbxml", b->buf, b->len, extra);
}

static void respond_text(struct conn *c, int status, const char *reason, const char *text)
{
    respond(c, status, reason, "text/plain", text, strlen(text), NULL);
}

/* ---- routes ---- */

static void route_options(struct conn *c)
{
    static const char extra[] =
        "Allow: OPTIONS,POST\r\n"
        "Public: OPTIONS,POST\r\n"
        "MS-Server-ActiveSync: 15.1\r\n"
        "MS-ASProtocolVersions: 2.5,12.0,12.1,14.0,14.1,16.0,16.1\r\n"
        "MS-ASProtocolCommands: Sync,SendMail,SmartForward,SmartReply,GetAttachment,"
        "FolderSync,FolderCreate,FolderDelete,FolderUpdate,MoveItems,GetItemEstimate,"
        "MeetingResponse,Search,Settings,Ping,ItemOperations,Provision,ResolveRecipients,"
        "ValidateCert\r\n";
    st.options++;
    respond(c, 200, "OK", NULL, NULL, 0, extra);
}

static void route_autodiscover(struct conn *c)
{
    static const char xml[] =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
        "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
        "responseschema/2006\">\n"
        " <Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/mobilesync/"
        "responseschema/2006\">\n"
        "  <Culture>en:us</Culture>\n"
        "  <User><DisplayName>Simulated User</DisplayName>"
        "<EMailAddress>user@example.com</EMailAddress></User>\n"
        "  <Action><Settings><Server><Type>MobileSync</Type>"
        "<Url>https://localhost/Microsoft-Server-ActiveSync</Url>"
        "<Name>https://localhost/Microsoft-Server-ActiveSync</Name></Server></Settings>"
        "</Action>\n"
        " </Response>\n"
        "</Autodiscover>\n";
    st.autodiscover++;
    respond(c, 200, "OK", "text/xml; charset=utf-8", xml, sizeof(xml) - 1, NULL);
}

static void route_stats(struct conn *c)
{
    char j[2048];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    int n = snprintf(j, sizeof(j),
                     "{\"pid\":%d,\"accepted\":%" PRIu64 ",\"open\":%" PRIu64
                     ",\"requests\":%" PRIu64 ",\"bytes_in\":%" PRIu64 ",\"handshakes\":%" PRIu64
                     ",\"resumed\":%" PRIu64 ",\"held\":%" PRIu64 ",\"held_max\":%" PRIu64
                     ",\"held_total\":%" PRIu64 ",\"base64\":%" PRIu64 ",\"options\":%" PRIu64
                     ",\"autodiscover\":%" PRIu64 ",\"notfound\":%" PRIu64 ",\"bad\":%" PRIu64
                     ",\"cpu_s\":%.3f,\"maxrss_kb\":%ld,\"cmds\":{",
                     (int)getpid(), st.accepted, st.open, st.requests, st.bytes_in, st.handshakes,
                     st.resumed, st.held, st.held_max, st.held_total, st.b64_queries, st.options,
                     st.autodiscover, st.notfound, st.bad, cpu, ru.ru_maxrss);
    int first = 1;
    for (int i = 0; i < NCMD && n > 0 && (size_t)n < sizeof(j) - 64; i++) {
        if (!st.by_cmd[i] || !beas_cmd_name(i))
            continue;
        n += snprintf(j + n, sizeof(j) - (size_t)n, "%s\"%s\":%" PRIu64, first ? "" : ",",
                      beas_cmd_name(i), st.by_cmd[i]);
        first = 0;
    }
    if (n > 0 && (size_t)n < sizeof(j) - 4)
        n += snprintf(j + n, sizeof(j) - (size_t)n, "}}\n");
    if (c)
        respond(c, 200, "OK", "application/json", j, strlen(j), NULL);
    else
        fputs(j, stderr);
}

static size_t req_size(struct conn *c, size_t dflt)
{
    if (!c->size[0])
        return dflt;
    char *end;
    unsigned long long v = strtoull(c->size, &end, 10);
    if (*end || v > 64ull * 1024 * 1024)
        return dflt;
    return (size_t)v;
}

static void answer_sized(struct conn *c, int (*build)(struct exsim_body *, size_t),
                         const struct exsim_body *cached, size_t dflt)
{
    if (!c->size[0]) {
        respond_wbxml(c, cached, NULL);
        return;
    }
    struct exsim_body b = {0};
    if (build(&b, req_size(c, dflt)) < 0) {
        respond_text(c, 500, "Internal Server Error", "exsim: out of memory\n");
        return;
    }
    respond_wbxml(c, &b, NULL);
    exsim_body_free(&b);
}

static void finish_deferred(struct conn *c);

static void on_hold_done(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (!c->deferred)
        return;
    char extra[64];
    snprintf(extra, sizeof(extra), "X-Exsim-Held-Ms: %" PRIu64 "\r\n",
             uv_now(loop) - c->hold_start);
    respond_wbxml(c, &ans_ping, extra);
    finish_deferred(c);
}

/* Ping: answer Status 1 once the heartbeat (capped) has passed. */
static int route_ping(struct conn *c)
{
    char hb[16];
    long secs = opt.ping_default;
    if (c->body && bwx_find_text(c->body, c->body_len, BWX_PING, 0x08, hb, sizeof(hb)) > 0)
        secs = strtol(hb, NULL, 10);
    if (secs < 0)
        secs = 0;
    uint64_t ms = (uint64_t)secs * 1000;
    if (c->hold_ms[0])
        ms = strtoull(c->hold_ms, NULL, 10);
    if (ms > (uint64_t)opt.ping_cap * 1000)
        ms = (uint64_t)opt.ping_cap * 1000;
    if (ms == 0) {
        respond_wbxml(c, &ans_ping, NULL);
        return 0;
    }
    c->deferred = 1;
    c->hold_start = uv_now(loop);
    st.held++;
    st.held_total++;
    if (st.held > st.held_max)
        st.held_max = st.held;
    uv_timer_start(&c->hold, on_hold_done, ms, 0);
    return 1;
}

static int route_eas(struct conn *c)
{
    const char *qm = memchr(c->url, '?', c->url_len);
    if (!qm || beas_parse_query(qm + 1, c->url_len - (size_t)(qm + 1 - c->url), &c->q) < 0) {
        st.bad++;
        respond_text(c, 400, "Bad Request", "exsim: no ActiveSync command in the query\n");
        return 0;
    }
    int code = beas_cmd_code(c->q.cmd);
    if (code >= 0 && code < NCMD)
        st.by_cmd[code]++;
    if (c->q.base64)
        st.b64_queries++;
    const unsigned char *b = c->body;
    size_t bl = c->body_len;
    int devinfo = b && bwx_has(b, bl, BWX_SETTINGS, 0x16);
    struct exsim_body tmp = {0};
    switch (code) {
    case 0: /* Sync */
        answer_sized(c, exsim_sync, &ans_sync, opt.sync_size);
        break;
    case 9: /* FolderSync */
        answer_sized(c, exsim_foldersync, &ans_folder, opt.folder_size);
        break;
    case 14: /* GetItemEstimate */
        respond_wbxml(c, &ans_gie, NULL);
        break;
    case 19: /* ItemOperations */
        answer_sized(c, exsim_itemops, &ans_io, opt.fetch_size);
        break;
    case 18: /* Ping */
        return route_ping(c);
    case 20: /* Provision */
        if (exsim_provision(&tmp, b && bwx_has(b, bl, BWX_PROVISION, 0x09), devinfo) < 0) {
            respond_text(c, 500, "Internal Server Error", "exsim: out of memory\n");
            break;
        }
        respond_wbxml(c, &tmp, NULL);
        exsim_body_free(&tmp);
        break;
    case 17: /* Settings */
        if (exsim_settings(&tmp, devinfo) < 0) {
            respond_text(c, 500, "Internal Server Error", "exsim: out of memory\n");
            break;
        }
        respond_wbxml(c, &tmp, NULL);
        exsim_body_free(&tmp);
        break;
    default: /* SendMail and the rest: accepted, nothing to say (MS-ASCMD: an
              * empty 200 is success for SendMail/SmartReply/SmartForward) */
        respond(c, 200, "OK", NULL, ans_empty.buf, 0, NULL);
        break;
    }
    return 0;
}

/* Returns 1 if the answer is deferred (a held Ping). */
static int route(struct conn *c)
{
    const char *path = c->url;
    size_t plen = c->url_len;
    const char *qm = memchr(path, '?', plen);
    if (qm)
        plen = (size_t)(qm - path);
    int method = llhttp_get_method(&c->parser);
    /* --prefix: the server lives under a path, like SOGo (/SOGo/...); what
     * is not under it is not found. */
    size_t pl = strlen(opt.prefix);
    if (pl && !(plen > pl && strncmp(path, opt.prefix, pl) == 0 && path[pl] == '/')) {
        st.notfound++;
        respond_text(c, 404, "Not Found", "exsim: not under the prefix\n");
        return 0;
    }
    path += pl;
    plen -= pl;
    if (c->throttle[0]) {
        /* Exchange's throttling answer to an ActiveSync client (503, how
         * long to wait, and why in X-MS-ASThrottle). */
        char extra[128];
        snprintf(extra, sizeof(extra), "Retry-After: %s\r\nX-MS-ASThrottle: CommandFrequency\r\n",
                 c->throttle);
        respond(c, 503, "Service Unavailable", "text/plain", "exsim: throttled\n", 17, extra);
        return 0;
    }
    if (c->redirect[0]) {
        char extra[HVAL_MAX * 2 + 64];
        clean(c->host);
        snprintf(extra, sizeof(extra), "Location: http://%s%s%s\r\n", c->host, opt.prefix,
                 c->redirect);
        respond(c, 302, "Found", "text/plain", "exsim: moved\n", 13, extra);
        return 0;
    }
#define IS(p) (plen == sizeof(p) - 1 && strncasecmp(path, p, plen) == 0)
    if (exsim_auth_mode() != EXSIM_AUTH_NONE &&
        (IS("/Microsoft-Server-ActiveSync") || IS("/autodiscover/autodiscover.xml"))) {
        char www[1024];
        if (c->authz_count > 1) {
            respond_text(c, 400, "Bad Request", "exsim: two Authorization headers\n");
            return 0;
        }
        if (exsim_auth_request(&c->auth, c->authz_count ? c->authz : NULL, c->authz_len, www,
                               sizeof(www), &c->auth_user) != 0) {
            c->auth_user = NULL;
            respond(c, 401, "Unauthorized", "text/plain", "exsim: 401\n", 11, www);
            return 0;
        }
    }
    if (IS("/Microsoft-Server-ActiveSync")) {
        if (method == HTTP_OPTIONS) {
            route_options(c);
            return 0;
        }
        if (method == HTTP_POST)
            return route_eas(c);
        respond(c, 405, "Method Not Allowed", "text/plain", "exsim: OPTIONS or POST\n", 23,
                "Allow: OPTIONS,POST\r\n");
        return 0;
    }
    if (IS("/autodiscover/autodiscover.xml")) {
        route_autodiscover(c);
        return 0;
    }
    if (IS("/exsim/stats")) {
        route_stats(c);
        return 0;
    }
#undef IS
    st.notfound++;
    respond_text(c, 404, "Not Found", "exsim: no such path\n");
    return 0;
}

/* ---- HTTP parsing ---- */

static void feed(struct conn *c, const char *data, size_t len);

static void request_reset(struct conn *c)
{
    c->url_len = 0;
    c->url_bad = 0;
    c->cur = H_NONE;
    c->host[0] = c->xff[0] = c->proto[0] = c->size[0] = c->hold_ms[0] = '\0';
    c->close_quiet = 0;
    c->throttle[0] = c->redirect[0] = '\0';
    c->expect = 0;
    c->authz_len = 0;
    c->authz_count = 0;
    c->auth_user = NULL;
    c->body_bytes = 0;
    c->body_len = 0;
    memset(&c->q, 0, sizeof(c->q));
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    request_reset(c);
    if (opt.drop_reused && c->answered > 0) {
        /* --drop-reused: like a server that ends idle connections without
         * Connection: close, the client learns it only as it sends. */
        conn_close(c);
        return HPE_PAUSED;
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->url_len + len >= URL_MAX) {
        c->url_bad = 1;
        return 0;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    /* Header names arrive whole in practice; a split name simply is not
     * recognised, which only loses an echo. */
    static const struct {
        const char *name;
        enum hdr h;
    } known[] = {{"Host", H_HOST},
                 {"Expect", H_EXPECT},
                 {"MS-ASProtocolVersion", H_PROTO},
                 {"X-Exsim-Size", H_SIZE},
                 {"X-Exsim-Hold-Ms", H_HOLD},
                 {"X-Forwarded-For", H_XFF},
                 {"Authorization", H_AUTHZ},
                 {"X-Exsim-Close", H_CLOSE},
                 {"X-Exsim-Throttle", H_THROTTLE},
                 {"X-Exsim-Redirect", H_REDIRECT}};
    c->cur = H_NONE;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strlen(known[i].name) == len && strncasecmp(known[i].name, at, len) == 0)
            c->cur = known[i].h;
    if (c->cur == H_AUTHZ) {
        if (exsim_auth_mode() == EXSIM_AUTH_NONE)
            c->cur = H_NONE;
        else
            c->authz_count++;
    }
    return 0;
}

static void append(char *dst, size_t cap, const char *at, size_t len)
{
    size_t l = strlen(dst);
    if (l + len >= cap)
        len = cap - 1 - l;
    memcpy(dst + l, at, len);
    dst[l + len] = '\0';
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    switch (c->cur) {
    case H_HOST:
        append(c->host, sizeof(c->host), at, len);
        break;
    case H_XFF:
        append(c->xff, sizeof(c->xff), at, len);
        break;
    case H_PROTO:
        append(c->proto, sizeof(c->proto), at, len);
        break;
    case H_SIZE:
        append(c->size, sizeof(c->size), at, len);
        break;
    case H_HOLD:
        append(c->hold_ms, sizeof(c->hold_ms), at, len);
        break;
    case H_CLOSE:
        c->close_quiet = 1;
        break;
    case H_THROTTLE:
        append(c->throttle, sizeof(c->throttle), at, len);
        break;
    case H_REDIRECT:
        append(c->redirect, sizeof(c->redirect), at, len);
        break;
    case H_AUTHZ:
        if (!c->authz && !(c->authz = malloc(AUTHZ_MAX)))
            break;
        if (c->authz_len + len < AUTHZ_MAX) {
            memcpy(c->authz + c->authz_len, at, len);
            c->authz_len += len;
            c->authz[c->authz_len] = '\0';
        }
        break;
    case H_EXPECT:
        if (len >= 12 && strncasecmp(at, "100-continue", 12) == 0)
            c->expect = 1;
        break;
    default:
        break;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (c->expect && !c->url_bad) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        bnet_write(&c->nc, cont, sizeof(cont) - 1);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    c->body_bytes += len;
    st.bytes_in += len;
    if (c->body_len + len <= BODY_KEEP) {
        if (!c->body) {
            c->body = malloc(BODY_KEEP);
            if (!c->body)
                return 0;
        }
        memcpy(c->body + c->body_len, at, len);
        c->body_len += len;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->keep_alive = llhttp_should_keep_alive(p) && !stopping;
    if (c->url_bad) {
        c->keep_alive = 0;
        st.bad++;
        respond_text(c, 414, "URI Too Long", "exsim: URI too long\n");
    } else if (route(c)) {
        return HPE_PAUSED; /* answered later; further bytes wait */
    }
    if (c->body && c->body_len > 4096) { /* keep idle connections small */
        free(c->body);
        c->body = NULL;
        c->body_len = 0;
    }
    if (!c->keep_alive || c->close_quiet) {
        conn_close(c); /* X-Exsim-Close: as IIS or SOGo drop an idle connection */
        return HPE_PAUSED;
    }
    return 0;
}

static int keep_pending(struct conn *c, const char *data, size_t len)
{
    if (len == 0)
        return 0;
    if (c->pending_len + len > PENDING_MAX)
        return -1;
    char *p = realloc(c->pending, c->pending_len + len);
    if (!p)
        return -1;
    memcpy(p + c->pending_len, data, len);
    c->pending = p;
    c->pending_len += len;
    return 0;
}

static void feed(struct conn *c, const char *data, size_t len)
{
    if (c->nc.closing)
        return;
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK || c->nc.closing)
        return;
    if (e == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        if (keep_pending(c, pos, (size_t)(data + len - pos)) < 0)
            conn_close(c);
        return;
    }
    st.bad++;
    c->keep_alive = 0;
    if (c->q.cmd[0] == '\0')
        respond_text(c, 400, "Bad Request", "exsim: malformed HTTP request\n");
    conn_close(c);
}

static void finish_deferred(struct conn *c)
{
    c->deferred = 0;
    st.held--;
    if (!c->keep_alive) {
        conn_close(c);
        return;
    }
    llhttp_resume(&c->parser);
    if (c->pending_len) {
        char *p = c->pending;
        size_t n = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        feed(c, p, n);
        free(p);
    }
}

static void on_data(struct bnet_conn *nc, const char *buf, size_t len)
{
    struct conn *c = nc->data;
    if (nc->ssl && nc->handshake_done && !c->tls) {
        c->tls = 1;
        st.handshakes++;
        if (nc->resumed)
            st.resumed++;
    }
    if (c->deferred || llhttp_get_errno(&c->parser) == HPE_PAUSED) {
        if (keep_pending(c, buf, len) < 0)
            conn_close(c);
        return;
    }
    feed(c, buf, len);
}

/* ---- listeners ---- */

static void on_accept(uv_stream_t *srv, int status)
{
    if (status < 0 || stopping)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->nc.data = c;
    c->nc.on_data = on_data;
    c->nc.on_close = on_nc_close;
    uv_timer_init(loop, &c->hold);
    c->hold.data = c;
    c->refs = 2;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    c->serial = st.accepted + 1;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    st.accepted++;
    st.open++;
    SSL_CTX *ctx = srv == (uv_stream_t *)&srv_tls ? tls_ctx : NULL;
    if (bnet_accept(srv, &c->nc, ctx) < 0) {
        /* the TCP handle was never made: only the timer holds c */
        st.open--;
        c->refs = 1;
        uv_close((uv_handle_t *)&c->hold, on_hold_close);
    }
}

static void stop_all(void)
{
    if (stopping)
        return;
    stopping = 1;
    if (have_tls_srv)
        uv_close((uv_handle_t *)&srv_tls, NULL);
    if (have_plain_srv)
        uv_close((uv_handle_t *)&srv_plain, NULL);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_usr1, NULL);
    for (struct conn *c = conns; c; c = c->next) {
        uv_timer_stop(&c->hold);
        bnet_close(&c->nc, 0);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    if (signum == SIGUSR1) {
        route_stats(NULL);
        return;
    }
    stop_all();
}

/* ---- start-up ---- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: exsim --listen ADDR [options]\n"
        "  --listen ADDR        listen here (host:port, [v6]:port); TLS if --tls-cert\n"
        "  --plain-listen ADDR  also listen here in plain HTTP\n"
        "  --tls-cert FILE      certificate chain (PEM) for --listen\n"
        "  --tls-key FILE       its private key (PEM)\n"
        "  --ping-cap SECONDS   hold a Ping at most this long (default 3600; 0 = answer at once)\n"
        "  --ping-default SECS  hold for a Ping without HeartbeatInterval (default 60)\n"
        "  --sync-size BYTES    Sync answer size (default 512)\n"
        "  --fetch-size BYTES   ItemOperations answer size (default 4096)\n"
        "  --folder-size BYTES  FolderSync answer size (default: the 12 standard folders)\n"
        "  --workers N          N processes sharing the port (SO_REUSEPORT; default 1)\n"
        "  --auth MODE          none (default), basic (every request) or ntlm (per\n"
        "                       connection, as IIS: NTLM or Negotiate-wrapped NTLM)\n"
        "  --users LIST         user:password[,user:password...] for --auth\n"
        "  --quiet              no start-up line\n"
        "  --prefix PATH        serve under PATH (/SOGo/Microsoft-Server-ActiveSync, ...)\n"
        "  --drop-reused        close a connection, unanswered, when its second request\n"
        "                       starts (a server ending idle connections silently)\n"
        "Request headers: X-Exsim-Size (answer size), X-Exsim-Hold-Ms (hold the answer),\n"
        "X-Exsim-Close (close the connection after the answer without saying so),\n"
        "X-Exsim-Throttle: SECS (503 with Retry-After and X-MS-ASThrottle),\n"
        "X-Exsim-Redirect: PATH (302 to PREFIX+PATH).\n"
        "Signals: SIGUSR1 prints stats (JSON) to stderr; SIGTERM/SIGINT stop.\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > 256ull * 1024 * 1024 || s[0] == '-')
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {{"listen", required_argument, 0, 'l'},
                                       {"plain-listen", required_argument, 0, 'p'},
                                       {"tls-cert", required_argument, 0, 'c'},
                                       {"tls-key", required_argument, 0, 'k'},
                                       {"ping-cap", required_argument, 0, 'P'},
                                       {"ping-default", required_argument, 0, 'D'},
                                       {"sync-size", required_argument, 0, 's'},
                                       {"fetch-size", required_argument, 0, 'f'},
                                       {"folder-size", required_argument, 0, 'F'},
                                       {"workers", required_argument, 0, 'w'},
                                       {"quiet", no_argument, 0, 'q'},
                                       {"auth", required_argument, 0, 'A'},
                                       {"users", required_argument, 0, 'U'},
                                       {"prefix", required_argument, 0, 'X'},
                                       {"drop-reused", no_argument, 0, 'R'},
                                       {0, 0, 0, 0}};
    int ch, idx = 0;
    while ((ch = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'l':
            opt.listen = optarg;
            break;
        case 'p':
            opt.plain_listen = optarg;
            break;
        case 'c':
            opt.cert = optarg;
            break;
        case 'k':
            opt.key = optarg;
            break;
        case 'P':
            bad = parse_int(optarg, 0, 86400, &opt.ping_cap);
            break;
        case 'D':
            bad = parse_int(optarg, 0, 86400, &opt.ping_default);
            break;
        case 's':
            bad = parse_size(optarg, &opt.sync_size);
            break;
        case 'f':
            bad = parse_size(optarg, &opt.fetch_size);
            break;
        case 'F':
            bad = parse_size(optarg, &opt.folder_size);
            break;
        case 'w':
            bad = parse_int(optarg, 1, 64, &opt.workers);
            break;
        case 'q':
            opt.quiet = 1;
            break;
        case 'A':
            opt.auth = optarg;
            break;
        case 'U':
            opt.users = optarg;
            break;
        case 'X':
            bad = optarg[0] != '/' || optarg[strlen(optarg) - 1] == '/';
            opt.prefix = optarg;
            break;
        case 'R':
            opt.drop_reused = 1;
            break;
        default:
            return -1; /* getopt said why; --help is handled in main */
        }
        if (bad) {
            fprintf(stderr, "exsim: bad value '%s' for --%s\n", optarg, lo[idx].name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "exsim: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!opt.listen && !opt.plain_listen) {
        fprintf(stderr, "exsim: --listen ADDR is required\n");
        return -1;
    }
    if (!opt.cert != !opt.key) {
        fprintf(stderr, "exsim: --tls-cert and --tls-key go together\n");
        return -1;
    }
    return 0;
}

static int build_answers(void)
{
    if (exsim_foldersync(&ans_folder, opt.folder_size) < 0 ||
        exsim_sync(&ans_sync, opt.sync_size) < 0 || exsim_estimate(&ans_gie) < 0 ||
        exsim_itemops(&ans_io, opt.fetch_size) < 0 || exsim_ping(&ans_ping, 1) < 0)
        return -1;
    return 0;
}

static void free_answers(void)
{
    exsim_body_free(&ans_folder);
    exsim_body_free(&ans_sync);
    exsim_body_free(&ans_gie);
    exsim_body_free(&ans_io);
    exsim_body_free(&ans_ping);
    free(outbuf);
    outbuf = NULL;
}

/* One worker: its own loop and listening sockets. Returns an exit status. */
static int serve(int reuseport)
{
    char err[256];
    struct sockaddr_storage ss;
    loop = uv_default_loop();
    if (opt.listen) {
        uv_tcp_t *srv = tls_ctx ? &srv_tls : &srv_plain;
        if (bnet_parse_addr(opt.listen, &ss) < 0) {
            fprintf(stderr, "exsim: --listen %s: expected host:port\n", opt.listen);
            return 2;
        }
        if (bnet_listen(loop, srv, (struct sockaddr *)&ss, reuseport, on_accept, err, sizeof(err)) <
            0) {
            fprintf(stderr, "exsim: %s: %s\n", opt.listen, err);
            return 1;
        }
        if (tls_ctx)
            have_tls_srv = 1;
        else
            have_plain_srv = 1;
    }
    if (opt.plain_listen) {
        if (have_plain_srv) {
            fprintf(stderr, "exsim: --plain-listen needs --listen to be TLS\n");
            return 2;
        }
        if (bnet_parse_addr(opt.plain_listen, &ss) < 0) {
            fprintf(stderr, "exsim: --plain-listen %s: expected host:port\n", opt.plain_listen);
            return 2;
        }
        if (bnet_listen(loop, &srv_plain, (struct sockaddr *)&ss, reuseport, on_accept, err,
                        sizeof(err)) < 0) {
            fprintf(stderr, "exsim: %s: %s\n", opt.plain_listen, err);
            return 1;
        }
        have_plain_srv = 1;
    }
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_usr1);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_usr1, on_signal, SIGUSR1);
    if (!opt.quiet)
        fprintf(stderr, "exsim: pid %d listening%s%s%s%s%s\n", (int)getpid(),
                opt.listen ? (tls_ctx ? " tls " : " plain ") : "", opt.listen ? opt.listen : "",
                opt.plain_listen ? " plain " : "", opt.plain_listen ? opt.plain_listen : "",
                opt.workers > 1 ? " (worker)" : "");
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}

static volatile sig_atomic_t parent_sig;

static void parent_on_signal(int s)
{
    parent_sig = s;
}

/* --workers N: fork N servers sharing the port, relay signals to them. */
static int supervise(void)
{
    pid_t kids[64];
    int n = 0;
    /* no SA_RESTART: a signal must interrupt waitpid so it can be relayed */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = parent_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    for (int i = 0; i < opt.workers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("exsim: fork");
            break;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the parent */
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGUSR1, SIG_DFL);
            int rc = serve(1);
            free_answers();
            SSL_CTX_free(tls_ctx);
            _exit(rc);
        }
        kids[n++] = pid;
    }
    int live = n, rc = 0;
    while (live > 0) {
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0 && errno == EINTR) {
            int s = parent_sig;
            parent_sig = 0;
            for (int i = 0; i < n; i++)
                if (kids[i] > 0)
                    kill(kids[i], s == SIGUSR1 ? SIGUSR1 : SIGTERM);
            continue;
        }
        if (pid < 0)
            break;
        for (int i = 0; i < n; i++)
            if (kids[i] == pid)
                kids[i] = 0;
        live--;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            rc = 1;
            for (int i = 0; i < n; i++) /* one failed: stop the rest */
                if (kids[i] > 0)
                    kill(kids[i], SIGTERM);
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    if (exsim_auth_setup(opt.auth, opt.users) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    if (opt.cert) {
        char err[512];
        tls_ctx = bnet_server_ctx(opt.cert, opt.key, err, sizeof(err));
        if (!tls_ctx) {
            fprintf(stderr, "exsim: %s\n", err);
            return 2;
        }
    }
    if (build_answers() < 0) {
        fprintf(stderr, "exsim: out of memory building answers\n");
        return 1;
    }
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;
    int rc = opt.workers > 1 ? supervise() : serve(0);
    free_answers();
    SSL_CTX_free(tls_ctx);
    return rc;
}
