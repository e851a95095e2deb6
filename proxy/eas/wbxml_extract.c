/*
 * wbxml_extract: the few facts the proxy reads from a request or answer body
 * (device information, heartbeat, provisioning state), pulled out of the
 * decoder's token stream without building a tree.
 *
 * The callback does almost nothing for the tags it does not care about (one
 * switch), so walking a large Sync body costs the decoder's time and little
 * more. Values are copied into fixed fields of struct wbxml_facts, cut at
 * WBXML_FIELD_MAX - 1 bytes with the cut recorded.
 */
#include "proxy/eas/wbxml.h"

#include <string.h>

static const char *const devinfo_names[WBXML_DI_NFIELDS] = {
    "Model",     "IMEI",           "FriendlyName",      "OS", "OSLanguage", "PhoneNumber",
    "UserAgent", "MobileOperator", "EnableOutboundSMS",
};

const char *wbxml_devinfo_name(enum wbxml_devinfo_field f)
{
    return (unsigned)f < WBXML_DI_NFIELDS ? devinfo_names[f] : NULL;
}

static int devinfo_field(uint16_t tag)
{
    switch (tag) {
    case WBXML_SETTINGS_MODEL:
        return WBXML_DI_MODEL;
    case WBXML_SETTINGS_IMEI:
        return WBXML_DI_IMEI;
    case WBXML_SETTINGS_FRIENDLYNAME:
        return WBXML_DI_FRIENDLYNAME;
    case WBXML_SETTINGS_OS:
        return WBXML_DI_OS;
    case WBXML_SETTINGS_OSLANGUAGE:
        return WBXML_DI_OSLANGUAGE;
    case WBXML_SETTINGS_PHONENUMBER:
        return WBXML_DI_PHONENUMBER;
    case WBXML_SETTINGS_USERAGENT:
        return WBXML_DI_USERAGENT;
    case WBXML_SETTINGS_MOBILEOPERATOR:
        return WBXML_DI_MOBILEOPERATOR;
    case WBXML_SETTINGS_ENABLEOUTBOUNDSMS:
        return WBXML_DI_ENABLEOUTBOUNDSMS;
    default:
        return -1;
    }
}

/* Events the extractor needs: the root and its children, anything in the
 * Provision, Settings and Ping pages, and text only while collecting. */
#define EXTRACT_PAGES                                                                              \
    ((1u << WBXML_PAGE_PROVISION) | (1u << WBXML_PAGE_SETTINGS) | (1u << WBXML_PAGE_PING))
#define EXTRACT_TAGS ((1u << WBXML_EV_START) | (1u << WBXML_EV_END))

static void want_text(struct wbxml_extractor *x, bool on)
{
    wbxml_dec_filter(&x->dec, EXTRACT_TAGS | (on ? 1u << WBXML_EV_TEXT : 0), 2, EXTRACT_PAGES);
}

static void collect_str(struct wbxml_extractor *x, int depth, char *dst, uint16_t *mask,
                        uint16_t bit)
{
    want_text(x, true);
    x->collect_depth = depth;
    x->str = dst;
    x->len = 0;
    x->too_long = false;
    x->trunc_mask = mask;
    x->trunc_bit = bit;
    x->int_dst = NULL;
    x->long_dst = NULL;
    dst[0] = '\0';
}

static void collect_num(struct wbxml_extractor *x, int depth, int *idst, long *ldst)
{
    collect_str(x, depth, x->num, NULL, 0);
    x->int_dst = idst;
    x->long_dst = ldst;
}

/* A whole decimal number that fits an int, or -1. */
static long parse_num(const char *s)
{
    long v = 0;
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000L)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static void on_start(struct wbxml_extractor *x, const struct wbxml_ev *ev, uint16_t parent)
{
    struct wbxml_facts *f = x->facts;
    int field;

    if (ev->depth == 1)
        f->root = ev->tag;
    switch (ev->tag) {
    case WBXML_SETTINGS_DEVICEINFORMATION:
        f->has_devinfo = true;
        if (ev->content)
            x->devinfo_depth = ev->depth;
        return;
    case WBXML_PROV_POLICYTYPE:
        if (parent == WBXML_PROV_POLICY)
            collect_str(x, ev->depth, f->policy_type, NULL, 0);
        return;
    case WBXML_PROV_POLICYKEY:
        if (parent == WBXML_PROV_POLICY)
            collect_str(x, ev->depth, f->policy_key, NULL, 0);
        return;
    case WBXML_PROV_STATUS:
        if (parent == WBXML_PROV_POLICY)
            collect_num(x, ev->depth, &f->policy_status, NULL);
        else if (parent == WBXML_PROV_REMOTEWIPE)
            collect_num(x, ev->depth, &f->remote_wipe_status, NULL);
        else if (parent == WBXML_PROV_ACCOUNTONLYREMOTEWIPE)
            collect_num(x, ev->depth, &f->account_only_remote_wipe_status, NULL);
        else if (ev->depth == 2)
            collect_num(x, ev->depth, &f->status, NULL);
        return;
    case WBXML_PROV_REMOTEWIPE:
        f->remote_wipe = true;
        return;
    case WBXML_PROV_ACCOUNTONLYREMOTEWIPE:
        f->account_only_remote_wipe = true;
        return;
    case WBXML_PING_HEARTBEATINTERVAL:
    case WBXML_AIRSYNC_HEARTBEATINTERVAL:
        if (ev->depth == 2)
            collect_num(x, ev->depth, NULL, &f->heartbeat);
        return;
    default:
        break;
    }
    if (x->devinfo_depth && (field = devinfo_field(ev->tag)) >= 0) {
        f->devinfo_present |= (uint16_t)(1u << field);
        collect_str(x, ev->depth, f->devinfo[field], &f->devinfo_truncated,
                    (uint16_t)(1u << field));
        return;
    }
    /* The command-level status of any other command: <Root><Status>. */
    if (ev->depth == 2 && WBXML_TAG_PAGE(ev->tag) == WBXML_TAG_PAGE(f->root)) {
        const char *name = wbxml_tag_name(WBXML_TAG_PAGE(ev->tag), WBXML_TAG_TOKEN(ev->tag));
        if (name && strcmp(name, "Status") == 0)
            collect_num(x, ev->depth, &f->status, NULL);
    }
}

static void on_text(struct wbxml_extractor *x, const struct wbxml_ev *ev)
{
    if (ev->depth != x->collect_depth || !x->str)
        return;
    size_t room = WBXML_FIELD_MAX - 1 - x->len;
    size_t n = ev->len < room ? ev->len : room;
    if (n < ev->len)
        x->too_long = true;
    memcpy(x->str + x->len, ev->data, n);
    x->len += n;
    x->str[x->len] = '\0';
}

static void on_end(struct wbxml_extractor *x, const struct wbxml_ev *ev)
{
    if (ev->tag == WBXML_SETTINGS_DEVICEINFORMATION && ev->depth == x->devinfo_depth)
        x->devinfo_depth = 0;
    if (ev->depth != x->collect_depth || !x->str)
        return;
    if (x->too_long && x->trunc_mask)
        *x->trunc_mask |= x->trunc_bit;
    if (x->int_dst || x->long_dst) {
        long v = x->too_long ? -1 : parse_num(x->num);
        if (x->int_dst)
            *x->int_dst = (int)v;
        else
            *x->long_dst = v;
    }
    x->collect_depth = 0;
    x->str = NULL;
    want_text(x, false);
}

static int extract_cb(void *ud, const struct wbxml_ev *ev)
{
    struct wbxml_extractor *x = ud;
    switch (ev->type) {
    case WBXML_EV_START:
        on_start(x, ev, ev->depth > 1 ? x->dec.stack[ev->depth - 1] : 0);
        break;
    case WBXML_EV_TEXT:
        if (x->collect_depth)
            on_text(x, ev);
        break;
    case WBXML_EV_END:
        if (x->collect_depth || x->devinfo_depth)
            on_end(x, ev);
        break;
    default:
        break;
    }
    return 0;
}

void wbxml_extract_init(struct wbxml_extractor *x, struct wbxml_facts *facts)
{
    memset(x, 0, sizeof(*x));
    memset(facts, 0, sizeof(*facts));
    facts->heartbeat = -1;
    facts->policy_status = -1;
    facts->status = -1;
    facts->remote_wipe_status = -1;
    facts->account_only_remote_wipe_status = -1;
    x->facts = facts;
    wbxml_dec_init(&x->dec, extract_cb, x);
    want_text(x, false);
}

int wbxml_extract_feed(struct wbxml_extractor *x, const void *buf, size_t len)
{
    return wbxml_dec_feed(&x->dec, buf, len);
}

int wbxml_extract_finish(struct wbxml_extractor *x)
{
    return wbxml_dec_finish(&x->dec);
}

int wbxml_extract(const void *buf, size_t len, struct wbxml_facts *facts, uint64_t *err_off)
{
    struct wbxml_extractor x;
    wbxml_extract_init(&x, facts);
    int rc = wbxml_extract_feed(&x, buf, len);
    if (rc == 0)
        rc = wbxml_extract_finish(&x);
    if (err_off)
        *err_off = wbxml_dec_error_offset(&x.dec);
    return rc;
}
