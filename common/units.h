/*
 * units: the value syntaxes an admin types into YAML and sees printed back.
 *
 *   durations  "50ms" "15s" "5m" "24h" "3d", and sums such as "1h30m";
 *              "0" alone is zero. A bare number is refused: "60" could be
 *              seconds or milliseconds, and guessing wrong is an outage.
 *   sizes      "512" (bytes) "16k" "64KiB" "10M" "10MiB" "1G"; k/K/KB/KiB all
 *              mean 1024 (like nginx; nobody sizes buffers in powers of ten).
 *   addresses  "0.0.0.0:8443" "127.0.0.1:9090" "[::1]:8443" "[::]:8443"
 *              "*:8443" (= all IPv4 and IPv6 addresses, as "[::]" dual-stack).
 *              Numeric only: a listen address is never looked up in DNS.
 *   host:port  "redis.example.com:6379" "[2001:db8::1]:26379" (names allowed:
 *              they are resolved by the connector, not here).
 *
 * Pure functions, no allocation. All return 0 or -EINVAL (-ERANGE for
 * overflow) and, where given, a short reason in why.
 */
#ifndef EG_UNITS_H
#define EG_UNITS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

int units_parse_duration(const char *s, int64_t *ms, const char **why);
int units_parse_size(const char *s, int64_t *bytes, const char **why);

/*
 * A deadline an admin gives as a duration from now: now_ms + the duration
 * s, which must be more than 0 and at most max_ms ("expires": "30d"). The
 * sum is checked: a huge duration is an error, never a wrapped time.
 */
int units_deadline(int64_t now_ms, const char *s, int64_t max_ms, int64_t *out, const char **why);

/* Shortest exact spelling: 90000 -> "90s", 5400000 -> "90m", 1500 -> "1500ms". */
void units_fmt_duration(int64_t ms, char *buf, size_t len);
/* 16384 -> "16k", 10485760 -> "10M", 1000 -> "1000". */
void units_fmt_size(int64_t bytes, char *buf, size_t len);

struct units_addr {
    struct sockaddr_storage sa; /* ready for bind() */
    socklen_t salen;
    int port;
    char text[64]; /* normalised: "127.0.0.1:9090", "[::1]:8443", "*:8443" */
};

int units_parse_addr(const char *s, struct units_addr *out, const char **why);

/* host (without brackets) into host[hostlen]; port 1..65535. */
int units_parse_hostport(const char *s, char *host, size_t hostlen, int *port, const char **why);

#endif
