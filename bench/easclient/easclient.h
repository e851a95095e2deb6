/*
 * easclient internals, shared by its three files:
 *   ec_net.c      HTTP/1.1 over TCP or TLS (OpenSSL, blocking), one request
 *                 at a time, optionally kept alive across requests;
 *   ec_tree.c     a WBXML answer as a small tree of tags and texts, so the
 *                 session can read nested answers (Sync, FolderSync) by path;
 *   ec_session.c  the session script: a phone's whole conversation, printed
 *                 as a normalised transcript that two runs can be diffed by.
 * easclient.c holds main and the one-shot commands.
 */
#ifndef EG_EASCLIENT_H
#define EG_EASCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/ssl.h>

/* ---- where to talk to (--url and the TLS options) ---- */

struct ec_target {
    char host[256], port[16];
    char prefix[256]; /* path before /Microsoft-Server-ActiveSync ("" or "/SOGo") */
    bool tls;
    const char *cafile; /* verify the server against it; NULL: no verification */
    const char *sni;    /* TLS server name; NULL: the URL's host when it is a name */
    int timeout_s;      /* per read/write */
};

/* http://HOST:PORT[/PREFIX] or https://...; [v6] hosts. 0 or -1 (said on stderr). */
int ec_url_parse(const char *url, struct ec_target *t);

/* ---- one HTTP exchange ---- */

struct ec_resp {
    int status;
    char *head;    /* raw head, NUL-terminated */
    uint8_t *body; /* NUL-terminated after len bytes */
    size_t len;
};

/* Value of the first header `name` in r->head (case-insensitive), copied
 * into out[n] without surrounding blanks; NULL when absent. */
const char *ec_resp_header(const struct ec_resp *r, const char *name, char *out, size_t n);
void ec_resp_free(struct ec_resp *r);

/* A client connection that may carry several requests. The counters tell a
 * test what the server did with the connection. */
struct ec_net {
    const struct ec_target *t;
    SSL_CTX *ctx;
    int fd;
    SSL *ssl;
    bool keepalive;       /* false: Connection: close, one request per connection */
    unsigned on_conn;     /* answers read on the current connection */
    unsigned connects;    /* connections opened */
    unsigned closed_idle; /* kept-alive connections the server had closed by the next request */
    unsigned lost;        /* requests sent on a kept-alive connection that was closed unanswered */
    FILE *report;         /* one line per connection event, NULL: none */
    const char *step;     /* name of the request being made, for the report */
};

int ec_net_init(struct ec_net *n, const struct ec_target *t, bool keepalive, FILE *report);
void ec_net_free(struct ec_net *n);
/* Send head (ending in the blank line) and body, read the whole answer (1xx
 * skipped; Content-Length, chunked or to the end of the connection). A request
 * that a kept-alive connection lost without a byte of answer is sent once
 * more on a new connection, as phones and browsers do. 0 or -1 (said on stderr). */
int ec_net_roundtrip(struct ec_net *n, const char *head, size_t hlen, const void *body, size_t blen,
                     struct ec_resp *r);

/* ---- WBXML answers as trees ---- */

struct ec_node {
    uint16_t tag;
    int parent, child, next; /* indexes into ec_tree.nodes, -1: none */
    char *text;              /* inline string(s), NUL-terminated; NULL: none */
    size_t text_len;
    size_t opaque_len; /* bytes of opaque data */
};

struct ec_tree {
    struct ec_node *nodes; /* nodes[0] is the root */
    int n, cap;
};

/* 0, or a negative wbxml error (the tree is then empty). */
int ec_tree_parse(struct ec_tree *t, const void *wbxml, size_t len);
void ec_tree_free(struct ec_tree *t);
/* Tag name without its namespace ("Status"). */
const char *ec_tree_name(const struct ec_tree *t, int node);
/* The first node under `from` reached by a path of child names separated by
 * '/' ("Collections/Collection/Status"); -1 when there is none. */
int ec_tree_find(const struct ec_tree *t, int from, const char *path);
/* The next sibling of `node` with the same name; -1 when none. */
int ec_tree_next_same(const struct ec_tree *t, int node);
/* Text of the node at path under from, or "" (never NULL). */
const char *ec_tree_text(const struct ec_tree *t, int from, const char *path);

/* ---- the session ---- */

struct ec_session_opts {
    const struct ec_target *t;
    const char *user, *password, *device, *type, *version;
    const char *script; /* file, "-" for stdin */
    FILE *report;       /* connection report, NULL: none */
};

/* Runs the script, prints the transcript on stdout. 0 when every step got an
 * answer, 1 when one did not (the transcript says which), 2 on a bad script. */
int ec_session_run(const struct ec_session_opts *o);

/* ---- shared by the one-shot commands and the session ---- */

/* The request target for cmd: PREFIX/Microsoft-Server-ActiveSync?Cmd=... */
int ec_target_path(const struct ec_target *t, char *out, size_t n, const char *cmd,
                   const char *user, const char *device, const char *type);
/* "Authorization: Basic base64(user:password)\r\n" into out; 0 or -1. */
int ec_basic_auth(char *out, size_t n, const char *user, const char *password);
/* XML in MS-ASWBXML namespaces -> WBXML (malloc'd); 0 or -1 (said on stderr). */
int ec_encode(const char *xml, size_t len, uint8_t **out, size_t *olen);

#endif
