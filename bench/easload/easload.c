/*
 * easload: simulated phones for benchmarks and tests.
 *
 * N devices (own DeviceId, user, user agent, protocol version; some use the
 * base64 query form) are driven over C keep-alive connections, closed-loop
 * (each connection sends its next request when the last answer is in) or at
 * a fixed rate (requests are due on a schedule; latency is counted from when
 * a request was due, not when a connection was free, so a slow server cannot
 * hide its queue). --hold-pings M adds M connections that each keep one Ping
 * open, as idle phones do. Everything stops by itself at --duration or after
 * --requests; one process is one libuv loop, and several processes can share
 * the work (--id-offset keeps their devices apart).
 *
 * Latency goes into a log-linear histogram (bench/lib/hist.h), microseconds.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include <llhttp.h>
#include <openssl/evp.h>
#include <uv.h>

#include "bench/lib/beas.h"
#include "bench/lib/bnet.h"
#include "bench/lib/hist.h"

#define BODY_KEEP (256 * 1024) /* answers up to this size are checked as WBXML */
#define HOST_MAX 256
#define RETRY_NS 100000000ull /* reconnect 100 ms after a failed connect */

enum kind {
    K_SYNC,
    K_FOLDERSYNC,
    K_ESTIMATE,
    K_ITEMOPS,
    K_PING,
    K_SENDMAIL,
    K_SETTINGS,
    K_PROVISION,
    K_OPTIONS,
    NKIND
};
static const char *kind_name[NKIND] = {"Sync",           "FolderSync", "GetItemEstimate",
                                       "ItemOperations", "Ping",       "SendMail",
                                       "Settings",       "Provision",  "OPTIONS"};
static const char *kind_key[NKIND] = {"sync",     "foldersync", "estimate",  "itemops", "ping",
                                      "sendmail", "settings",   "provision", "options"};

enum err {
    E_CONNECT,
    E_TLS,
    E_CLOSED,
    E_TIMEOUT,
    E_HTTP4,
    E_HTTP5,
    E_HTTPX,
    E_WBXML,
    E_PARSE,
    NERR
};
static const char *err_name[NERR] = {"connect",  "tls",        "closed",    "timeout",   "http_4xx",
                                     "http_5xx", "http_other", "bad_wbxml", "http_parse"};

static struct {
    char url_host[HOST_MAX];
    char host_hdr[HOST_MAX + 8];
    int tls;
    const char *cafile, *sni;
    int devices, connections, hold, id_offset;
    double rate, duration;
    uint64_t requests;
    int weights[NKIND];
    int ping_hb, hold_hb;
    size_t attach;
    int b64_pct;
    int resume, new_conn;
    double timeout;
    int hold_rate;
    const char *json;
    int quiet;
} opt = {
    .devices = 100,
    .connections = 10,
    .duration = 10,
    .ping_hb = 2,
    .hold_hb = 3540,
    .attach = 50000,
    .b64_pct = 30,
    .resume = 1,
    .timeout = 30,
    .hold_rate = 2000,
};

struct device {
    char id[40], user[64], ua[80], proto[8], type[24], auth[168];
    int b64;
};

enum cstate { C_CONNECTING, C_IDLE, C_BUSY, C_DOWN };

struct client {
    struct bnet_conn nc;
    llhttp_t parser;
    int idx;
    int hold; /* a held-Ping connection */
    enum cstate state;
    int nc_live; /* bnet connection open (on_close pending) */
    struct device *dev;
    enum kind kind;
    uint64_t t_due, t_sent; /* ns */
    int status;
    int wbxml; /* answer says WBXML */
    unsigned char *body;
    size_t body_len;
    int body_over;
    int keep_alive;
    SSL_SESSION *sess;
    uint64_t retry_at; /* ns; 0 = not waiting to reconnect */
    struct client *next_idle;
};

static struct {
    uint64_t issued, done, ok, errors[NERR], by_kind[NKIND], bytes_in, bytes_out;
    uint64_t handshakes, resumed, connects;
    uint64_t held, held_max, hold_answered;
    struct hist lat, lat_kind[NKIND];
} st;

static uv_loop_t *loop;
static SSL_CTX *ctx;
static struct sockaddr_storage addr;
static struct device *devs;
static struct client *clients;
static int nclients;
static int live; /* clients whose connection is still open */
static int stopping;
static uv_timer_t tick;
static uv_signal_t sig_int, sig_term;
static uint64_t t_start, t_stop_req; /* ns */
static struct client *idle_head;
static llhttp_settings_t settings;
static int cum_weight[NKIND], total_weight;
static struct bwx bodies[NKIND], ping_hold_body;
static char *mime;
static size_t mime_len;
static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* ---- devices and request bodies ---- */

static const char *uas[] = {"Apple-iPhone14C3/2006.110", "Android-SAMSUNG-SM-S911B/101.50402",
                            "Outlook-iOS-Android/1.0", "TbSync/4.4 (Thunderbird)",
                            "Android-Mail/2023.10.15.571669"};
static const char *types[] = {"iPhone", "SAMSUNGSMS911B", "Outlook", "TbSync", "Android"};
static const char *protos[] = {"16.1", "14.1", "16.0", "14.0", "12.1", "12.0"};

static int make_devices(void)
{
    devs = calloc((size_t)opt.devices, sizeof(*devs));
    if (!devs)
        return -1;
    for (int i = 0; i < opt.devices; i++) {
        struct device *d = &devs[i];
        int n = i + opt.id_offset;
        snprintf(d->id, sizeof(d->id), "EASLOAD%08d", n);
        snprintf(d->user, sizeof(d->user), "user%d@example.com", n);
        snprintf(d->ua, sizeof(d->ua), "%s", uas[n % 5]);
        snprintf(d->type, sizeof(d->type), "%s", types[n % 5]);
        snprintf(d->proto, sizeof(d->proto), "%s", protos[n % 6]);
        /* the base64 form exists from 12.1 on (MS-ASHTTP 2.2.1.1.1.1) */
        d->b64 = (int)((unsigned)(n * 37) % 100) < opt.b64_pct && strcmp(d->proto, "12.0") != 0;
        char cred[96];
        unsigned char enc[160];
        int cl = snprintf(cred, sizeof(cred), "%s:password", d->user);
        EVP_EncodeBlock(enc, (const unsigned char *)cred, cl);
        snprintf(d->auth, sizeof(d->auth), "%s", (const char *)enc);
    }
    return 0;
}

static void build_bodies(void)
{
    struct bwx *w;
    w = &bodies[K_SYNC]; /* <Sync><Collections><Collection>SyncKey, CollectionId */
    bwx_begin(w);
    bwx_open(w, BWX_AIRSYNC, 0x05);
    bwx_open(w, BWX_AIRSYNC, 0x1C);
    bwx_open(w, BWX_AIRSYNC, 0x0F);
    bwx_text(w, BWX_AIRSYNC, 0x0B, "1");
    bwx_text(w, BWX_AIRSYNC, 0x12, "1");
    bwx_close(w), bwx_close(w), bwx_close(w);
    w = &bodies[K_FOLDERSYNC]; /* <FolderSync><SyncKey>0 */
    bwx_begin(w);
    bwx_open(w, BWX_FOLDER, 0x16);
    bwx_text(w, BWX_FOLDER, 0x12, "0");
    bwx_close(w);
    w = &bodies[K_ESTIMATE]; /* <GetItemEstimate><Collections><Collection> */
    bwx_begin(w);
    bwx_open(w, BWX_GIE, 0x05);
    bwx_open(w, BWX_GIE, 0x07);
    bwx_open(w, BWX_GIE, 0x08);
    bwx_text(w, BWX_AIRSYNC, 0x0B, "1");
    bwx_text(w, BWX_GIE, 0x0A, "1");
    bwx_close(w), bwx_close(w), bwx_close(w);
    w = &bodies[K_ITEMOPS]; /* <ItemOperations><Fetch><Store>Mailbox, ServerId */
    bwx_begin(w);
    bwx_open(w, BWX_ITEMOPS, 0x05);
    bwx_open(w, BWX_ITEMOPS, 0x06);
    bwx_text(w, BWX_ITEMOPS, 0x07, "Mailbox");
    bwx_text(w, BWX_AIRSYNC, 0x12, "1");
    bwx_text(w, BWX_AIRSYNC, 0x0D, "1:1");
    bwx_close(w), bwx_close(w);
    for (int held = 0; held < 2; held++) { /* <Ping><HeartbeatInterval><Folders>... */
        w = held ? &ping_hold_body : &bodies[K_PING];
        bwx_begin(w);
        bwx_open(w, BWX_PING, 0x05);
        bwx_int(w, BWX_PING, 0x08, held ? opt.hold_hb : opt.ping_hb);
        bwx_open(w, BWX_PING, 0x09);
        bwx_open(w, BWX_PING, 0x0A);
        bwx_text(w, BWX_PING, 0x0B, "1");
        bwx_text(w, BWX_PING, 0x0C, "Email");
        bwx_close(w), bwx_close(w), bwx_close(w);
    }
    w = &bodies[K_SETTINGS]; /* <Settings><DeviceInformation><Set><Model> */
    bwx_begin(w);
    bwx_open(w, BWX_SETTINGS, 0x05);
    bwx_open(w, BWX_SETTINGS, 0x16);
    bwx_open(w, BWX_SETTINGS, 0x08);
    bwx_text(w, BWX_SETTINGS, 0x17, "easload phone");
    bwx_close(w), bwx_close(w), bwx_close(w);
    w = &bodies[K_PROVISION]; /* <Provision><Policies><Policy><PolicyType> */
    bwx_begin(w);
    bwx_open(w, BWX_PROVISION, 0x05);
    bwx_open(w, BWX_PROVISION, 0x06);
    bwx_open(w, BWX_PROVISION, 0x07);
    bwx_text(w, BWX_PROVISION, 0x08, "MS-EAS-Provisioning-WBXML");
    bwx_close(w), bwx_close(w), bwx_close(w);
}

/* SendMail: one MIME message with a base64 attachment of --attach bytes. */
static int build_mime(void)
{
    static const char head[] =
        "From: user@example.com\r\nTo: someone@example.com\r\nSubject: easload\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
        "--b1\r\nContent-Type: text/plain\r\n\r\nHello from easload.\r\n"
        "--b1\r\nContent-Type: application/octet-stream\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "Content-Disposition: attachment; filename=\"a.bin\"\r\n\r\n";
    static const char tail[] = "\r\n--b1--\r\n";
    size_t b64 = (opt.attach + 2) / 3 * 4;
    size_t lines = b64 / 76 + 1;
    mime_len = sizeof(head) - 1 + b64 + 2 * lines + sizeof(tail) - 1;
    mime = malloc(mime_len);
    if (!mime)
        return -1;
    char *p = mime;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    for (size_t i = 0; i < b64; i++) {
        *p++ = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[rnd() & 63];
        if (i % 76 == 75) {
            *p++ = '\r';
            *p++ = '\n';
        }
    }
    memcpy(p, tail, sizeof(tail) - 1);
    p += sizeof(tail) - 1;
    mime_len = (size_t)(p - mime);
    return 0;
}

/* ---- the run ---- */

static void client_connect(struct client *c);
static void send_next(struct client *c);
static void finish_run(void);

static double elapsed_s(void)
{
    return (double)(now_ns() - t_start) / 1e9;
}

static enum kind pick_kind(void)
{
    int r = (int)(rnd() % (uint64_t)total_weight);
    for (int k = 0; k < NKIND; k++)
        if (r < cum_weight[k])
            return (enum kind)k;
    return K_SYNC;
}

static int send_request(struct client *c, enum kind k, uint64_t due)
{
    struct device *d = &devs[rnd() % (uint64_t)opt.devices];
    if (c->hold)
        d = &devs[c->idx % opt.devices];
    c->dev = d;
    c->kind = k;
    c->t_due = due;
    c->t_sent = now_ns();
    c->status = 0;
    c->wbxml = 0;
    c->body_len = 0;
    c->body_over = 0;
    char query[700];
    const char *cmd = kind_name[k];
    int ql;
    if (k == K_OPTIONS)
        ql = 0, query[0] = '\0';
    else if (d->b64)
        ql = beas_b64_query(query, sizeof(query), d->proto, cmd, d->user, d->id, d->type);
    else
        ql = beas_plain_query(query, sizeof(query), cmd, d->user, d->id, d->type);
    if (ql < 0)
        return -1;
    const void *body;
    size_t blen;
    const char *ctype = "application/vnd.ms-sync.wbxml";
    if (k == K_SENDMAIL) {
        body = mime, blen = mime_len, ctype = "message/rfc822";
    } else if (k == K_OPTIONS) {
        body = NULL, blen = 0;
    } else {
        struct bwx *w = c->hold ? &ping_hold_body : &bodies[k];
        body = w->buf, blen = w->len;
    }
    char head[1400];
    int hl =
        snprintf(head, sizeof(head),
                 "%s /Microsoft-Server-ActiveSync%s%s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "User-Agent: %s\r\n"
                 "Authorization: Basic %s\r\n"
                 "%s%s%s"
                 "%s%s%s"
                 "Content-Length: %zu\r\n"
                 "%s\r\n",
                 k == K_OPTIONS ? "OPTIONS" : "POST", ql ? "?" : "", query, opt.host_hdr, d->ua,
                 d->auth, d->b64 ? "" : "MS-ASProtocolVersion: ", d->b64 ? "" : d->proto,
                 d->b64 ? "" : "\r\n", blen ? "Content-Type: " : "", blen ? ctype : "",
                 blen ? "\r\n" : "", blen, opt.new_conn ? "Connection: close\r\n" : "");
    if (hl < 0 || (size_t)hl >= sizeof(head))
        return -1;
    /* one write for small requests (one TLS record), two for big bodies */
    if (blen < 16384) {
        char one[sizeof(head) + 16384];
        memcpy(one, head, (size_t)hl);
        if (blen)
            memcpy(one + hl, body, blen);
        bnet_write(&c->nc, one, (size_t)hl + blen);
    } else {
        bnet_write(&c->nc, head, (size_t)hl);
        bnet_write(&c->nc, body, blen);
    }
    c->state = C_BUSY;
    st.issued++;
    if (c->hold) {
        st.held++;
        if (st.held > st.held_max)
            st.held_max = st.held;
    }
    return 0;
}

static void count_error(struct client *c, enum err e)
{
    st.errors[e]++;
    st.done++;
    if (c->hold && c->state == C_BUSY)
        st.held--;
    c->state = C_DOWN;
}

/* A rate-limited run: how many requests are due by now. */
static uint64_t due_count(uint64_t t)
{
    return (uint64_t)((double)(t - t_start) / 1e9 * opt.rate);
}

static int more_allowed(void)
{
    return !stopping && (opt.requests == 0 || st.issued < opt.requests);
}

static void send_next(struct client *c)
{
    c->state = C_IDLE;
    if (c->hold) {
        if (!stopping && send_request(c, K_PING, now_ns()) < 0)
            bnet_close(&c->nc, 0);
        return;
    }
    if (!more_allowed()) {
        if (opt.requests && st.done >= opt.requests)
            finish_run();
        return;
    }
    if (opt.rate > 0) {
        uint64_t now = now_ns();
        if (st.issued >= due_count(now)) {
            c->next_idle = idle_head; /* wait for the schedule */
            idle_head = c;
            return;
        }
        uint64_t due = t_start + (uint64_t)((double)st.issued / opt.rate * 1e9);
        if (send_request(c, pick_kind(), due) < 0)
            bnet_close(&c->nc, 0);
        return;
    }
    if (send_request(c, pick_kind(), now_ns()) < 0)
        bnet_close(&c->nc, 0);
}

static void on_ready(struct bnet_conn *nc)
{
    struct client *c = nc->data;
    st.connects++;
    if (nc->ssl) {
        st.handshakes++;
        if (nc->resumed)
            st.resumed++;
    }
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c;
    send_next(c);
}

static void remember_session(struct client *c)
{
    if (!opt.resume || !c->nc.ssl)
        return;
    SSL_SESSION *s = SSL_get1_session(c->nc.ssl);
    if (!s)
        return;
    if (c->sess)
        SSL_SESSION_free(c->sess);
    c->sess = s;
}

static void on_data(struct bnet_conn *nc, const char *buf, size_t len)
{
    struct client *c = nc->data;
    st.bytes_in += len;
    if (c->state != C_BUSY) {
        count_error(c, E_PARSE); /* bytes nobody asked for */
        bnet_close(nc, 0);
        return;
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, buf, len);
    if (e != HPE_OK && e != HPE_PAUSED && c->state == C_BUSY) {
        count_error(c, E_PARSE);
        bnet_close(nc, 0);
    }
}

static void on_close(struct bnet_conn *nc)
{
    struct client *c = nc->data;
    c->nc_live = 0;
    live--;
    if (c->state == C_CONNECTING || c->state == C_BUSY) {
        enum err e = nc->err == BNET_ECONNECT ? E_CONNECT
                     : nc->err == BNET_ETLS   ? E_TLS
                     : c->state == C_BUSY     ? E_CLOSED
                                              : E_CONNECT;
        if (!stopping)
            count_error(c, e);
    }
    int failed = nc->err == BNET_ECONNECT || nc->err == BNET_ETLS;
    c->state = C_DOWN;
    if (!stopping && (c->hold || more_allowed())) {
        if (!failed) {
            client_connect(c);
            return;
        }
        c->retry_at = now_ns() + RETRY_NS; /* the tick reconnects: no hot loop */
        return;
    }
    if (stopping && live == 0)
        uv_stop(loop);
}

static void client_connect(struct client *c)
{
    c->retry_at = 0;
    c->state = C_CONNECTING;
    c->nc.data = c;
    c->nc.on_ready = on_ready;
    c->nc.on_data = on_data;
    c->nc.on_close = on_close;
    if (bnet_connect(loop, &c->nc, (struct sockaddr *)&addr, ctx, opt.resume ? c->sess : NULL,
                     opt.sni) < 0) {
        count_error(c, E_CONNECT);
        return;
    }
    c->nc_live = 1;
    live++;
}

/* ---- response parsing ---- */

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct client *c = p->data;
    c->wbxml = c->wbxml == 1 ? 1 : (len == 12 && strncasecmp(at, "Content-Type", 12) == 0) ? 2 : 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct client *c = p->data;
    if (c->wbxml == 2)
        c->wbxml = len >= 29 && strncasecmp(at, "application/vnd.ms-sync.wbxml", 29) == 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct client *c = p->data;
    if (c->wbxml == 2)
        c->wbxml = 0;
    c->status = llhttp_get_status_code(p);
    if (c->status == 100) /* 100 Continue: the real answer follows */
        return 0;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct client *c = p->data;
    if (c->body_over || c->body_len + len > BODY_KEEP) {
        c->body_over = 1;
        return 0;
    }
    if (!c->body && !(c->body = malloc(BODY_KEEP))) {
        c->body_over = 1;
        return 0;
    }
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct client *c = p->data;
    if (c->status == 100) {
        c->wbxml = 0;
        return 0;
    }
    uint64_t t = now_ns();
    c->keep_alive = llhttp_should_keep_alive(p);
    st.done++;
    st.by_kind[c->kind]++;
    if (c->hold) {
        st.held--;
        st.hold_answered++;
    }
    enum err e = NERR;
    if (c->status >= 500)
        e = E_HTTP5;
    else if (c->status >= 400)
        e = E_HTTP4;
    else if (c->status != 200)
        e = E_HTTPX;
    else if (c->wbxml == 1 && !c->body_over && bwx_check(c->body, c->body_len) < 0)
        e = E_WBXML;
    if (e != NERR) {
        st.errors[e]++;
    } else {
        st.ok++;
        if (!c->hold) {
            uint64_t us = (t - c->t_due) / 1000;
            hist_record(&st.lat_kind[c->kind], us);
            if (c->kind != K_PING)
                hist_record(&st.lat, us);
        }
    }
    if (c->body && c->body_len > 4096) {
        free(c->body); /* keep idle clients small */
        c->body = NULL;
    }
    c->state = C_IDLE;
    remember_session(c);
    if (!c->keep_alive || (opt.new_conn && !c->hold) || stopping) {
        bnet_close(&c->nc, 0);
        return HPE_PAUSED;
    }
    send_next(c);
    return 0;
}

/* ---- timers, limits, report ---- */

static void stop_now(void)
{
    if (stopping)
        return;
    stopping = 1;
    t_stop_req = now_ns();
    for (int i = 0; i < nclients; i++)
        if (clients[i].nc_live)
            bnet_close(&clients[i].nc, 0);
    if (live == 0)
        uv_stop(loop);
}

static void finish_run(void)
{
    stop_now();
}

static void on_signal(uv_signal_t *s, int signum)
{
    stop_now();
}

static int holds_opened;

static void on_tick(uv_timer_t *t)
{
    uint64_t now = now_ns();
    double el = elapsed_s();
    if (stopping) {
        if ((double)(now - t_stop_req) / 1e9 > 5) /* should not happen: be sure to end */
            uv_stop(loop);
        return;
    }
    if (el >= opt.duration) {
        stop_now();
        return;
    }
    /* open held-Ping connections at --hold-rate per second */
    int want = (int)(el * opt.hold_rate) + 1;
    if (want > opt.hold)
        want = opt.hold;
    while (holds_opened < want) {
        client_connect(&clients[opt.connections + holds_opened]);
        holds_opened++;
    }
    /* rate mode: hand due requests to idle connections */
    if (opt.rate > 0) {
        while (idle_head && more_allowed() && st.issued < due_count(now)) {
            struct client *c = idle_head;
            idle_head = c->next_idle;
            if (c->state != C_IDLE || !c->nc_live)
                continue;
            uint64_t due = t_start + (uint64_t)((double)st.issued / opt.rate * 1e9);
            if (send_request(c, pick_kind(), due) < 0)
                bnet_close(&c->nc, 0);
        }
    }
    if (opt.requests && st.done >= opt.requests) {
        stop_now();
        return;
    }
    /* timeouts: a request older than --timeout (Pings: their heartbeat too);
     * reconnects that were put off after a failure */
    static uint64_t last_sweep;
    now = now_ns(); /* requests sent above are newer than the first reading */
    if (now - last_sweep > 50000000ull) {
        last_sweep = now;
        for (int i = 0; i < nclients; i++) {
            struct client *c = &clients[i];
            if (c->state == C_DOWN && c->retry_at && c->retry_at <= now) {
                client_connect(c);
                continue;
            }
            if (c->state != C_BUSY)
                continue;
            double limit = opt.timeout;
            if (c->kind == K_PING)
                limit += c->hold ? opt.hold_hb : opt.ping_hb;
            if ((double)(now - c->t_sent) / 1e9 > limit) {
                count_error(c, E_TIMEOUT);
                bnet_close(&c->nc, 0);
            }
        }
    }
}

static uint64_t errors_total(void)
{
    uint64_t n = 0;
    for (int e = 0; e < NERR; e++)
        n += st.errors[e];
    return n;
}

static void report(double secs)
{
    double rps = secs > 0 ? (double)st.ok / secs : 0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    if (!opt.quiet) {
        printf("easload: %" PRIu64 " answers in %.2f s: %.1f req/s ok, %" PRIu64
               " errors (%d connections, %d held-Ping connections, %d devices)\n",
               st.ok, secs, rps, errors_total(), opt.connections, opt.hold, opt.devices);
        printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f"
               " (Pings excluded)\n",
               hist_percentile(&st.lat, 50) / 1e3, hist_percentile(&st.lat, 90) / 1e3,
               hist_percentile(&st.lat, 99) / 1e3, hist_percentile(&st.lat, 99.9) / 1e3,
               st.lat.max / 1e3, hist_mean(&st.lat) / 1e3);
        printf("by command:");
        for (int k = 0; k < NKIND; k++)
            if (st.by_kind[k])
                printf(" %s %" PRIu64 " (p99 %.3f ms)", kind_name[k], st.by_kind[k],
                       hist_percentile(&st.lat_kind[k], 99) / 1e3);
        printf("\nerrors:");
        for (int e = 0; e < NERR; e++)
            printf(" %s %" PRIu64, err_name[e], st.errors[e]);
        printf("\ntls: %" PRIu64 " connections, %" PRIu64 " handshakes, %" PRIu64
               " resumed; held Pings: max %" PRIu64 ", answered %" PRIu64 "; cpu %.2f s\n",
               st.connects, st.handshakes, st.resumed, st.held_max, st.hold_answered, cpu);
    }
    if (opt.json) {
        FILE *f = strcmp(opt.json, "-") == 0 ? stdout : fopen(opt.json, "w");
        if (!f) {
            fprintf(stderr, "easload: cannot write %s: %s\n", opt.json, strerror(errno));
            return;
        }
        fprintf(f,
                "{\"seconds\":%.3f,\"ok\":%" PRIu64 ",\"errors\":%" PRIu64
                ",\"rps\":%.1f,\"p50_us\":%" PRIu64 ",\"p90_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
                ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64
                ",\"mean_us\":%.1f,\"connects\":%" PRIu64 ",\"handshakes\":%" PRIu64
                ",\"resumed\":%" PRIu64 ",\"held_max\":%" PRIu64 ",\"hold_answered\":%" PRIu64
                ",\"cpu_s\":%.3f,\"err\":{",
                secs, st.ok, errors_total(), rps, hist_percentile(&st.lat, 50),
                hist_percentile(&st.lat, 90), hist_percentile(&st.lat, 99),
                hist_percentile(&st.lat, 99.9), st.lat.max, hist_mean(&st.lat), st.connects,
                st.handshakes, st.resumed, st.held_max, st.hold_answered, cpu);
        for (int e = 0; e < NERR; e++)
            fprintf(f, "%s\"%s\":%" PRIu64, e ? "," : "", err_name[e], st.errors[e]);
        fprintf(f, "},\"cmds\":{");
        int first = 1;
        for (int k = 0; k < NKIND; k++)
            if (st.by_kind[k]) {
                fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",", kind_name[k], st.by_kind[k]);
                first = 0;
            }
        /* The latency histogram's non-empty buckets as [highest value, count],
         * so that the runs of several easload processes can be merged into one
         * set of percentiles (bench/run.sh spreads its load that way). */
        fprintf(f, "},\"min_us\":%" PRIu64 ",\"hist\":[", st.lat.count ? st.lat.min : 0);
        first = 1;
        for (unsigned i = 0; i < HIST_BUCKETS; i++)
            if (st.lat.buckets[i]) {
                fprintf(f, "%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", hist_bucket_top(i),
                        st.lat.buckets[i]);
                first = 0;
            }
        fprintf(f, "]}\n");
        if (f != stdout)
            fclose(f);
    }
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: easload --url http[s]://HOST:PORT [options]\n"
        "  --devices N        simulated devices (default 100)\n"
        "  --connections C    keep-alive connections for the request mix (default 10; 0 = none)\n"
        "  --rate R           requests/s over those connections (default: closed loop)\n"
        "  --duration S       stop after S seconds (default 10)\n"
        "  --requests N       stop after N answers (also bounded by --duration)\n"
        "  --mix LIST         weights, e.g. sync=50,ping=5,foldersync=10,sendmail=5,\n"
        "                     itemops=10,estimate=10,settings=5,provision=5,options=0\n"
        "                     (that is the default; 'sync' alone = only Sync)\n"
        "  --ping-heartbeat S HeartbeatInterval of Pings in the mix (default 2)\n"
        "  --hold-pings M     M more connections, each holding one Ping open\n"
        "  --hold-heartbeat S HeartbeatInterval of held Pings (default 3540)\n"
        "  --hold-rate R      open held-Ping connections at R/s (default 2000)\n"
        "  --attach BYTES     SendMail attachment size (default 50000)\n"
        "  --base64 PCT       share of devices using the base64 query (default 30)\n"
        "  --resume on|off    TLS session resumption (default on)\n"
        "  --new-conn         a new connection (and TLS handshake) for every request\n"
        "  --timeout S        a request unanswered for S s is an error (default 30)\n"
        "  --cafile FILE      verify the server against this CA (default: no check)\n"
        "  --sni NAME         TLS server name (default: the URL's host)\n"
        "  --id-offset N      number devices from N (several processes, distinct devices)\n"
        "  --json FILE        also write the results as JSON (- = stdout)\n"
        "  --quiet            no human-readable report\n");
}

static int parse_url(const char *u)
{
    const char *rest;
    if (strncmp(u, "https://", 8) == 0)
        opt.tls = 1, rest = u + 8;
    else if (strncmp(u, "http://", 7) == 0)
        opt.tls = 0, rest = u + 7;
    else
        return -1;
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= HOST_MAX)
        return -1;
    memcpy(opt.url_host, rest, n);
    opt.url_host[n] = '\0';
    snprintf(opt.host_hdr, sizeof(opt.host_hdr), "%s", opt.url_host);
    if (bnet_parse_addr(opt.url_host, &addr) < 0)
        return -1;
    return 0;
}

static int parse_mix(const char *s)
{
    memset(opt.weights, 0, sizeof(opt.weights));
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        long w = 1;
        if (eq) {
            *eq = '\0';
            char *end;
            w = strtol(eq + 1, &end, 10);
            if (*end || w < 0 || w > 1000000)
                return -1;
        }
        int k;
        for (k = 0; k < NKIND; k++)
            if (strcasecmp(tok, kind_key[k]) == 0 || strcasecmp(tok, kind_name[k]) == 0)
                break;
        if (k == NKIND) {
            fprintf(stderr, "easload: --mix: unknown command '%s'\n", tok);
            return -1;
        }
        opt.weights[k] = (int)w;
    }
    return 0;
}

static int num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {{"url", 1, 0, 'u'},         {"devices", 1, 0, 'd'},
                                       {"connections", 1, 0, 'c'}, {"rate", 1, 0, 'r'},
                                       {"duration", 1, 0, 't'},    {"requests", 1, 0, 'n'},
                                       {"mix", 1, 0, 'm'},         {"ping-heartbeat", 1, 0, 'p'},
                                       {"hold-pings", 1, 0, 'H'},  {"hold-heartbeat", 1, 0, 'B'},
                                       {"hold-rate", 1, 0, 'R'},   {"attach", 1, 0, 'a'},
                                       {"base64", 1, 0, '6'},      {"resume", 1, 0, 'S'},
                                       {"new-conn", 0, 0, 'N'},    {"timeout", 1, 0, 'T'},
                                       {"cafile", 1, 0, 'C'},      {"sni", 1, 0, 'I'},
                                       {"id-offset", 1, 0, 'o'},   {"json", 1, 0, 'j'},
                                       {"quiet", 0, 0, 'q'},       {0, 0, 0, 0}};
    static const char default_mix[] =
        "sync=50,ping=5,foldersync=10,sendmail=5,itemops=10,estimate=10,settings=5,provision=5";
    const char *url = NULL, *mix = default_mix;
    int ch, idx = 0;
    double v;
    while ((ch = getopt_long(argc, argv, "", lo, &idx)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'u':
            url = optarg;
            break;
        case 'd':
            bad = num(optarg, 1, 10000000, &v);
            opt.devices = (int)v;
            break;
        case 'c':
            bad = num(optarg, 0, 100000, &v);
            opt.connections = (int)v;
            break;
        case 'r':
            bad = num(optarg, 0, 1e7, &opt.rate);
            break;
        case 't':
            bad = num(optarg, 0.1, 86400, &opt.duration);
            break;
        case 'n':
            bad = num(optarg, 1, 1e15, &v);
            opt.requests = (uint64_t)v;
            break;
        case 'm':
            mix = optarg;
            break;
        case 'p':
            bad = num(optarg, 0, 3540, &v);
            opt.ping_hb = (int)v;
            break;
        case 'H':
            bad = num(optarg, 0, 1000000, &v);
            opt.hold = (int)v;
            break;
        case 'B':
            bad = num(optarg, 1, 3540, &v);
            opt.hold_hb = (int)v;
            break;
        case 'R':
            bad = num(optarg, 1, 1000000, &v);
            opt.hold_rate = (int)v;
            break;
        case 'a':
            bad = num(optarg, 0, 64.0 * 1024 * 1024, &v);
            opt.attach = (size_t)v;
            break;
        case '6':
            bad = num(optarg, 0, 100, &v);
            opt.b64_pct = (int)v;
            break;
        case 'S':
            bad = strcmp(optarg, "on") && strcmp(optarg, "off");
            opt.resume = strcmp(optarg, "on") == 0;
            break;
        case 'N':
            opt.new_conn = 1;
            break;
        case 'T':
            bad = num(optarg, 0.1, 86400, &opt.timeout);
            break;
        case 'C':
            opt.cafile = optarg;
            break;
        case 'I':
            opt.sni = optarg;
            break;
        case 'o':
            bad = num(optarg, 0, 1e9, &v);
            opt.id_offset = (int)v;
            break;
        case 'j':
            opt.json = optarg;
            break;
        case 'q':
            opt.quiet = 1;
            break;
        default:
            return -1;
        }
        if (bad) {
            fprintf(stderr, "easload: bad value '%s' for --%s\n", optarg, lo[idx].name);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "easload: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (!url || parse_url(url) < 0) {
        fprintf(stderr,
                "easload: --url http[s]://HOST:PORT is required (numeric host or localhost)\n");
        return -1;
    }
    if (parse_mix(mix) < 0)
        return -1;
    for (int k = 0; k < NKIND; k++) {
        total_weight += opt.weights[k];
        cum_weight[k] = total_weight;
    }
    if (opt.connections > 0 && total_weight == 0) {
        fprintf(stderr, "easload: --mix gives every command weight 0\n");
        return -1;
    }
    if (opt.connections == 0 && opt.hold == 0) {
        fprintf(stderr, "easload: nothing to do (--connections 0 and no --hold-pings)\n");
        return -1;
    }
    if (!opt.sni && opt.tls) {
        static char host[HOST_MAX];
        snprintf(host, sizeof(host), "%s", opt.url_host);
        char *colon = strrchr(host, ':');
        if (colon)
            *colon = '\0';
        if (host[0] != '[' && strspn(host, "0123456789.") != strlen(host))
            opt.sni = host; /* SNI takes names, not addresses */
    }
    return 0;
}

static void cleanup(void)
{
    for (int i = 0; i < nclients; i++) {
        free(clients[i].body);
        if (clients[i].sess)
            SSL_SESSION_free(clients[i].sess);
    }
    free(clients);
    free(devs);
    free(mime);
    for (int k = 0; k < NKIND; k++)
        bwx_free(&bodies[k]);
    bwx_free(&ping_hold_body);
    SSL_CTX_free(ctx);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
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
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max; /* use what we may */
        setrlimit(RLIMIT_NOFILE, &rl);
        if ((rlim_t)(opt.connections + opt.hold + 32) > rl.rlim_cur) {
            fprintf(stderr,
                    "easload: %d connections need more file descriptors than the limit %lu; "
                    "run several processes (--id-offset keeps their devices apart)\n",
                    opt.connections + opt.hold, (unsigned long)rl.rlim_cur);
            return 2;
        }
    }
    if (opt.tls) {
        char err[512];
        ctx = bnet_client_ctx(opt.cafile, err, sizeof(err));
        if (!ctx) {
            fprintf(stderr, "easload: %s\n", err);
            return 2;
        }
    }
    rng ^= (uint64_t)getpid() * 0x2545F4914F6CDD1Dull;
    nclients = opt.connections + opt.hold;
    clients = calloc((size_t)nclients, sizeof(*clients));
    if (!clients || make_devices() < 0 || build_mime() < 0) {
        fprintf(stderr, "easload: out of memory\n");
        cleanup();
        return 1;
    }
    build_bodies();
    hist_reset(&st.lat);
    for (int k = 0; k < NKIND; k++)
        hist_reset(&st.lat_kind[k]);
    llhttp_settings_init(&settings);
    settings.on_header_field = on_header_field;
    settings.on_header_value = on_header_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_body = on_body;
    settings.on_message_complete = on_message_complete;

    loop = uv_default_loop();
    uv_timer_init(loop, &tick);
    uv_signal_init(loop, &sig_int);
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    t_start = now_ns();
    for (int i = 0; i < nclients; i++) {
        clients[i].idx = i;
        clients[i].hold = i >= opt.connections;
        clients[i].state = C_DOWN;
    }
    for (int i = 0; i < opt.connections; i++)
        client_connect(&clients[i]);
    /* a rate needs a fine clock; otherwise 10 ms is plenty and idle held
     * Pings cost no CPU */
    uv_timer_start(&tick, on_tick, 1, opt.rate > 0 ? 1 : 10);
    uv_run(loop, UV_RUN_DEFAULT);
    double secs = (double)((stopping ? t_stop_req : now_ns()) - t_start) / 1e9;
    /* Stopping already: a second signal (a script's TERM after its INT)
     * must not kill the process before the report and --json are out, as
     * it would once the signal handles below are closed. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    /* close what is left (timer, signals, any connection) and drain */
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    report(secs);
    int rc = errors_total() > 0 ? 1 : 0;
    cleanup();
    return rc;
}
