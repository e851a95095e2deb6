/*
 * prov: loading the `provisioning:` section. The EASProvisionDoc settings
 * come from one X-macro table (prov.h), so the loader, the printer and the
 * proxy's document builder can never disagree on a name or a range.
 */
#include "policy/prov.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const prov_bluetooth_names[] = {"off", "handsfree", "on", NULL};
const char *const prov_calendar_age_names[] = {"all", "", "", "", "2w", "1m", "3m", "6m", NULL};
const char *const prov_email_age_names[] = {"all", "1d", "3d", "1w", "2w", "1m", NULL};
const char *const prov_sign_alg_names[] = {"sha1", "md5", NULL};
const char *const prov_enc_alg_names[] = {"3des", "des", "rc2-128", "rc2-64", "rc2-40", NULL};
const char *const prov_negotiation_names[] = {"none", "strong", "any", NULL};

struct setting {
    const char *key, *element;
    enum prov_kind kind;
    long min, max;
    const char *const *names;
    size_t off;
};

static const struct setting settings[] = {
#define PROV_ROW(f, key, el, kind, mn, mx, nm)                                                     \
    {key, el, kind, mn, mx, nm, offsetof(struct prov_eas_policy, f)},
    PROV_SETTINGS(PROV_ROW)
#undef PROV_ROW
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Built-in notice: what the quarantined user reads in the Inbox. */
static const struct prov_notice default_notice = {
    "en",
    "Your device is waiting for approval",
    "This phone or tablet is connected to your mailbox but has not been approved yet, so "
    "no mail, calendar or contacts are synchronised to it.\n\n"
    "Please contact your IT help desk and give them the name of this device. Once it is "
    "approved, your mail appears here automatically; you do not need to set the account "
    "up again.",
};

const char *prov_mode_name(enum prov_mode m)
{
    return m == PROV_PROXY ? "proxy" : "passthrough";
}

static int *slot(struct prov_eas_policy *p, const struct setting *s)
{
    return (int *)((char *)p + s->off);
}

static const int *cslot(const struct prov_eas_policy *p, const struct setting *s)
{
    return (const int *)((const char *)p + s->off);
}

static void fingerprint(struct prov_conf *c)
{
    uint32_t h = 2166136261u;
#define MIX(v)                                                                                     \
    do {                                                                                           \
        uint32_t x_ = (uint32_t)(v);                                                               \
        for (int i_ = 0; i_ < 4; i_++) {                                                           \
            h ^= (x_ >> (8 * i_)) & 0xff;                                                          \
            h *= 16777619u;                                                                        \
        }                                                                                          \
    } while (0)
    for (size_t i = 0; i < N_SETTINGS; i++)
        MIX(*cslot(&c->eas, &settings[i]));
    const struct yt_strv *lists[] = {&c->eas.unapproved_in_rom_apps, &c->eas.approved_app_hashes};
    for (size_t l = 0; l < 2; l++) {
        MIX(lists[l]->n);
        for (size_t i = 0; i < lists[l]->n; i++)
            for (const char *s = lists[l]->v[i]; *s; s++)
                MIX((unsigned char)*s);
    }
#undef MIX
    c->fingerprint = h ? h : 1;
}

void prov_conf_init(struct prov_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->mode = PROV_PASSTHROUGH;
    for (size_t i = 0; i < N_SETTINGS; i++)
        *slot(&c->eas, &settings[i]) = PROV_UNSET;
    c->notices[0] = default_notice;
    c->n_notices = 1;
    fingerprint(c);
}

static const char *names_hint(const char *const *names, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; names[i]; i++) {
        if (!names[i][0])
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", names[i]);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    return buf;
}

static int parse_long(const char *s, long *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return -1;
    *out = v;
    return 0;
}

static int load_setting(const struct setting *s, const struct yt_node *v, struct yt_ctx *ctx,
                        int *out)
{
    if (v->type == YT_SCALAR && v->null) {
        *out = PROV_UNSET; /* "key: ~" leaves it to the phone */
        return 0;
    }
    const char *text;
    int rc;
    char hint[128];
    switch (s->kind) {
    case PROV_BOOL: {
        bool b;
        if ((rc = yt_scalar_bool(ctx, v, &b)))
            return rc;
        *out = b ? 1 : 0;
        return 0;
    }
    case PROV_INT: {
        long n;
        if ((rc = yt_scalar_str(ctx, v, &text)))
            return rc;
        if (parse_long(text, &n) < 0)
            return yt_err(ctx, v, "%s: '%s' is not a whole number", s->key, text);
        if (n < s->min || n > s->max)
            return yt_err(ctx, v, "%s: %ld is out of range (%ld to %ld, MS-ASPROV %s)", s->key, n,
                          s->min, s->max, s->element);
        *out = (int)n;
        return 0;
    }
    case PROV_ENUM:
        if ((rc = yt_scalar_str(ctx, v, &text)))
            return rc;
        for (int i = 0; s->names[i]; i++)
            if (s->names[i][0] && strcasecmp(text, s->names[i]) == 0) {
                *out = i;
                return 0;
            }
        return yt_err(ctx, v, "%s: '%s' is not one of: %s", s->key, text,
                      names_hint(s->names, hint, sizeof(hint)));
    }
    return yt_err(ctx, v, "internal: unknown setting kind");
}

static int load_list(const struct yt_node *v, struct yt_ctx *ctx, const char *key,
                     struct yt_strv *out)
{
    if (v->type == YT_SCALAR && v->null) {
        out->n = 0;
        return 0;
    }
    int rc = yt_want(ctx, v, YT_SEQ, "a list of strings");
    if (rc)
        return rc;
    out->v = yt_alloc(ctx->doc, (v->n + 1) * sizeof(*out->v));
    if (!out->v)
        return yt_err(ctx, v, "out of memory");
    for (size_t i = 0; i < v->n; i++) {
        const char *s;
        if ((rc = yt_scalar_str(ctx, v->items[i], &s)))
            return rc;
        if (!*s)
            return yt_err(ctx, v->items[i], "%s: empty entry", key);
        out->v[i] = s;
    }
    out->n = v->n;
    return 0;
}

static int load_eas(const struct yt_node *m, struct yt_ctx *ctx, struct prov_eas_policy *p)
{
    if (m->type == YT_SCALAR && m->null)
        return 0; /* "eas_policy:" with nothing under it: all unset */
    int rc = yt_want(ctx, m, YT_MAP, "a map of EASProvisionDoc settings");
    if (rc)
        return rc;
    const char *cands[N_SETTINGS + 2];
    for (size_t i = 0; i < N_SETTINGS; i++)
        cands[i] = settings[i].key;
    cands[N_SETTINGS] = "unapproved_in_rom_apps";
    cands[N_SETTINGS + 1] = "approved_app_hashes";
    for (size_t i = 0; i < m->n; i++) {
        const struct yt_node *k = m->keys[i], *v = m->items[i];
        if (strcmp(k->str, "unapproved_in_rom_apps") == 0) {
            rc = load_list(v, ctx, k->str, &p->unapproved_in_rom_apps);
        } else if (strcmp(k->str, "approved_app_hashes") == 0) {
            rc = load_list(v, ctx, k->str, &p->approved_app_hashes);
            for (size_t j = 0; rc == 0 && j < p->approved_app_hashes.n; j++) {
                const char *h = p->approved_app_hashes.v[j];
                if (strlen(h) != 40 || strspn(h, "0123456789abcdefABCDEF") != 40)
                    rc = yt_err(ctx, v->items[j],
                                "approved_app_hashes: '%s' is not a SHA-1 hash (40 hex digits)", h);
            }
        } else {
            const struct setting *s = NULL;
            for (size_t j = 0; j < N_SETTINGS && !s; j++)
                if (strcmp(k->str, settings[j].key) == 0)
                    s = &settings[j];
            if (!s) {
                const char *hint = yt_suggest(k->str, cands, N_SETTINGS + 2);
                if (hint)
                    return yt_err(ctx, k, "eas_policy: unknown setting '%s' (did you mean '%s'?)",
                                  k->str, hint);
                return yt_err(ctx, k, "eas_policy: unknown setting '%s'", k->str);
            }
            rc = load_setting(s, v, ctx, slot(p, s));
        }
        if (rc)
            return rc;
    }
    return 0;
}

static bool lang_ok(const char *s)
{
    /* BCP 47-ish: letters, digits and '-', starting with a letter. */
    size_t n = strlen(s);
    if (n < 2 || n > 15)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (i > 0 && ((ch >= '0' && ch <= '9') || ch == '-'))))
            return false;
    }
    return true;
}

static int load_notices(const struct yt_node *m, struct yt_ctx *ctx, struct prov_conf *c)
{
    int rc =
        yt_want(ctx, m, YT_MAP,
                "a map of language to { subject, body }, e.g. en: { subject: ..., body: ... }");
    if (rc)
        return rc;
    if (m->n == 0)
        return yt_err(ctx, m, "quarantine_notice: give at least one language");
    if (m->n > PROV_MAX_NOTICES)
        return yt_err(ctx, m, "quarantine_notice: at most %d languages", PROV_MAX_NOTICES);
    c->n_notices = 0;
    for (size_t i = 0; i < m->n; i++) {
        const struct yt_node *k = m->keys[i], *v = m->items[i];
        if (!lang_ok(k->str))
            return yt_err(ctx, k,
                          "quarantine_notice: '%s' is not a language tag (e.g. en, de, pt-BR)",
                          k->str);
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(c->notices[j].lang, k->str) == 0)
                return yt_err(ctx, k, "quarantine_notice: '%s' is given twice (case is ignored)",
                              k->str);
        if ((rc = yt_want(ctx, v, YT_MAP, "a map { subject, body }")))
            return rc;
        struct prov_notice *nt = &c->notices[c->n_notices];
        nt->lang = k->str;
        nt->subject = nt->body = NULL;
        for (size_t j = 0; j < v->n; j++) {
            const char *key = v->keys[j]->str, *text;
            const char **dst = strcmp(key, "subject") == 0 ? &nt->subject
                               : strcmp(key, "body") == 0  ? &nt->body
                                                           : NULL;
            if (!dst)
                return yt_err(ctx, v->keys[j],
                              "quarantine_notice.%s: unknown key '%s' (want subject and body)",
                              k->str, key);
            if ((rc = yt_scalar_str(ctx, v->items[j], &text)))
                return rc;
            if (!*text)
                return yt_err(ctx, v->items[j], "quarantine_notice.%s.%s: empty", k->str, key);
            *dst = text;
        }
        if (!nt->subject || !nt->body)
            return yt_err(ctx, v, "quarantine_notice.%s: needs both subject and body", k->str);
        c->n_notices++;
    }
    return 0;
}

int prov_load(const struct yt_node *n, struct yt_ctx *ctx, struct prov_conf *c)
{
    prov_conf_init(c);
    int rc = yt_want(ctx, n, YT_MAP, "a map (mode, eas_policy)");
    if (rc)
        return rc;
    static const char *const keys[] = {"mode", "eas_policy", "quarantine_notice"};
    for (size_t i = 0; i < n->n; i++) {
        const struct yt_node *k = n->keys[i], *v = n->items[i];
        if (strcmp(k->str, "mode") == 0) {
            const char *s;
            if ((rc = yt_scalar_str(ctx, v, &s)))
                return rc;
            if (strcmp(s, "passthrough") == 0)
                c->mode = PROV_PASSTHROUGH;
            else if (strcmp(s, "proxy") == 0)
                c->mode = PROV_PROXY;
            else
                return yt_err(ctx, v, "mode: '%s' is not one of: passthrough, proxy", s);
        } else if (strcmp(k->str, "eas_policy") == 0) {
            rc = load_eas(v, ctx, &c->eas);
        } else if (strcmp(k->str, "quarantine_notice") == 0) {
            rc = load_notices(v, ctx, c);
        } else {
            const char *hint = yt_suggest(k->str, keys, 3);
            if (hint)
                return yt_err(ctx, k, "provisioning: unknown key '%s' (did you mean '%s'?)", k->str,
                              hint);
            return yt_err(ctx, k,
                          "provisioning: unknown key '%s' (want mode, eas_policy, "
                          "quarantine_notice)",
                          k->str);
        }
        if (rc)
            return rc;
    }
    c->present = true;
    fingerprint(c);
    return 0;
}

static void print_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

void prov_print(FILE *f, const struct prov_conf *c, int ind)
{
    fprintf(f, "%*smode: %s\n", ind, "", prov_mode_name(c->mode));
    fprintf(f, "%*seas_policy:   # unset settings are left to the phone\n", ind, "");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        int v = *cslot(&c->eas, &settings[i]);
        if (v == PROV_UNSET)
            continue;
        fprintf(f, "%*s%s: ", ind + 2, "", settings[i].key);
        if (settings[i].kind == PROV_BOOL)
            fputs(v ? "true\n" : "false\n", f);
        else if (settings[i].kind == PROV_ENUM)
            fprintf(f, "%s\n", settings[i].names[v]);
        else
            fprintf(f, "%d\n", v);
    }
    const struct yt_strv *lists[] = {&c->eas.unapproved_in_rom_apps, &c->eas.approved_app_hashes};
    const char *names[] = {"unapproved_in_rom_apps", "approved_app_hashes"};
    for (size_t l = 0; l < 2; l++) {
        if (!lists[l]->n)
            continue;
        fprintf(f, "%*s%s:\n", ind + 2, "", names[l]);
        for (size_t i = 0; i < lists[l]->n; i++) {
            fprintf(f, "%*s- ", ind + 4, "");
            print_quoted(f, lists[l]->v[i]);
            fputc('\n', f);
        }
    }
    fprintf(f, "%*squarantine_notice:\n", ind, "");
    for (size_t i = 0; i < c->n_notices; i++) {
        fprintf(f, "%*s%s:\n%*ssubject: ", ind + 2, "", c->notices[i].lang, ind + 4, "");
        print_quoted(f, c->notices[i].subject);
        fprintf(f, "\n%*sbody: ", ind + 4, "");
        print_quoted(f, c->notices[i].body);
        fputc('\n', f);
    }
}

static bool lang_prefix_eq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* English when the file has it, else the first language given. */
static const struct prov_notice *fallback(const struct prov_conf *c)
{
    for (size_t i = 0; i < c->n_notices; i++)
        if (strcasecmp(c->notices[i].lang, "en") == 0)
            return &c->notices[i];
    return &c->notices[0];
}

const struct prov_notice *prov_notice_for(const struct prov_conf *c, const char *lang)
{
    if (!c->n_notices)
        return &default_notice;
    if (!lang)
        return fallback(c);
    /* First Accept-Language entry: up to ',' or ';', spaces trimmed. */
    while (*lang == ' ')
        lang++;
    size_t len = strcspn(lang, ",; ");
    if (len == 0 || len > 35)
        return fallback(c);
    for (size_t i = 0; i < c->n_notices; i++)
        if (lang_prefix_eq(lang, len, c->notices[i].lang))
            return &c->notices[i];
    size_t primary = strcspn(lang, "-_,; ");
    if (primary > len)
        primary = len;
    for (size_t i = 0; i < c->n_notices; i++)
        if (lang_prefix_eq(lang, primary, c->notices[i].lang))
            return &c->notices[i];
    return fallback(c);
}

const char *prov_lcid_lang(unsigned lcid)
{
    /* The primary language is the low 10 bits of an LCID (MS-LCID). */
    static const struct {
        unsigned id;
        const char *tag;
    } langs[] = {
        {0x01, "ar"}, {0x04, "zh"}, {0x05, "cs"}, {0x06, "da"}, {0x07, "de"}, {0x08, "el"},
        {0x09, "en"}, {0x0a, "es"}, {0x0b, "fi"}, {0x0c, "fr"}, {0x0d, "he"}, {0x0e, "hu"},
        {0x10, "it"}, {0x11, "ja"}, {0x12, "ko"}, {0x13, "nl"}, {0x14, "nb"}, {0x15, "pl"},
        {0x16, "pt"}, {0x18, "ro"}, {0x19, "ru"}, {0x1d, "sv"}, {0x1f, "tr"}, {0x22, "uk"},
    };
    unsigned p = lcid & 0x3ff;
    for (size_t i = 0; i < sizeof(langs) / sizeof(langs[0]); i++)
        if (langs[i].id == p)
            return langs[i].tag;
    return NULL;
}
