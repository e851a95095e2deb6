/*
 * ews: the EWS operation of a SOAP request, read by libxml2 as a gate needs
 * it read. See ews.h for why a parser and why this configuration.
 */
#include "eas/ews.h"

#include <dlfcn.h>
#include <limits.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#define NS_SOAP11 "http://schemas.xmlsoap.org/soap/envelope/"
#define NS_SOAP12 "http://www.w3.org/2003/05/soap-envelope"
#define NS_EWS_MESSAGES "http://schemas.microsoft.com/exchange/services/2006/messages"

/* No network, no DTD loading or validation, no entity substitution, no
 * recovery; errors are returned, never printed. */
#define EWS_XML_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

/*
 * libxml2 is opened at the first EWS body, not by the dynamic loader at
 * start: with it come ICU and libstdc++ (Debian's libxml2 links them),
 * about 2.3 MiB of RSS in every proxy, and most proxies never read an EWS
 * body (EWS is refused unless the policy allows subscriptions). The few
 * functions used are looked up once; if libxml2 cannot be opened, every
 * EWS body is EWS_E_XML, so the gate stays closed.
 */
static struct {
    void (*init)(void);
    xmlParserCtxtPtr (*new_ctxt)(void);
    xmlDocPtr (*read_memory)(xmlParserCtxtPtr, const char *, int, const char *, const char *, int);
    xmlNodePtr (*root)(const xmlDoc *);
    void (*free_doc)(xmlDocPtr);
    void (*free_ctxt)(xmlParserCtxtPtr);
    void (*stop)(xmlParserCtxtPtr);
    void (*set_generic)(void *, xmlGenericErrorFunc);
    void (*set_structured)(void *, xmlStructuredErrorFunc);
    bool ok;
} X;
/* 0: not opened yet, 1: a thread is opening it, 2: done (X.ok says how) */
static atomic_int x_state;

static void x_open(void)
{
    void *h = dlopen("libxml2.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return;
    /* POSIX: a function pointer may be read through a void * lookup */
    *(void **)&X.init = dlsym(h, "xmlInitParser");
    *(void **)&X.new_ctxt = dlsym(h, "xmlNewParserCtxt");
    *(void **)&X.read_memory = dlsym(h, "xmlCtxtReadMemory");
    *(void **)&X.root = dlsym(h, "xmlDocGetRootElement");
    *(void **)&X.free_doc = dlsym(h, "xmlFreeDoc");
    *(void **)&X.free_ctxt = dlsym(h, "xmlFreeParserCtxt");
    *(void **)&X.stop = dlsym(h, "xmlStopParser");
    *(void **)&X.set_generic = dlsym(h, "xmlSetGenericErrorFunc");
    *(void **)&X.set_structured = dlsym(h, "xmlSetStructuredErrorFunc");
    if (!X.init || !X.new_ctxt || !X.read_memory || !X.root || !X.free_doc || !X.free_ctxt ||
        !X.stop || !X.set_generic || !X.set_structured)
        return; /* the handle stays open: nothing is worth closing it for */
    X.init();   /* once: every other thread waits in ews_xml_ready() */
    X.ok = true;
}

/* Thread-safe without a threads library (eas/ is pure code): the first
 * caller opens libxml2, any other caller meanwhile waits for it (a dlopen,
 * once in the process's life), and every later call is one atomic load. */
bool ews_xml_ready(void)
{
    if (atomic_load_explicit(&x_state, memory_order_acquire) != 2) {
        int none = 0;
        if (atomic_compare_exchange_strong(&x_state, &none, 1)) {
            x_open();
            atomic_store_explicit(&x_state, 2, memory_order_release);
        }
        while (atomic_load_explicit(&x_state, memory_order_acquire) != 2)
            sched_yield();
    }
    return X.ok;
}

static void say_nothing(void *ctx, const char *fmt, ...)
{
    (void)ctx, (void)fmt;
}

static void say_nothing_structured(void *ctx, xmlErrorPtr e)
{
    (void)ctx, (void)e;
}

/*
 * XML_PARSE_NOERROR silences the parser, not the encoding converters: a
 * body with bytes its declared encoding does not allow is reported through
 * libxml2's generic error handler, which prints to stderr, and would let a
 * client write to the proxy's log at will. The handlers are per thread in
 * libxml2 (its global state is thread-local), and the proxy's threads exist
 * before libxml2 is opened: each thread silences its own, once.
 */
static void quiet_this_thread(void)
{
    static _Thread_local bool quiet;
    if (quiet)
        return;
    X.set_generic(NULL, say_nothing);
    X.set_structured(NULL, say_nothing_structured);
    quiet = true;
}

/* A DOCTYPE stops the parse before its internal subset is read. */
static void on_dtd(void *ctx, const xmlChar *name, const xmlChar *ext, const xmlChar *sys)
{
    xmlParserCtxtPtr c = ctx;
    c->_private = (void *)1;
    X.stop(c);
}

static bool ns_is(const xmlNode *n, const char *href)
{
    return n->ns && n->ns->href && strcmp((const char *)n->ns->href, href) == 0;
}

static bool named(const xmlNode *n, const char *local)
{
    return strcmp((const char *)n->name, local) == 0;
}

/* Only whitespace, comments and processing instructions may sit beside the
 * elements of the SOAP frame. */
static bool is_ignorable(const xmlNode *n)
{
    if (n->type == XML_COMMENT_NODE || n->type == XML_PI_NODE)
        return true;
    if (n->type != XML_TEXT_NODE)
        return false; /* CDATA, entity references, ... */
    for (const xmlChar *s = n->content; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return false;
    return true;
}

/* The element children of parent in order, anything else refused. */
static int elements(const xmlNode *parent, const xmlNode **out, int max, int *count)
{
    *count = 0;
    for (const xmlNode *n = parent->children; n; n = n->next) {
        if (n->type == XML_ELEMENT_NODE) {
            if (*count == max)
                return -1;
            out[(*count)++] = n;
        } else if (!is_ignorable(n)) {
            return -1;
        }
    }
    return 0;
}

static enum ews_op op_of(const xmlNode *n)
{
    static const struct {
        const char *name;
        enum ews_op op;
    } ops[] = {{"Subscribe", EWS_OP_SUBSCRIBE},
               {"GetEvents", EWS_OP_GETEVENTS},
               {"GetStreamingEvents", EWS_OP_GETSTREAMINGEVENTS},
               {"Unsubscribe", EWS_OP_UNSUBSCRIBE}};
    if (!ns_is(n, NS_EWS_MESSAGES))
        return EWS_OP_OTHER;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (named(n, ops[i].name))
            return ops[i].op;
    return EWS_OP_OTHER;
}

static int frame(const xmlDoc *doc, enum ews_op *op)
{
    const xmlNode *env = X.root(doc);
    if (!env || !named(env, "Envelope"))
        return EWS_E_ENVELOPE;
    const char *soap = ns_is(env, NS_SOAP11) ? NS_SOAP11 : ns_is(env, NS_SOAP12) ? NS_SOAP12 : NULL;
    if (!soap)
        return EWS_E_ENVELOPE;
    const xmlNode *kids[2];
    int n;
    if (elements(env, kids, 2, &n) < 0 || n == 0)
        return EWS_E_BODY;
    const xmlNode *body = kids[n - 1];
    if (n == 2 && !(named(kids[0], "Header") && ns_is(kids[0], soap)))
        return EWS_E_BODY;
    if (!named(body, "Body") || !ns_is(body, soap))
        return EWS_E_BODY;
    const xmlNode *req;
    if (elements(body, &req, 1, &n) < 0 || n != 1)
        return EWS_E_OP;
    *op = op_of(req);
    return 0;
}

int ews_request_op(const char *body, size_t len, enum ews_op *op)
{
    if (!body || !op || len > (size_t)INT_MAX)
        return EWS_E_INVAL;
    *op = EWS_OP_OTHER;
    if (!ews_xml_ready())
        return EWS_E_XML;
    quiet_this_thread();
    xmlParserCtxtPtr ctx = X.new_ctxt();
    if (!ctx)
        return EWS_E_XML;
    ctx->sax->internalSubset = on_dtd;
    ctx->_private = NULL;
    xmlDocPtr doc = X.read_memory(ctx, body, (int)len, NULL, NULL, EWS_XML_OPTIONS);
    int rc;
    if (ctx->_private)
        rc = EWS_E_DTD;
    else if (!doc || !ctx->wellFormed || !ctx->nsWellFormed)
        rc = EWS_E_XML;
    else
        rc = frame(doc, op);
    X.free_doc(doc);
    X.free_ctxt(ctx);
    if (rc < 0)
        *op = EWS_OP_OTHER;
    return rc;
}

bool ews_is_subscription(const char *body, size_t len)
{
    enum ews_op op;
    return ews_request_op(body, len, &op) == 0 && op != EWS_OP_OTHER;
}

const char *ews_op_name(enum ews_op op)
{
    switch (op) {
    case EWS_OP_SUBSCRIBE:
        return "Subscribe";
    case EWS_OP_GETEVENTS:
        return "GetEvents";
    case EWS_OP_GETSTREAMINGEVENTS:
        return "GetStreamingEvents";
    case EWS_OP_UNSUBSCRIBE:
        return "Unsubscribe";
    case EWS_OP_OTHER:
    default:
        return "other";
    }
}

const char *ews_strerror(int err)
{
    switch (err) {
    case EWS_OK:
        return "ok";
    case EWS_E_XML:
        return "EWS body is not well-formed XML";
    case EWS_E_DTD:
        return "EWS body carries a document type declaration (SOAP forbids it)";
    case EWS_E_ENVELOPE:
        return "EWS body's root is not a SOAP Envelope";
    case EWS_E_BODY:
        return "SOAP Envelope without exactly one Body after an optional Header";
    case EWS_E_OP:
        return "SOAP Body without exactly one operation element";
    case EWS_E_INVAL:
        return "invalid argument";
    default:
        return "unknown EWS error";
    }
}
