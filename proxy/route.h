/*
 * route: where a request goes, decided from its target alone, and the EWS
 * body check. Pure functions, unit-tested (tests/unit/test_proxy_route.c).
 *
 *   /Microsoft-Server-ActiveSync[/]   ActiveSync: identity, decision
 *   /autodiscover/autodiscover.xml    passed through (any case)
 *   /EWS/...                          403, or EWS push subscriptions only
 *   anything else                     404 from the proxy
 *
 * Matching is case-insensitive, as IIS is. An EWS path with percent escapes,
 * backslashes or dot segments is refused: the server would normalise it to
 * some other endpoint than the one we checked.
 */
#ifndef EG_ROUTE_H
#define EG_ROUTE_H

#include <stddef.h>

enum route_kind { RT_EAS, RT_AUTODISCOVER, RT_EWS, RT_OTHER };

/* target is the request target as sent: origin form "/path?query" or
 * absolute form "https://host/path?query". */
enum route_kind route_of(const char *target, size_t len);

/* Where the route's own path ends in target (route_of said k): the
 * offset just past /Microsoft-Server-ActiveSync, /autodiscover/
 * autodiscover.xml or the /EWS of /EWS/..., counting an absolute form's
 * scheme and authority; what follows (a slash, the rest of an EWS path,
 * the query) is the client's. 0 for RT_OTHER. The upstream's path for the
 * route replaces target up to there (upstream.paths). */
size_t route_path_end(const char *target, size_t len, enum route_kind k);

/* ---- request-target hygiene (docs/security.md, "Request target") ----
 *
 * What Exchange would read differently from the proxy never reaches it:
 * HTTP.sys takes the authority of an absolute-form target instead of Host,
 * and ASP.NET percent-decodes query parameter names (so "Device%49d" would
 * be a second DeviceId the proxy did not check). */

enum route_target_err {
    ROUTE_TARGET_OK = 0,
    ROUTE_TARGET_FRAGMENT = -1,     /* a '#' anywhere: clients never send one */
    ROUTE_TARGET_ENCODED_NAME = -2, /* a '%' in a query parameter name */
    ROUTE_TARGET_FORM = -3,         /* absolute form that is not http(s)://host/path */
};

/* The target as the proxy forwards it. */
struct route_target {
    const char *authority; /* absolute form: "host[:port]" as sent; else NULL */
    size_t authority_len;
    size_t origin_off; /* the origin form ("/path?query") starts here */
};

/* Check the request target t (len bytes) and find its origin form: 0, or a
 * route_target_err (answered 400). "*" and other non-'/' targets that are
 * not absolute URLs are left to route_of (404). */
int route_target_check(const char *t, size_t len, struct route_target *out);
/* The access-log reason of a route_target_err. */
const char *route_target_reason(int err);

/* Is host (a Host value or an authority: "name", "name:port", "[v6]:port")
 * one of the n glob patterns ('*' any run of characters, case-insensitive;
 * the port and one trailing dot are ignored)? n == 0: any host matches. */
int route_host_allowed(const char *host, size_t len, const char *const *globs, size_t n);

/* Is this SOAP request an EWS push subscription: the one element of its
 * soap:Body Subscribe, GetEvents, GetStreamingEvents or Unsubscribe in the
 * EWS messages namespace? Read by libxml2 (eas/ews.h: no network, no DTD,
 * no entities, depth bounded; the caller bounds the size); anything
 * malformed is not. */
int route_ews_is_subscription(const char *body, size_t len);

#endif
