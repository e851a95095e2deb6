/* enr_msg: picking the language and a string of it. See msg.h. */
#include "enroll/msg.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const *const catalogues[ENR_LANG_COUNT] = {enr_msg_en, enr_msg_ja};

const char *enr_msg(enum enr_lang lang, enum enr_msg_id id)
{
    if ((unsigned)id >= ENR_MSG_COUNT)
        return "";
    const char *s = (unsigned)lang < ENR_LANG_COUNT ? catalogues[lang][id] : NULL;
    if (!s)
        s = enr_msg_en[id];
    return s ? s : "";
}

/* The language a tag ("ja", "ja-JP", "EN-gb") names, -1 if none we have. */
static int tag_lang(const char *t, size_t n)
{
    size_t primary = 0;
    while (primary < n && t[primary] != '-' && t[primary] != '_')
        primary++;
    if (primary == 2 && strncasecmp(t, "en", 2) == 0)
        return ENR_LANG_EN;
    if (primary == 2 && strncasecmp(t, "ja", 2) == 0)
        return ENR_LANG_JA;
    return -1;
}

/* q of one Accept-Language entry's parameters (";q=0.8"), 1000 scale. */
static int entry_q(const char *p, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if ((p[i] == 'q' || p[i] == 'Q') && p[i + 1] == '=') {
            double q = strtod(p + i + 2, NULL);
            return q < 0 ? 0 : q > 1 ? 1000 : (int)(q * 1000);
        }
    }
    return 1000;
}

enum enr_lang enr_msg_lang(const char *lang, const char *accept_language)
{
    if (lang && *lang) {
        int l = tag_lang(lang, strlen(lang));
        if (l >= 0)
            return (enum enr_lang)l;
    }
    int best = ENR_LANG_EN, best_q = 0;
    for (const char *p = accept_language; p && *p;) {
        size_t n = strcspn(p, ",");
        const char *e = p;
        while (e < p + n && (*e == ' ' || *e == '\t'))
            e++;
        size_t tn = strcspn(e, ";, \t");
        if (tn > (size_t)(p + n - e))
            tn = (size_t)(p + n - e);
        int l = tag_lang(e, tn);
        int q = entry_q(e + tn, (size_t)(p + n - e - tn));
        /* The first of equal q wins: the browser's order is its preference. */
        if (l >= 0 && q > best_q) {
            best = l;
            best_q = q;
        }
        p += n + (p[n] == ',');
    }
    return (enum enr_lang)best;
}
