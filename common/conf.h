/*
 * conf: easgate.yaml, the one configuration file every role reads.
 *
 * conf_load() parses and validates the whole file before anything listens: every key is known,
 * typed and in range, or the load fails with "FILE:LINE:COL: message". The keys are declared as
 * tables in conf.c and documented in docs/configuration.md; defaults live in
 * those tables only.
 *
 * A loaded struct conf is immutable and owned by the caller (conf_free()).
 * Every string in it points into memory the conf owns. On SIGHUP load a new
 * one; if that fails keep the old one (the error says why).
 *
 * Sections owned by other roles (core:, enroll:) are registered with
 * conf_register_section() before conf_load(); until their owner registers
 * them they are accepted and kept unparsed (conf_section_node()).
 */
#ifndef EG_CONF_H
#define EG_CONF_H

#include "common/log.h"
#include "common/units.h"
#include "common/ytree.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* An upstream url, split: "https://mail.example.com:8443" ->
 * tls=true, host="mail.example.com", port=8443. The path is always "/"
 * (the proxy forwards the client's path; it is never taken from config). */
struct conf_url {
    const char *url; /* as written */
    bool tls;
    const char *host; /* IPv6 without brackets */
    int port;
    const char *path; /* the server's path prefix ("/SOGo"), "" for none */
};

/* Where each route's requests go on the server (upstream.paths): the path
 * that replaces the client's /Microsoft-Server-ActiveSync, the client's
 * /autodiscover/autodiscover.xml, and the /EWS of the client's /EWS/...
 * Filled after loading: the url's prefix before the client's path unless
 * the file names one. */
struct conf_paths {
    const char *activesync, *autodiscover, *ews;
};

struct conf_upstream {
    struct conf_url *urls; /* round robin, next one on failure */
    size_t n_urls;
    const char *ca;         /* CA bundle for upstream TLS; NULL = system default */
    bool verify;            /* false: accept any certificate (warn loudly at start) */
    int pool_size;          /* idle keep-alive connections kept per worker per url */
    int64_t pool_idle_ms;   /* idle pooled connection closed after */
    int64_t retry_after_ms; /* Retry-After sent with 503 (rounded up to s) */
    int64_t down_ms;        /* a failed url is skipped this long, then probed */
    struct conf_paths paths;
};

/* The client's path of each route, as conf_paths maps them. */
#define CONF_PATH_ACTIVESYNC "/Microsoft-Server-ActiveSync"
#define CONF_PATH_AUTODISCOVER "/autodiscover/autodiscover.xml"
#define CONF_PATH_EWS "/EWS"
#define CONF_PATH_MAX 256 /* a path on the server, in bytes */

/* An address or network ("10.0.0.0/8", "2001:db8::/32", "192.0.2.7"), in
 * the 16-byte form IPv4 takes as ::ffff:a.b.c.d; bits counts over all 128. */
struct conf_net {
    uint8_t addr[16];
    int bits;
    const char *text;
};

/* Does the 16-byte address (as above) fall in one of the n networks? */
bool conf_net_match(const struct conf_net *nets, size_t n, const uint8_t addr[16]);
/* Parse text as an IP address into the 16-byte form: 0, or -1. */
int conf_ip16(const char *text, size_t len, uint8_t out[16]);

#define CONF_INSTANCES_MAX 16 /* proxy.instances in one process */

struct conf_instance {
    const char *name;
    struct units_addr listen;
    struct {
        const char *cert, *key; /* both NULL = plain HTTP */
    } tls;
    struct {
        const char *ca;  /* NULL = no client certificates asked */
        const char *crl; /* CRL of that CA (DER or PEM), NULL = none */
        bool required;
    } client_auth;
    bool proxy_protocol; /* a PROXY protocol v1/v2 header opens every connection */
    /* Host names (globs) the instance answers for: Host and an absolute-form
     * target's authority must match one (else 421); empty = any name. */
    struct yt_strv server_names;
    struct {
        struct conf_net *v; /* balancers whose X-Forwarded-For is believed */
        size_t n;
    } trusted_proxies;
    struct conf_upstream upstream;
};

struct conf_timeouts {
    int64_t handshake_ms;         /* a client's TLS handshake must finish within */
    int64_t header_ms;            /* whole request head must arrive within */
    int64_t body_ms;              /* idle gap allowed while reading/writing a body */
    int64_t keepalive_ms;         /* idle keep-alive client connection closed after */
    int64_t long_poll_margin_ms;  /* Ping/Sync wait: heartbeat + this margin */
    int64_t upstream_connect_ms;  /* TCP + TLS connect to upstream */
    int64_t upstream_response_ms; /* upstream response head (non long-poll) */
    int64_t drain_grace_ms;       /* SIGTERM: in-flight requests finish within */
    /* a client connection this old ends after its answer; 0 = no limit */
    int64_t max_connection_age_ms;
};

struct conf_limits {
    int64_t max_header_size;        /* bytes of request head; over -> 431 */
    int64_t max_body_read;          /* bytes of a body the proxy reads itself
                                       (Provision, Settings, EWS); over -> 413 */
    int max_connections;            /* per process, all instances; over -> 503 */
    int max_connections_per_client; /* per client IP; over -> 503 */
    int64_t max_heartbeat_ms;       /* Ping/Sync heartbeat honoured up to */
    /* the last request on a connection is answered Connection: close; 0 = no limit */
    int64_t max_requests_per_connection;
};

struct conf_proxy {
    int workers; /* event-loop threads */
    struct units_addr admin_listen;
    bool has_admin; /* admin_listen set (it is unless "off") */
    struct conf_timeouts timeouts;
    struct conf_limits limits;
    struct conf_instance *instances;
    size_t n_instances;
};

struct conf_redis {
    bool enabled;    /* the redis: section is present */
    const char *url; /* as written (password masked when printed) */
    const char *host;
    int port;
    const char *password; /* NULL = none */
    int db;
    struct {
        const char *master;   /* NULL = no Sentinel */
        struct yt_strv nodes; /* "host:port" strings, validated */
    } sentinel;
    int64_t max_stale_ms;         /* serve cached state this long after last contact */
    int64_t lookup_timeout_ms;    /* one HGETALL may take this long */
    int64_t sighting_interval_ms; /* a device is reported at most this often */
    int64_t stream_maxlen;        /* XADD MAXLEN ~ for easgate:sightings */
};

struct conf_log {
    const char *access; /* path, "-" = stdout, NULL = off */
    const char *error;  /* path, "-" = stderr */
    enum eg_log_level level;
};

struct conf {
    const char *path; /* the file as given */
    const char *dir;  /* its directory: base of relative paths */
    bool has_proxy;   /* proxy: section present */
    struct conf_proxy proxy;
    /* resolved against dir; NULL = no policy key. Load it with pol_load()
     * (policy/pol.h): common/ sits below policy/, so the conf only names it. */
    const char *policy_path;
    struct conf_log log;
    struct conf_redis redis;
    /* private */
    struct yt_doc *doc;
    void *sections[8];
};

/* Load and validate FILE. 0, or negative with err filled. */
int conf_load(const char *path, struct conf **out, char *err, size_t errlen);
/* Same from memory; name is used in messages, dir resolves relative paths
 * (NULL = leave them relative). Nothing is read from disk. */
int conf_load_buf(const char *name, const char *dir, const char *buf, size_t len, struct conf **out,
                  char *err, size_t errlen);
void conf_free(struct conf *c);

/* Every key with its effective value, defaults included, as YAML. */
void conf_print(FILE *f, const struct conf *c);

/*
 * The redis: section as its key table's defaults make it, parsed by the same
 * code as a file. For code handed a struct conf_redis filled by hand (tests,
 * tools): its zero fields take these, so a default is written in one place.
 * Thread-safe; never NULL; lives as long as the process.
 */
const struct conf_redis *conf_redis_defaults(void);

/* A top-level section another role parses with its own key table. The conf
 * allocates size zeroed bytes in its arena and fills them with keys (defaults
 * applied) when the section is present. Register before conf_load, from one
 * thread, with static storage; at most 6. Returns 0 or -EEXIST/-ENOSPC. */
struct conf_section {
    const char *name;
    size_t size;
    const struct yt_key *keys;
};
int conf_register_section(const struct conf_section *s);

/* The filled section struct, or NULL when the file has no such section. */
const void *conf_section(const struct conf *c, const char *name);
/* The raw node of a top-level section (registered or not), or NULL. */
const struct yt_node *conf_section_node(const struct conf *c, const char *name);

#endif
