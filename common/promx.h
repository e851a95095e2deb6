/*
 * promx: the metrics every role exports alike, in Prometheus text format:
 *
 *   easgate_build_info{role,version,commit} 1
 *   process_open_fds, process_max_fds, process_resident_memory_bytes,
 *   process_start_time_seconds (Prometheus's usual process metrics)
 *   easgate_cert_expiry_timestamp_seconds{file}     notAfter of a certificate
 *   easgate_crl_next_update_timestamp_seconds{file} nextUpdate of a CRL
 *
 * The certificate and CRL files are read when scraped (a few small files,
 * on the admin listener's thread, never on a request path), so a renewed
 * certificate shows at once. Each function appends to buf at *len and
 * returns 0, or -1 when buf is full.
 */
#ifndef EG_PROMX_H
#define EG_PROMX_H

#include <stddef.h>

/* Append printf output to buf (n bytes, *len used): 0, or -1 when it does
 * not fit (*len unchanged). */
int promx_put(char *buf, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int promx_build_info(char *buf, size_t n, size_t *len, const char *role);
int promx_process(char *buf, size_t n, size_t *len);
/* A certificate (PEM or DER) file; a file that does not load is skipped. */
int promx_cert_expiry(char *buf, size_t n, size_t *len, const char *path);
/* A CRL (DER or PEM) file; skipped likewise. */
int promx_crl_next_update(char *buf, size_t n, size_t *len, const char *path);
/* The # TYPE lines of the two above, once before their samples. */
int promx_cert_headers(char *buf, size_t n, size_t *len);

#endif
