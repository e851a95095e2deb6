/*
 * promx: build, process and certificate metrics for every role's /metrics.
 * See promx.h. Process figures come from /proc/self and getrlimit, as
 * Prometheus's client libraries report them, so the usual dashboards and
 * the descriptor alert work unchanged.
 */
#include "common/promx.h"

#include "common/version.h"

#include <dirent.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

int promx_put(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
    if (*len >= n)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= n - *len)
        return -1;
    *len += (size_t)w;
    return 0;
}

/* A label value with \ " and newline escaped, as the text format wants. */
static void label(char *out, size_t n, const char *v)
{
    size_t o = 0;
    for (; *v && o + 3 < n; v++) {
        if (*v == '\\' || *v == '"') {
            out[o++] = '\\';
            out[o++] = *v;
        } else if (*v == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
}

int promx_build_info(char *buf, size_t n, size_t *len, const char *role)
{
    return promx_put(buf, n, len,
                     "# HELP easgate_build_info The easgate build running: version and commit.\n"
                     "# TYPE easgate_build_info gauge\n"
                     "easgate_build_info{role=\"%s\",version=\"%s\",commit=\"%s\"} 1\n",
                     role, eg_version(), eg_commit());
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long count = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            count++;
    closedir(d);
    return count - 1; /* the one opendir itself holds */
}

/* Resident set size and start time (seconds since the epoch) from /proc. */
static int proc_stat(double *rss, double *start)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    char line[1024];
    char *ok = fgets(line, sizeof(line), f);
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL; /* comm may hold spaces */
    if (!p)
        return -1;
    unsigned long long starttime = 0;
    long rss_pages = 0;
    /* fields after comm: 3 state ... 22 starttime, 23 vsize, 24 rss */
    if (sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d "
               "%llu %*u %ld",
               &starttime, &rss_pages) != 2)
        return -1;
    *rss = (double)rss_pages * (double)sysconf(_SC_PAGESIZE);
    double boot = 0;
    f = fopen("/proc/stat", "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %lf", &boot) == 1)
            break;
    if (f)
        fclose(f);
    *start = boot + (double)starttime / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

int promx_process(char *buf, size_t n, size_t *len)
{
    struct rlimit rl;
    int rc = 0;
    long fds = open_fds();
    if (fds >= 0)
        rc |= promx_put(buf, n, len,
                        "# HELP process_open_fds Open file descriptors.\n"
                        "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n",
                        fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        rc |= promx_put(buf, n, len,
                        "# HELP process_max_fds The descriptor limit (LimitNOFILE).\n"
                        "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
                        (unsigned long long)rl.rlim_cur);
    double rss, start;
    if (proc_stat(&rss, &start) == 0)
        rc |= promx_put(buf, n, len,
                        "# HELP process_resident_memory_bytes Resident memory.\n"
                        "# TYPE process_resident_memory_bytes gauge\n"
                        "process_resident_memory_bytes %.0f\n"
                        "# HELP process_start_time_seconds When the process started (Unix time).\n"
                        "# TYPE process_start_time_seconds gauge\n"
                        "process_start_time_seconds %.2f\n",
                        rss, start);
    return rc ? -1 : 0;
}

int promx_cert_headers(char *buf, size_t n, size_t *len)
{
    return promx_put(
        buf, n, len,
        "# HELP easgate_cert_expiry_timestamp_seconds When a certificate in use expires "
        "(notAfter, Unix time).\n"
        "# TYPE easgate_cert_expiry_timestamp_seconds gauge\n"
        "# HELP easgate_crl_next_update_timestamp_seconds When a CRL in use runs out "
        "(nextUpdate, Unix time).\n"
        "# TYPE easgate_crl_next_update_timestamp_seconds gauge\n");
}

static BIO *open_file(const char *path)
{
    return path ? BIO_new_file(path, "rb") : NULL;
}

static int asn1_unix(const ASN1_TIME *t, long long *out)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *out = (long long)timegm(&tm);
    return 0;
}

int promx_cert_expiry(char *buf, size_t n, size_t *len, const char *path)
{
    BIO *b = open_file(path);
    if (!b)
        return 0;
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    if (!x && BIO_reset(b) == 0)
        x = d2i_X509_bio(b, NULL);
    BIO_free(b);
    long long t;
    int rc = 0;
    if (x && asn1_unix(X509_get0_notAfter(x), &t) == 0) {
        char l[1024];
        label(l, sizeof(l), path);
        rc = promx_put(buf, n, len, "easgate_cert_expiry_timestamp_seconds{file=\"%s\"} %lld\n", l,
                       t);
    }
    X509_free(x);
    return rc;
}

int promx_crl_next_update(char *buf, size_t n, size_t *len, const char *path)
{
    BIO *b = open_file(path);
    if (!b)
        return 0;
    X509_CRL *c = d2i_X509_CRL_bio(b, NULL);
    if (!c && BIO_reset(b) == 0)
        c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
    BIO_free(b);
    long long t;
    int rc = 0;
    if (c && asn1_unix(X509_CRL_get0_nextUpdate(c), &t) == 0) {
        char l[1024];
        label(l, sizeof(l), path);
        rc = promx_put(buf, n, len, "easgate_crl_next_update_timestamp_seconds{file=\"%s\"} %lld\n",
                       l, t);
    }
    X509_CRL_free(c);
    return rc;
}
