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

/* Is this SOAP envelope an EWS Subscribe, GetEvents or GetStreamingEvents
 * request (the first element inside soap:Body, any namespace prefix)? */
int route_ews_is_subscription(const char *body, size_t len);

#endif
