/*
 * ec_tree: a WBXML answer as a tree, built from the project's streaming
 * decoder (eas/wbxml). The session reads nested answers (Sync's items,
 * FolderSync's folders) by path; searching the decoded XML text instead
 * would need an XML reader and would trip over escaped text. Nodes live in
 * one growing array, linked by index; texts are copied (an answer is small).
 */
#include "easclient.h"

#include "eas/wbxml.h"

#include <stdlib.h>
#include <string.h>

struct builder {
    struct ec_tree *t;
    int cur;                       /* the open node, -1 before the root */
    int last[WBXML_MAX_DEPTH + 2]; /* last child appended at each depth */
    int err;
};

static int node_add(struct builder *b, uint16_t tag, int depth)
{
    struct ec_tree *t = b->t;
    if (t->n == t->cap) {
        int nc = t->cap ? t->cap * 2 : 64;
        struct ec_node *nn = realloc(t->nodes, (size_t)nc * sizeof(*nn));
        if (!nn)
            return -1;
        t->nodes = nn;
        t->cap = nc;
    }
    int id = t->n++;
    struct ec_node *nd = &t->nodes[id];
    memset(nd, 0, sizeof(*nd));
    nd->tag = tag;
    nd->parent = b->cur;
    nd->child = nd->next = -1;
    if (b->cur >= 0) {
        int prev = b->last[depth];
        if (prev >= 0 && t->nodes[prev].parent == b->cur)
            t->nodes[prev].next = id;
        else
            t->nodes[b->cur].child = id;
    }
    b->last[depth] = id;
    return id;
}

static int on_event(void *ud, const struct wbxml_ev *ev)
{
    struct builder *b = ud;
    struct ec_tree *t = b->t;
    switch (ev->type) {
    case WBXML_EV_START: {
        if (ev->depth > WBXML_MAX_DEPTH)
            return -1;
        int id = node_add(b, ev->tag, ev->depth);
        if (id < 0)
            return -1;
        b->cur = id;
        break;
    }
    case WBXML_EV_END:
        if (b->cur >= 0)
            b->cur = t->nodes[b->cur].parent;
        break;
    case WBXML_EV_TEXT: {
        struct ec_node *nd = &t->nodes[b->cur];
        char *nt = realloc(nd->text, nd->text_len + ev->len + 1);
        if (!nt)
            return -1;
        memcpy(nt + nd->text_len, ev->data, ev->len);
        nd->text = nt;
        nd->text_len += ev->len;
        nt[nd->text_len] = '\0';
        break;
    }
    case WBXML_EV_OPAQUE:
        t->nodes[b->cur].opaque_len += ev->len;
        break;
    }
    return 0;
}

int ec_tree_parse(struct ec_tree *t, const void *wbxml, size_t len)
{
    memset(t, 0, sizeof(*t));
    struct builder b = {.t = t, .cur = -1};
    for (size_t i = 0; i < sizeof(b.last) / sizeof(b.last[0]); i++)
        b.last[i] = -1;
    struct wbxml_dec d;
    wbxml_dec_init(&d, on_event, &b);
    int rc = wbxml_dec_feed(&d, wbxml, len);
    if (rc == 0)
        rc = wbxml_dec_finish(&d);
    if (rc < 0 || t->n == 0) {
        ec_tree_free(t);
        return rc < 0 ? rc : WBXML_E_EMPTY;
    }
    return 0;
}

void ec_tree_free(struct ec_tree *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->nodes[i].text);
    free(t->nodes);
    memset(t, 0, sizeof(*t));
}

const char *ec_tree_name(const struct ec_tree *t, int node)
{
    if (node < 0 || node >= t->n)
        return "";
    uint16_t tag = t->nodes[node].tag;
    const char *n = wbxml_tag_name(WBXML_TAG_PAGE(tag), WBXML_TAG_TOKEN(tag));
    return n ? n : "?";
}

static int child_named(const struct ec_tree *t, int from, const char *name, size_t len)
{
    for (int c = t->nodes[from].child; c >= 0; c = t->nodes[c].next) {
        const char *cn = ec_tree_name(t, c);
        if (strlen(cn) == len && strncmp(cn, name, len) == 0)
            return c;
    }
    return -1;
}

int ec_tree_find(const struct ec_tree *t, int from, const char *path)
{
    if (from < 0 || from >= t->n)
        return -1;
    int cur = from;
    while (*path && cur >= 0) {
        size_t k = strcspn(path, "/");
        cur = child_named(t, cur, path, k);
        path += k;
        if (*path == '/')
            path++;
    }
    return cur;
}

int ec_tree_next_same(const struct ec_tree *t, int node)
{
    if (node < 0 || node >= t->n)
        return -1;
    const char *name = ec_tree_name(t, node);
    for (int s = t->nodes[node].next; s >= 0; s = t->nodes[s].next)
        if (strcmp(ec_tree_name(t, s), name) == 0)
            return s;
    return -1;
}

const char *ec_tree_text(const struct ec_tree *t, int from, const char *path)
{
    int n = ec_tree_find(t, from, path);
    if (n < 0 || !t->nodes[n].text)
        return "";
    return t->nodes[n].text;
}
