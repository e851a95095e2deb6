/*
 * core_ui: the console's files from the table core/ui/embed.cmake
 * generates. See ui.h.
 *
 * Paths are looked up exactly: no file system, no "..", no index of
 * directories. The console is one page (index.html) whose views are chosen
 * by the fragment (#/devices), so /ui/ is the only entry point; any other
 * /ui/ path that is not a file is 404.
 */
#include "core/ui.h"

#include <stdlib.h>
#include <string.h>

/*
 * default-src 'none' and then only what the console uses, from its own
 * origin: no inline script or style (so markup that slipped into a page
 * could not run), no third-party origin, no plugins, no framing (with
 * X-Frame-Options for older browsers), forms post only here.
 */
const char core_ui_headers[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'\r\n"
    "X-Frame-Options: DENY\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cross-Origin-Opener-Policy: same-origin\r\n"
    "Cross-Origin-Resource-Policy: same-origin\r\n"
    "Permissions-Policy: camera=(), microphone=(), geolocation=()\r\n";

static const char *ctype_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* The console's headers, with one more line (a Location) if more is set. */
static char *headers(const char *more)
{
    size_t a = sizeof(core_ui_headers) - 1, b = more ? strlen(more) : 0;
    char *h = malloc(a + b + 1);
    if (!h)
        return NULL;
    memcpy(h, core_ui_headers, a);
    if (b)
        memcpy(h + a, more, b);
    h[a + b] = '\0';
    return h;
}

static void answer(struct httpd_resp *r, int status, const char *ctype, const void *body,
                   size_t len, const char *more)
{
    r->status = status;
    r->content_type = ctype;
    r->body = malloc(len ? len : 1);
    r->len = r->body ? len : 0;
    if (r->body && len)
        memcpy(r->body, body, len);
    r->headers = headers(more);
}

bool core_ui_serve(const struct httpd_req *req, struct httpd_resp *resp)
{
    const char *p = req->path;
    bool root = strcmp(p, "/") == 0 || strcmp(p, "/ui") == 0;
    if (!root && strncmp(p, "/ui/", 4) != 0)
        return false;
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(req->method, "GET") != 0) {
        answer(resp, 405, text, "the console's files are read with GET\n", 37, NULL);
        return true;
    }
    if (root) {
        answer(resp, 302, text, "", 0, "Location: /ui/\r\n");
        return true;
    }
    const char *want = strcmp(p, "/ui/") == 0 ? "/ui/index.html" : p;
    for (const struct core_ui_file *f = core_ui_files; f->path; f++) {
        if (strcmp(f->path, want) == 0) {
            answer(resp, 200, ctype_of(f->path), f->data, f->len, NULL);
            return true;
        }
    }
    answer(resp, 404, text, "no such file in the console\n", 28, NULL);
    return true;
}
