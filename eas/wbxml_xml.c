/*
 * wbxml_xml: WBXML <-> XML for people (easgate wbxml decode|encode) and for
 * the tests' corpus. Not on the request path, so it may allocate freely.
 *
 * The XML form: the root element's code page is the default namespace
 * (xmlns="Provision"), every other page used is declared on the root with
 * its lowercased name as prefix (xmlns:settings="Settings"); namespace names
 * are MS-ASWBXML's. Leaf text is written inline, so the whitespace inside a
 * string survives; the indentation between elements is ignored on reading.
 * OPAQUE data is a processing instruction holding base64, <?opaque SGk=?>,
 * because it can sit anywhere in an element's content, as OPAQUE can.
 *
 * The reader takes that form back, and also what other tools write: default
 * namespaces redeclared on any element (libwbxml's xmlns="AirSync:"), an XML
 * declaration, DOCTYPE, comments, CDATA, the five named entities and &#N;.
 * Anything else (other attributes, unknown names) is an error with the byte
 * offset where it was found.
 */
#include "eas/wbxml.h"

#include "common/b64.h"
#include "common/sbuf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- WBXML -> XML ---- */

struct printer {
    struct sbuf out;
    uint32_t pages_used; /* bit per page, from the first pass */
    uint16_t root;
    bool had_child[WBXML_MAX_DEPTH + 2]; /* element has child elements/opaque */
    bool had_text[WBXML_MAX_DEPTH + 2];
    uint8_t carry[3]; /* base64 bytes not yet written */
    int ncarry;
};

static int collect_pages(void *ud, const struct wbxml_ev *ev)
{
    struct printer *pr = ud;
    if (ev->type == WBXML_EV_START) {
        pr->pages_used |= 1u << WBXML_TAG_PAGE(ev->tag);
        if (ev->depth == 1)
            pr->root = ev->tag;
    }
    return 0;
}

static void print_prefix_lower(struct sbuf *b, unsigned page)
{
    for (const char *s = wbxml_page_name(page); *s; s++)
        sbuf_char(b, (char)tolower((unsigned char)*s));
}

static void print_name(struct printer *pr, uint16_t tag)
{
    unsigned page = WBXML_TAG_PAGE(tag);
    if (page != WBXML_TAG_PAGE(pr->root)) {
        print_prefix_lower(&pr->out, page);
        sbuf_char(&pr->out, ':');
    }
    sbuf_str(&pr->out, wbxml_tag_name(page, WBXML_TAG_TOKEN(tag)));
}

static void print_indent(struct printer *pr, int depth)
{
    sbuf_char(&pr->out, '\n');
    for (int i = 1; i < depth; i++)
        sbuf_str(&pr->out, "  ");
}

static void print_namespaces(struct printer *pr)
{
    unsigned rootpage = WBXML_TAG_PAGE(pr->root);
    sbuf_str(&pr->out, " xmlns=\"");
    sbuf_str(&pr->out, wbxml_page_name(rootpage));
    sbuf_char(&pr->out, '"');
    for (unsigned p = 0; p < WBXML_NPAGES; p++) {
        if (p == rootpage || !(pr->pages_used & (1u << p)))
            continue;
        sbuf_str(&pr->out, " xmlns:");
        print_prefix_lower(&pr->out, p);
        sbuf_str(&pr->out, "=\"");
        sbuf_str(&pr->out, wbxml_page_name(p));
        sbuf_char(&pr->out, '"');
    }
}

static void print_text(struct sbuf *b, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        switch (c) {
        case '&':
            sbuf_str(b, "&amp;");
            break;
        case '<':
            sbuf_str(b, "&lt;");
            break;
        case '>':
            sbuf_str(b, "&gt;");
            break;
        default:
            if (c < 0x20 && c != '\n' && c != '\t') {
                char tmp[8];
                tmp[0] = '&';
                tmp[1] = '#';
                tmp[2] = (char)('0' + c / 10);
                tmp[3] = (char)('0' + c % 10);
                tmp[4] = ';';
                sbuf_put(b, tmp, 5);
            } else {
                sbuf_char(b, (char)c);
            }
        }
    }
}

static void b64_flush3(struct printer *pr, const uint8_t *in, int n)
{
    char o[5];
    size_t len = 0;
    b64_encode(in, (size_t)n, o, sizeof(o), 0, &len);
    sbuf_put(&pr->out, o, len);
}

static void print_opaque(struct printer *pr, const struct wbxml_ev *ev)
{
    if (ev->first) {
        /* Inline, like text: <Mime><?opaque ...?></Mime>. */
        sbuf_str(&pr->out, "<?opaque ");
        pr->ncarry = 0;
    }
    for (size_t i = 0; i < ev->len; i++) {
        pr->carry[pr->ncarry++] = ev->data[i];
        if (pr->ncarry == 3) {
            b64_flush3(pr, pr->carry, 3);
            pr->ncarry = 0;
        }
    }
    if (ev->last) {
        if (pr->ncarry)
            b64_flush3(pr, pr->carry, pr->ncarry);
        sbuf_str(&pr->out, "?>");
    }
}

static int print_cb(void *ud, const struct wbxml_ev *ev)
{
    struct printer *pr = ud;
    int d = ev->depth;

    switch (ev->type) {
    case WBXML_EV_START:
        if (d > 1) {
            if (!pr->had_text[d - 1])
                print_indent(pr, d);
            pr->had_child[d - 1] = true;
        }
        pr->had_child[d] = pr->had_text[d] = false;
        sbuf_char(&pr->out, '<');
        print_name(pr, ev->tag);
        if (d == 1)
            print_namespaces(pr);
        sbuf_str(&pr->out, ev->content ? ">" : "/>");
        break;
    case WBXML_EV_END:
        if (!ev->content)
            break;
        if (pr->had_child[d] && !pr->had_text[d])
            print_indent(pr, d);
        sbuf_str(&pr->out, "</");
        print_name(pr, ev->tag);
        sbuf_char(&pr->out, '>');
        break;
    case WBXML_EV_TEXT:
        pr->had_text[d] = true;
        print_text(&pr->out, ev->data, ev->len);
        break;
    case WBXML_EV_OPAQUE:
        print_opaque(pr, ev);
        break;
    }
    return pr->out.oom ? -1 : 0;
}

int wbxml_to_xml(const void *buf, size_t len, char **out, size_t *out_len, uint64_t *err_off)
{
    struct printer pr;
    struct wbxml_dec d;
    int rc;

    memset(&pr, 0, sizeof(pr));
    *out = NULL;
    if (err_off)
        *err_off = 0;
    /* Pass 1 validates and finds the pages to declare on the root. */
    rc = wbxml_check(buf, len, err_off);
    if (rc)
        return rc;
    wbxml_dec_init(&d, collect_pages, &pr);
    wbxml_dec_feed(&d, buf, len);
    sbuf_str(&pr.out, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    wbxml_dec_init(&d, print_cb, &pr);
    rc = wbxml_dec_feed(&d, buf, len);
    if (rc == 0)
        rc = wbxml_dec_finish(&d);
    sbuf_char(&pr.out, '\n');
    if (pr.out.oom)
        rc = WBXML_E_NOMEM;
    if (rc) {
        sbuf_free(&pr.out);
        return rc;
    }
    *out = sbuf_take(&pr.out, out_len);
    return 0;
}

/* ---- XML -> WBXML ---- */

#define XP_MAX_BINDS 64

struct xp_level {
    const char *qname; /* points into the input */
    size_t qlen;
    int def_page; /* default namespace page in scope, -1 if none */
    int nbinds;   /* bindings in scope when this element opened */
    bool has_child;
};

struct xp {
    const char *s;
    size_t n, i;
    struct wbxml_w w;
    struct sbuf text; /* pending text of the current element */
    bool text_pending;
    int depth;
    bool had_root;
    struct xp_level lv[WBXML_MAX_DEPTH + 2];
    struct {
        const char *pfx;
        size_t plen;
        int page;
    } binds[XP_MAX_BINDS];
    int nbinds;
    const char *why;
    size_t err_at;
    int err;
};

static int xp_fail(struct xp *x, size_t at, int err, const char *why)
{
    if (!x->err) {
        x->err = err;
        x->err_at = at;
        x->why = why;
    }
    return x->err;
}

static bool xp_starts(struct xp *x, const char *lit)
{
    size_t l = strlen(lit);
    return x->n - x->i >= l && memcmp(x->s + x->i, lit, l) == 0;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == ':' ||
           (unsigned char)c >= 0x80;
}

static void xp_skip_ws(struct xp *x)
{
    while (x->i < x->n && is_ws(x->s[x->i]))
        x->i++;
}

/* Skip past the literal end marker; error if the input ends first. */
static int xp_skip_past(struct xp *x, const char *endlit, const char *why)
{
    size_t start = x->i, l = strlen(endlit);
    for (; x->i + l <= x->n; x->i++)
        if (memcmp(x->s + x->i, endlit, l) == 0) {
            x->i += l;
            return 0;
        }
    return xp_fail(x, start, WBXML_E_XML, why);
}

static bool all_ws(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_ws(s[i]))
            return false;
    return true;
}

/* Flush the pending text before a child (drop indentation) or at the end. */
static void xp_flush_text(struct xp *x, bool at_end)
{
    struct xp_level *l = &x->lv[x->depth];
    if (x->depth == 0)
        return;
    if (at_end && !l->has_child) {
        wbxml_w_str(&x->w, x->text.p ? x->text.p : "", x->text.len);
    } else if (x->text_pending && !all_ws(x->text.p, x->text.len)) {
        wbxml_w_str(&x->w, x->text.p, x->text.len);
    }
    sbuf_reset(&x->text);
    x->text_pending = false;
}

static int xp_append_utf8(struct xp *x, unsigned long cp)
{
    char u[4];
    if (cp == 0 || cp > 0x10FFFF)
        return -1;
    if (cp < 0x80) {
        u[0] = (char)cp;
        sbuf_put(&x->text, u, 1);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        sbuf_put(&x->text, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        sbuf_put(&x->text, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        sbuf_put(&x->text, u, 4);
    }
    return 0;
}

static int xp_entity(struct xp *x)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    size_t at = x->i++;
    for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++)
        if (xp_starts(x, named[k].name)) {
            x->i += strlen(named[k].name);
            sbuf_char(&x->text, named[k].c);
            return 0;
        }
    if (x->i < x->n && x->s[x->i] == '#') {
        unsigned long cp = 0;
        int base = 10, digits = 0;
        x->i++;
        if (x->i < x->n && x->s[x->i] == 'x') {
            base = 16;
            x->i++;
        }
        for (; x->i < x->n && isxdigit((unsigned char)x->s[x->i]); x->i++) {
            char c = x->s[x->i];
            int v = isdigit((unsigned char)c) ? c - '0' : (tolower((unsigned char)c) - 'a' + 10);
            if (v >= base || cp > 0x10FFFF)
                return xp_fail(x, at, WBXML_E_XML, "bad character reference");
            cp = cp * (unsigned long)base + (unsigned long)v;
            digits++;
        }
        if (digits && x->i < x->n && x->s[x->i] == ';') {
            x->i++;
            if (xp_append_utf8(x, cp) == 0)
                return 0;
        }
        return xp_fail(x, at, WBXML_E_XML, "bad character reference");
    }
    return xp_fail(x, at, WBXML_E_XML, "unknown entity (only &amp; &lt; &gt; &quot; &apos; &#N;)");
}

static int xp_lookup_prefix(struct xp *x, const char *p, size_t plen)
{
    for (int k = x->nbinds - 1; k >= 0; k--)
        if (x->binds[k].plen == plen && memcmp(x->binds[k].pfx, p, plen) == 0)
            return x->binds[k].page;
    return -1;
}

/* <?opaque BASE64?> inside an element. Lax: the text may be wrapped and
 * indented, as other tools write it. */
static int xp_opaque(struct xp *x, size_t at, const char *body, size_t blen)
{
    uint8_t *bin = malloc(b64_decoded_max(blen));
    size_t nb = 0;
    if (!bin)
        return xp_fail(x, at, WBXML_E_NOMEM, "out of memory");
    int rc = b64_decode(body, blen, bin, b64_decoded_max(blen), B64_LAX, &nb);
    if (rc < 0) {
        free(bin);
        return xp_fail(x, at, WBXML_E_XML,
                       rc == B64_E_CHAR ? "bad base64 in <?opaque?>"
                                        : "bad base64 length in <?opaque?>");
    }
    wbxml_w_opaque(&x->w, bin, nb);
    free(bin);
    return 0;
}

static int xp_pi(struct xp *x)
{
    size_t at = x->i;
    x->i += 2;
    size_t name = x->i;
    while (x->i < x->n && is_name_char(x->s[x->i]))
        x->i++;
    size_t nlen = x->i - name;
    size_t body = x->i;
    if (xp_skip_past(x, "?>", "unterminated processing instruction"))
        return x->err;
    if (x->depth == 0)
        return 0; /* <?xml ...?> and the like, outside the root */
    if (nlen != 6 || memcmp(x->s + name, "opaque", 6) != 0)
        return xp_fail(x, at, WBXML_E_XML, "processing instruction other than <?opaque?>");
    xp_flush_text(x, false);
    x->lv[x->depth].has_child = true;
    return xp_opaque(x, at, x->s + body, x->i - 2 - body);
}

/* One attribute: only namespace declarations are allowed. */
static int xp_attr(struct xp *x, int *def_page)
{
    size_t at = x->i, name = x->i;
    while (x->i < x->n && is_name_char(x->s[x->i]))
        x->i++;
    size_t nlen = x->i - name;
    xp_skip_ws(x);
    if (nlen == 0 || x->i >= x->n || x->s[x->i] != '=')
        return xp_fail(x, at, WBXML_E_XML, "expected attribute name=value");
    x->i++;
    xp_skip_ws(x);
    if (x->i >= x->n || (x->s[x->i] != '"' && x->s[x->i] != '\''))
        return xp_fail(x, at, WBXML_E_XML, "attribute value must be quoted");
    char q = x->s[x->i++];
    size_t val = x->i;
    while (x->i < x->n && x->s[x->i] != q)
        x->i++;
    if (x->i >= x->n)
        return xp_fail(x, at, WBXML_E_XML, "unterminated attribute value");
    size_t vlen = x->i - val;
    x->i++;
    const char *nm = x->s + name;
    int page = wbxml_page_by_name(x->s + val, vlen);
    if (nlen == 5 && memcmp(nm, "xmlns", 5) == 0) {
        if (page < 0)
            return xp_fail(x, val, WBXML_E_XMLNAME,
                           "unknown namespace (not an ActiveSync code page)");
        *def_page = page;
        return 0;
    }
    if (nlen > 6 && memcmp(nm, "xmlns:", 6) == 0) {
        if (page < 0)
            return xp_fail(x, val, WBXML_E_XMLNAME,
                           "unknown namespace (not an ActiveSync code page)");
        if (x->nbinds == XP_MAX_BINDS)
            return xp_fail(x, at, WBXML_E_XML, "too many namespace declarations");
        x->binds[x->nbinds].pfx = nm + 6;
        x->binds[x->nbinds].plen = nlen - 6;
        x->binds[x->nbinds].page = page;
        x->nbinds++;
        return 0;
    }
    return xp_fail(x, at, WBXML_E_XML, "attribute other than xmlns (ActiveSync has no attributes)");
}

static int xp_start_tag(struct xp *x)
{
    size_t at = x->i++;
    size_t name = x->i;
    while (x->i < x->n && is_name_char(x->s[x->i]))
        x->i++;
    size_t qlen = x->i - name;
    if (qlen == 0)
        return xp_fail(x, at, WBXML_E_XML, "expected an element name after '<'");
    if (x->depth == 0 && x->had_root)
        return xp_fail(x, at, WBXML_E_XML, "a second root element");
    if (x->depth >= WBXML_MAX_DEPTH)
        return xp_fail(x, at, WBXML_E_DEPTH, "elements nested too deep");
    int def_page = x->lv[x->depth].def_page, nbinds = x->nbinds;
    bool empty = false;
    for (;;) {
        xp_skip_ws(x);
        if (x->i >= x->n)
            return xp_fail(x, at, WBXML_E_XML, "unterminated start tag");
        if (x->s[x->i] == '>') {
            x->i++;
            break;
        }
        if (xp_starts(x, "/>")) {
            x->i += 2;
            empty = true;
            break;
        }
        if (xp_attr(x, &def_page))
            return x->err;
    }
    /* Resolve the element's page: prefix binding or the default namespace. */
    const char *qn = x->s + name, *colon = memchr(qn, ':', qlen);
    const char *local = colon ? colon + 1 : qn;
    size_t llen = qlen - (size_t)(local - qn);
    int page = colon ? xp_lookup_prefix(x, qn, (size_t)(colon - qn)) : def_page;
    if (page < 0)
        return xp_fail(x, at, WBXML_E_XMLNAME,
                       colon ? "undeclared namespace prefix" : "element has no namespace");
    int token = wbxml_tag_by_name((unsigned)page, local, llen);
    if (token < 0)
        return xp_fail(x, name, WBXML_E_XMLNAME, "element not in its namespace's code page");
    xp_flush_text(x, false);
    if (x->depth > 0)
        x->lv[x->depth].has_child = true;
    x->had_root = true;
    if (empty) {
        wbxml_w_empty(&x->w, WBXML_TAG(page, token));
        x->nbinds = nbinds;
        return 0;
    }
    wbxml_w_start(&x->w, WBXML_TAG(page, token));
    struct xp_level *l = &x->lv[++x->depth];
    l->qname = qn;
    l->qlen = qlen;
    l->def_page = def_page;
    l->nbinds = nbinds;
    l->has_child = false;
    return 0;
}

static int xp_end_tag(struct xp *x)
{
    size_t at = x->i;
    x->i += 2;
    size_t name = x->i;
    while (x->i < x->n && is_name_char(x->s[x->i]))
        x->i++;
    size_t qlen = x->i - name;
    xp_skip_ws(x);
    if (x->i >= x->n || x->s[x->i] != '>')
        return xp_fail(x, at, WBXML_E_XML, "unterminated end tag");
    x->i++;
    if (x->depth == 0)
        return xp_fail(x, at, WBXML_E_XML, "end tag with no open element");
    struct xp_level *l = &x->lv[x->depth];
    if (l->qlen != qlen || memcmp(l->qname, x->s + name, qlen) != 0)
        return xp_fail(x, at, WBXML_E_XML, "end tag does not match the open element");
    xp_flush_text(x, true);
    wbxml_w_end(&x->w);
    x->nbinds = l->nbinds;
    x->depth--;
    return 0;
}

static int xp_run(struct xp *x)
{
    while (x->i < x->n && !x->err) {
        char c = x->s[x->i];
        if (c == '<') {
            if (xp_starts(x, "<?"))
                xp_pi(x);
            else if (xp_starts(x, "<!--"))
                xp_skip_past(x, "-->", "unterminated comment");
            else if (xp_starts(x, "<![CDATA[")) {
                size_t at = x->i;
                x->i += 9;
                size_t st = x->i;
                if (xp_skip_past(x, "]]>", "unterminated CDATA section") == 0) {
                    if (x->depth == 0)
                        return xp_fail(x, at, WBXML_E_XML, "text outside the root element");
                    sbuf_put(&x->text, x->s + st, x->i - 3 - st);
                    x->text_pending = true;
                }
            } else if (xp_starts(x, "<!"))
                xp_skip_past(x, ">", "unterminated declaration"); /* DOCTYPE */
            else if (xp_starts(x, "</"))
                xp_end_tag(x);
            else
                xp_start_tag(x);
            continue;
        }
        if (x->depth == 0) {
            if (!is_ws(c))
                return xp_fail(x, x->i, WBXML_E_XML, "text outside the root element");
            x->i++;
            continue;
        }
        x->text_pending = true;
        if (c == '&') {
            xp_entity(x);
            continue;
        }
        size_t st = x->i;
        while (x->i < x->n && x->s[x->i] != '<' && x->s[x->i] != '&')
            x->i++;
        if (memchr(x->s + st, 0, x->i - st))
            return xp_fail(x, st, WBXML_E_XML, "NUL byte in text");
        sbuf_put(&x->text, x->s + st, x->i - st);
    }
    if (x->err)
        return x->err;
    if (x->depth > 0)
        return xp_fail(x, x->n, WBXML_E_XML, "document ends with elements still open");
    if (!x->had_root)
        return xp_fail(x, x->n, WBXML_E_EMPTY, "no root element");
    return 0;
}

int wbxml_from_xml(const char *xml, size_t len, uint8_t **out, size_t *out_len, uint64_t *err_off,
                   const char **why)
{
    struct xp *x = calloc(1, sizeof(*x));
    const uint8_t *doc;
    size_t doclen;
    int rc;

    *out = NULL;
    if (!x)
        return WBXML_E_NOMEM;
    x->s = xml;
    x->n = len;
    x->lv[0].def_page = -1;
    wbxml_w_init(&x->w, NULL, 0);
    rc = xp_run(x);
    if (rc == 0 && x->text.oom)
        rc = xp_fail(x, x->i, WBXML_E_NOMEM, "out of memory");
    if (rc == 0) {
        rc = wbxml_w_finish(&x->w, &doc, &doclen);
        if (rc)
            xp_fail(x, x->i, rc, wbxml_strerror(rc));
    }
    if (err_off)
        *err_off = rc ? x->err_at : 0;
    if (why)
        *why = rc ? x->why : NULL;
    if (rc == 0) {
        *out = x->w.buf; /* hand the writer's buffer over */
        if (out_len)
            *out_len = doclen;
    } else {
        wbxml_w_free(&x->w);
    }
    sbuf_free(&x->text);
    free(x);
    return rc;
}
