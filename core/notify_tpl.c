/*
 * core_tpls: the mail templates, files the admin may change
 * (docs/notifications.md lists them and their variables).
 *
 * A template is "Subject: ..." on its first line, an empty line, and the
 * body; {{name}} is replaced by a variable's value. Every template of every
 * language is read and checked when the sender starts, so a misspelt
 * variable is an error at start naming file and line, not a mail that goes
 * out with a hole in it months later. Rendering only substitutes: values are
 * plain text and are never read as template syntax themselves.
 */
#include "core/notify_int.h"

#include "common/log.h"
#include "common/sbuf.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TPL_MAX_LANGS 16
#define TPL_MAX_FILE (64 * 1024) /* a mail template is a page of text */
#define TPL_MAX_VARS 16

struct tpl_def {
    const char *name;
    const char *vars[TPL_MAX_VARS]; /* NULL-terminated */
};

/* Variables of every event mail to a user, and each template's own. */
#define USER_VARS "site", "user", "email", "device_id", "device_type", "model", "reason", "time"
static const struct tpl_def tpl_defs[CORE_TPL_COUNT_] = {
    [CORE_TPL_INVITE] = {"invite", {"site", "user", "email", "url", "key", "expires", NULL}},
    [CORE_TPL_QUARANTINED] = {"quarantined", {USER_VARS, NULL}},
    [CORE_TPL_APPROVED] = {"approved", {USER_VARS, NULL}},
    [CORE_TPL_BLOCKED] = {"blocked", {USER_VARS, NULL}},
    [CORE_TPL_WIPED] = {"wiped", {USER_VARS, NULL}},
    [CORE_TPL_ENROLLED] = {"enrolled", {USER_VARS, NULL}},
    [CORE_TPL_CERT_EXPIRING] = {"cert_expiring", {USER_VARS, "serial", "not_after", "days", NULL}},
    [CORE_TPL_ADMIN_EVENT] = {"admin_event",
                              {"site", "event", "actor", "address", "target", "detail", "time",
                               NULL}},
    [CORE_TPL_DIGEST] = {"digest", {"site", "period", "summary", "time", NULL}},
};

struct tpl_lang {
    char lang[16];
    char *subject[CORE_TPL_COUNT_];
    char *body[CORE_TPL_COUNT_];
};

struct core_tpls {
    size_t n;
    struct tpl_lang langs[TPL_MAX_LANGS];
};

const char *core_tpl_name(enum core_tpl t)
{
    return t < CORE_TPL_COUNT_ ? tpl_defs[t].name : "?";
}

static bool var_known(const struct tpl_def *d, const char *name, size_t len)
{
    for (size_t i = 0; d->vars[i]; i++)
        if (strlen(d->vars[i]) == len && memcmp(d->vars[i], name, len) == 0)
            return true;
    return false;
}

/* The variable inside "{{ name }}" starting at p ("{{"): its name and the
 * end of the braces; -1 when there is no closing "}}" on the line. */
static int var_at(const char *p, const char **name, size_t *len, const char **end)
{
    const char *q = p + 2;
    while (*q == ' ')
        q++;
    const char *n = q;
    while ((*q >= 'a' && *q <= 'z') || *q == '_' || (*q >= '0' && *q <= '9'))
        q++;
    *name = n;
    *len = (size_t)(q - n);
    while (*q == ' ')
        q++;
    if (q[0] != '}' || q[1] != '}')
        return -1;
    *end = q + 2;
    return 0;
}

static int check_vars(const struct tpl_def *d, const char *path, const char *text, int line0,
                      char *err, size_t errlen)
{
    int line = line0;
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            line++;
        if (p[0] != '{' || p[1] != '{')
            continue;
        const char *name, *end;
        size_t len;
        if (var_at(p, &name, &len, &end) < 0 || len == 0) {
            eg_errf(err, errlen,
                    "%s:%d: '{{' opens no variable: write {{name}} with a closing '}}'", path,
                    line);
            return CORE_NOTIFY_EINVAL;
        }
        if (!var_known(d, name, len)) {
            char known[512] = "";
            for (size_t i = 0; d->vars[i]; i++)
                snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
                         i ? ", " : "", d->vars[i]);
            eg_errf(err, errlen, "%s:%d: unknown variable {{%.*s}}; the %s template may use: %s",
                    path, line, (int)len, name, d->name, known);
            return CORE_NOTIFY_EINVAL;
        }
        p = end - 1;
    }
    return 0;
}

static int load_one(const char *path, const struct tpl_def *d, char **subject, char **body,
                    char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        eg_errf(err, errlen, "%s: cannot read the %s template: %s", path, d->name, strerror(errno));
        return CORE_NOTIFY_EIO;
    }
    char *text = malloc(TPL_MAX_FILE + 1);
    size_t n = text ? fread(text, 1, TPL_MAX_FILE + 1, f) : 0;
    fclose(f);
    if (!text)
        return CORE_NOTIFY_ENOMEM;
    if (n > TPL_MAX_FILE) {
        free(text);
        eg_errf(err, errlen, "%s: larger than %d bytes", path, TPL_MAX_FILE);
        return CORE_NOTIFY_EINVAL;
    }
    text[n] = 0;
    /* Templates written on Windows: drop the CRs, the mail builder adds its own. */
    char *w = text;
    for (char *r = text; *r; r++)
        if (*r != '\r')
            *w++ = *r;
    *w = 0;
    char *nl = strchr(text, '\n');
    if (strncmp(text, "Subject:", 8) != 0 || !nl || nl[1] != '\n') {
        free(text);
        eg_errf(err, errlen,
                "%s:1: a template starts with 'Subject: ...', then an empty line, then the body",
                path);
        return CORE_NOTIFY_EINVAL;
    }
    *nl = 0;
    const char *s = text + 8;
    while (*s == ' ')
        s++;
    int rc = check_vars(d, path, s, 1, err, errlen);
    if (rc == 0)
        rc = check_vars(d, path, nl + 2, 3, err, errlen);
    if (rc == 0) {
        *subject = strdup(s);
        *body = strdup(nl + 2);
        if (!*subject || !*body)
            rc = CORE_NOTIFY_ENOMEM;
    }
    free(text);
    return rc;
}

void core_tpls_free(struct core_tpls *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        for (int k = 0; k < CORE_TPL_COUNT_; k++) {
            free(t->langs[i].subject[k]);
            free(t->langs[i].body[k]);
        }
    free(t);
}

static int lang_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 2 || n > 15)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-'))
            return 0;
    return 1;
}

int core_tpls_load(const char *dir, struct core_tpls **out, char *err, size_t errlen)
{
    *out = NULL;
    struct core_tpls *t = calloc(1, sizeof(*t));
    if (!t)
        return CORE_NOTIFY_ENOMEM;
    DIR *d = opendir(dir);
    if (!d) {
        free(t);
        eg_errf(err, errlen, "%s: cannot open the templates directory: %s", dir, strerror(errno));
        return CORE_NOTIFY_EIO;
    }
    int rc = 0;
    bool has_en = false;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !lang_ok(e->d_name))
            continue;
        if (t->n == TPL_MAX_LANGS) {
            eg_errf(err, errlen, "%s: more than %d languages", dir, TPL_MAX_LANGS);
            rc = CORE_NOTIFY_EINVAL;
            break;
        }
        struct tpl_lang *l = &t->langs[t->n++];
        snprintf(l->lang, sizeof(l->lang), "%.15s", e->d_name); /* lang_ok: at most 15 */
        has_en |= strcmp(l->lang, "en") == 0;
        for (int k = 0; k < CORE_TPL_COUNT_ && rc == 0; k++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s/%s.txt", dir, l->lang, tpl_defs[k].name);
            rc = load_one(path, &tpl_defs[k], &l->subject[k], &l->body[k], err, errlen);
        }
    }
    closedir(d);
    if (rc == 0 && !has_en) {
        eg_errf(err, errlen, "%s: no en/ templates (English is the language of last resort)", dir);
        rc = CORE_NOTIFY_EINVAL;
    }
    if (rc < 0) {
        core_tpls_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static const struct tpl_lang *find_lang(const struct core_tpls *t, const char *lang)
{
    if (!lang || !*lang)
        return NULL;
    size_t n = strcspn(lang, "-_");
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->langs[i].lang) == n && strncasecmp(t->langs[i].lang, lang, n) == 0)
            return &t->langs[i];
    return NULL;
}

const char *core_tpls_lang(const struct core_tpls *t, const char *lang, const char *fallback)
{
    const struct tpl_lang *l = find_lang(t, lang);
    if (!l)
        l = find_lang(t, fallback);
    if (!l)
        l = find_lang(t, "en");
    return l ? l->lang : "en";
}

static const char *var_value(const struct core_var *v, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(v[i].name) == len && memcmp(v[i].name, name, len) == 0)
            return v[i].value ? v[i].value : "";
    return "";
}

static void render(struct sbuf *b, const char *text, const struct core_var *v, size_t n)
{
    for (const char *p = text; *p;) {
        const char *name, *end;
        size_t len;
        if (p[0] == '{' && p[1] == '{' && var_at(p, &name, &len, &end) == 0) {
            sbuf_str(b, var_value(v, n, name, len));
            p = end;
        } else {
            sbuf_char(b, *p++);
        }
    }
}

int core_tpls_render(const struct core_tpls *t, const char *lang, enum core_tpl k,
                     const struct core_var *v, size_t n, char **subject, char **body)
{
    const struct tpl_lang *l = find_lang(t, lang);
    if (!l)
        l = find_lang(t, "en");
    if (!l || k >= CORE_TPL_COUNT_)
        return CORE_NOTIFY_EINVAL;
    struct sbuf s = SBUF_INIT, b = SBUF_INIT;
    render(&s, l->subject[k], v, n);
    render(&b, l->body[k], v, n);
    /* A value with a line break must not start a header of its own. */
    for (size_t i = 0; i < s.len; i++)
        if (s.p[i] == '\r' || s.p[i] == '\n')
            s.p[i] = ' ';
    *subject = sbuf_take(&s, NULL);
    *body = sbuf_take(&b, NULL);
    if (!*subject || !*body) {
        free(*subject);
        free(*body);
        return CORE_NOTIFY_ENOMEM;
    }
    return 0;
}
