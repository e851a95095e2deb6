/*
 * units: parse and print durations, sizes and addresses the way an admin
 * writes them (see units.h for the accepted spellings and why bare numbers
 * are refused for durations). Strict: trailing junk, signs, overflow and
 * empty strings are errors, never silently read as 0.
 */
#include "common/units.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define UNITS_HOST_MAX 256

/* Reads the leading decimal digits of *p into *v; fails on none or overflow. */
static int read_uint(const char **p, int64_t *v)
{
    const char *s = *p;
    int64_t n = 0;
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    while (isdigit((unsigned char)*s)) {
        int d = *s - '0';
        if (n > (INT64_MAX - d) / 10)
            return -ERANGE;
        n = n * 10 + d;
        s++;
    }
    *p = s;
    *v = n;
    return 0;
}

static int mul_add(int64_t *acc, int64_t n, int64_t unit)
{
    if (n > INT64_MAX / unit || *acc > INT64_MAX - n * unit)
        return -ERANGE;
    *acc += n * unit;
    return 0;
}

struct unit {
    const char *name;
    int64_t mul;
};

/* Longest names first so "ms" is not read as "m" followed by "s". */
static const struct unit dur_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

int units_parse_duration(const char *s, int64_t *ms, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (!s || !*s) {
        *why = "empty duration";
        return -EINVAL;
    }
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return 0;
    }
    int64_t acc = 0;
    const char *p = s;
    while (*p) {
        int64_t n;
        int rc = read_uint(&p, &n);
        if (rc) {
            *why = rc == -ERANGE ? "duration too large" : "expected a number such as 15s";
            return rc;
        }
        size_t best = 0;
        int64_t mul = 0;
        for (size_t i = 0; i < sizeof(dur_units) / sizeof(dur_units[0]); i++) {
            size_t l = strlen(dur_units[i].name);
            if (strncmp(p, dur_units[i].name, l) == 0 && l > best &&
                !isalpha((unsigned char)p[l])) {
                best = l;
                mul = dur_units[i].mul;
            }
        }
        if (!best) {
            *why = *p ? "unknown unit (use ms, s, m, h or d)"
                      : "missing unit (use ms, s, m, h or d, e.g. 30s)";
            return -EINVAL;
        }
        if (mul_add(&acc, n, mul)) {
            *why = "duration too large";
            return -ERANGE;
        }
        p += best;
    }
    *ms = acc;
    return 0;
}

int units_deadline(int64_t now_ms, const char *s, int64_t max_ms, int64_t *out, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    int64_t d = 0;
    int rc = units_parse_duration(s, &d, why);
    if (rc < 0)
        return rc;
    if (d <= 0) {
        *why = "the duration must be more than 0";
        return -EINVAL;
    }
    if (d > max_ms) {
        *why = "duration too large";
        return -ERANGE;
    }
    if (__builtin_add_overflow(now_ms, d, out)) {
        *why = "the deadline is past the end of time";
        return -ERANGE;
    }
    return 0;
}

static const struct unit size_units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1024},
    {"kb", 1024},
    {"kib", 1024},
    {"m", 1024 * 1024},
    {"mb", 1024 * 1024},
    {"mib", 1024 * 1024},
    {"g", 1024 * 1024 * 1024},
    {"gb", 1024 * 1024 * 1024},
    {"gib", 1024 * 1024 * 1024},
};

int units_parse_size(const char *s, int64_t *bytes, const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    if (!s || !*s) {
        *why = "empty size";
        return -EINVAL;
    }
    const char *p = s;
    int64_t n;
    int rc = read_uint(&p, &n);
    if (rc) {
        *why = rc == -ERANGE ? "size too large" : "expected a number such as 64k";
        return rc;
    }
    for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        if (strcasecmp(p, size_units[i].name) == 0) {
            int64_t acc = 0;
            if (mul_add(&acc, n, size_units[i].mul)) {
                *why = "size too large";
                return -ERANGE;
            }
            *bytes = acc;
            return 0;
        }
    }
    *why = "unknown unit (use k, M or G, e.g. 64k)";
    return -EINVAL;
}

/* Written the way people write them: 60s, 90s, 24h stay as they are, 180s
 * becomes 3m and 72h becomes 3d; a unit is raised only when the number in
 * the current one reaches twice the step (and divides exactly). */
void units_fmt_duration(int64_t ms, char *buf, size_t len)
{
    static const struct unit steps[] = {{"s", 1000}, {"m", 60}, {"h", 60}, {"d", 24}};
    const char *name = "ms";
    int64_t v = ms;
    for (size_t i = 0; v && i < sizeof(steps) / sizeof(steps[0]); i++) {
        if (v % steps[i].mul != 0 || (i > 0 && v < 2 * steps[i].mul))
            break;
        v /= steps[i].mul;
        name = steps[i].name;
    }
    if (v == 0)
        snprintf(buf, len, "0");
    else
        snprintf(buf, len, "%lld%s", (long long)v, name);
}

void units_fmt_size(int64_t bytes, char *buf, size_t len)
{
    static const struct unit big_first[] = {
        {"G", 1024 * 1024 * 1024},
        {"M", 1024 * 1024},
        {"k", 1024},
    };
    for (size_t i = 0; bytes && i < sizeof(big_first) / sizeof(big_first[0]); i++) {
        if (bytes % big_first[i].mul == 0) {
            snprintf(buf, len, "%lld%s", (long long)(bytes / big_first[i].mul), big_first[i].name);
            return;
        }
    }
    snprintf(buf, len, "%lld", (long long)bytes);
}

static int parse_port(const char *s, int *port, const char **why)
{
    int64_t n;
    const char *p = s;
    if (read_uint(&p, &n) || *p || n < 1 || n > 65535) {
        *why = "port must be a number from 1 to 65535";
        return -EINVAL;
    }
    *port = (int)n;
    return 0;
}

/* Splits "host:port" / "[v6]:port" into host (brackets removed) and port text. */
static int split_hostport(const char *s, char *host, size_t hostlen, const char **port,
                          bool *bracketed, const char **why)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    *bracketed = false;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':') {
            *why = "expected [IPv6]:port";
            return -EINVAL;
        }
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
        *bracketed = true;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            *why = "missing :port";
            return -EINVAL;
        }
        if (memchr(s, ':', (size_t)(colon - s))) {
            *why = "IPv6 addresses need brackets: [::1]:8443";
            return -EINVAL;
        }
        hl = (size_t)(colon - s);
    }
    if (hl == 0) {
        *why = "missing host before :port";
        return -EINVAL;
    }
    if (hl >= hostlen) {
        *why = "host name too long";
        return -EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = colon + 1;
    return 0;
}

int units_parse_addr(const char *s, struct units_addr *out, const char **why)
{
    const char *dummy;
    char host[UNITS_HOST_MAX];
    const char *port_s;
    bool v6;
    if (!why)
        why = &dummy;
    if (!s || !*s) {
        *why = "empty address";
        return -EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (split_hostport(s, host, sizeof(host), &port_s, &v6, why) ||
        parse_port(port_s, &out->port, why))
        return -EINVAL;

    if (!v6 && strcmp(host, "*") == 0) {
        /* All addresses: an IPv6 wildcard socket accepts IPv4 too unless the
         * listener sets IPV6_V6ONLY. */
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->sa;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_any;
        a->sin6_port = htons((uint16_t)out->port);
        out->salen = sizeof(*a);
        snprintf(out->text, sizeof(out->text), "*:%d", out->port);
        return 0;
    }
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->sa;
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            *why = "not a numeric IPv6 address";
            return -EINVAL;
        }
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)out->port);
        out->salen = sizeof(*a);
        char txt[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a->sin6_addr, txt, sizeof(txt));
        snprintf(out->text, sizeof(out->text), "[%s]:%d", txt, out->port);
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)&out->sa;
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
        *why = "not a numeric IPv4 address (listen addresses are never looked up in DNS)";
        return -EINVAL;
    }
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)out->port);
    out->salen = sizeof(*a);
    char txt[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a->sin_addr, txt, sizeof(txt));
    snprintf(out->text, sizeof(out->text), "%s:%d", txt, out->port);
    return 0;
}

/* A DNS name: letters, digits, '-', '.', '_' (the last for service names). */
static bool host_name_ok(const char *h)
{
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
            return false;
    return *h != '\0';
}

int units_parse_hostport(const char *s, char *host, size_t hostlen, int *port, const char **why)
{
    const char *dummy;
    const char *port_s;
    bool v6;
    if (!why)
        why = &dummy;
    if (!s || !*s) {
        *why = "empty host:port";
        return -EINVAL;
    }
    if (split_hostport(s, host, hostlen, &port_s, &v6, why) || parse_port(port_s, port, why))
        return -EINVAL;
    if (v6) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1) {
            *why = "not a numeric IPv6 address";
            return -EINVAL;
        }
    } else if (!host_name_ok(host)) {
        *why = "host must be a name or an IP address";
        return -EINVAL;
    }
    return 0;
}
