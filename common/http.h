/*
 * http: facts of HTTP itself that every server here shares (the proxy,
 * the admin API, the enrollment endpoint, the proxy's admin listener):
 * the reason phrase of a status code. Pure, in eg_pure.
 */
#ifndef EG_HTTP_H
#define EG_HTTP_H

/* "OK", "Not Found", "Retry With", ... for a status code; "Unknown" for a
 * code none of our servers sends (the proxy may relay one from upstream). */
const char *http_reason(int status);

#endif
