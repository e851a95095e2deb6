/*
 * fuzz_route_map: libFuzzer target for the request path's route and path
 * mapping (proxy/route.c, proxy/head.c) with a server under a prefix.
 *
 * Input: a request target, a NUL byte, then a Location value. The target is
 * routed (route_of); a routed one has the route's path replaced by the
 * server's (route_path_end, head_upstream) and must come out as exactly the
 * server's path followed by what the client sent after the route's path,
 * which may only be a slash, the query or fragment (ActiveSync,
 * autodiscover) or an EWS path without dot segments or escapes: nothing a
 * client sends may climb out of the mapped path. The Location is mapped back
 * (head_map_location): either untouched, or a path-absolute reference no
 * longer than the room the caller keeps for it. Violations abort.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/head.h"
#include "proxy/route.h"

static const char *const server[HEAD_MAP_ROUTES] = {
    "/SOGo/Microsoft-Server-ActiveSync", "/SOGo/autodiscover/autodiscover.xml", "/SOGo/EWS"};
static const char *const client[HEAD_MAP_ROUTES] = {"/Microsoft-Server-ActiveSync",
                                                    "/autodiscover/autodiscover.xml", "/EWS"};

static void check_target(const char *t, size_t n)
{
    enum route_kind k = route_of(t, n);
    size_t end = route_path_end(t, n, k);
    if (k == RT_OTHER) {
        if (end != 0)
            abort();
        return;
    }
    if (end == 0 || end > n)
        abort();
    const char *rest = t + end;
    size_t rl = n - end;
    if (k != RT_EWS) {
        /* one slash at most, then the query or fragment */
        size_t i = rl && rest[0] == '/' ? 1 : 0;
        if (i < rl && rest[i] != '?' && rest[i] != '#')
            abort();
    } else {
        if (rl == 0 || rest[0] != '/')
            abort();
        size_t pl = 0;
        while (pl < rl && rest[pl] != '?' && rest[pl] != '#')
            pl++;
        for (size_t i = 0; i < pl; i++)
            if (rest[i] == '%' || rest[i] == '\\' || (rest[i] == '.' && rest[i - 1] == '/'))
                abort();
    }
    struct head *h = head_new(HEAD_MAX_BYTES);
    if (!h)
        abort();
    if (head_url(h, t, n) == 0) {
        static char out[HEAD_UP_MAX];
        const char *path = server[k == RT_EAS ? 0 : k == RT_AUTODISCOVER ? 1 : 2];
        struct head_up up = {.method = "POST",
                             .host = "groupware:20000",
                             .client = "192.0.2.1",
                             .framing = HEAD_NO_BODY,
                             .path = path,
                             .path_skip = end};
        size_t len = head_upstream(h, &up, out);
        size_t pl = strlen(path);
        if (len >= sizeof(out) || memcmp(out, "POST ", 5) != 0 || memcmp(out + 5, path, pl) != 0 ||
            memcmp(out + 5 + pl, rest, rl) != 0 || memcmp(out + 5 + pl + rl, " HTTP/1.1\r\n", 11))
            abort();
    }
    free(h);
}

static void check_location(const char *v, size_t n)
{
    const struct head_map m = {
        .authority = "groupware:20000",
        .prefix = "/SOGo",
        .server = {server[0], server[1], server[2]},
        .client = {client[0], client[1], client[2]},
    };
    char *out = malloc(n + HEAD_MAP_GROWTH); /* exact room: ASan sees an overrun */
    char *copy = malloc(n ? n : 1);
    if (!out || !copy)
        abort();
    memcpy(copy, v, n);
    int r = head_map_location(&m, copy, n, out);
    if (r < -1 || r > (int)(n + HEAD_MAP_GROWTH) || (r >= 0 && (r == 0 || out[0] != '/')))
        abort();
    free(out);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    const char *nul = memchr(d, '\0', size);
    size_t tl = nul ? (size_t)(nul - d) : size;
    check_target(d, tl);
    if (nul)
        check_location(nul + 1, size - tl - 1);
    return 0;
}
