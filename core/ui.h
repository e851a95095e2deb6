/*
 * core_ui: the admin console's files, served by the admin API's listener
 * under /ui/ (docs/console.md).
 *
 * The files (core/ui/: HTML, one stylesheet, JavaScript modules) are
 * compiled into the binary by core/ui/embed.cmake, so one binary serves
 * its own console and nothing on disk can fall out of step with it. The
 * console is a client of /api/v1 like any other: it holds no state of its
 * own here. Every answer carries the console's security headers (a strict
 * Content-Security-Policy: scripts, styles and requests from this origin
 * only, nothing inline, no framing).
 */
#ifndef EG_CORE_UI_H
#define EG_CORE_UI_H

#include "common/httpd.h"

#include <stdbool.h>
#include <stddef.h>

/* One embedded file; the generated table ends with a NULL path. */
struct core_ui_file {
    const char *path; /* "/ui/index.html" */
    const unsigned char *data;
    size_t len;
};
extern const struct core_ui_file core_ui_files[];

/* The headers every console answer carries (CRLF-terminated lines). */
extern const char core_ui_headers[];

/* Answer req when it is the console's (/, /ui, /ui/...): true, with resp
 * filled (body and headers malloc'd, for httpd to free). false when the
 * path is not the console's: resp is untouched. */
bool core_ui_serve(const struct httpd_req *req, struct httpd_resp *resp);

#endif
