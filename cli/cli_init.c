/*
 * cli_init: `easgate init`, the first run. It writes a working set, so that
 * `easgate check` passes and `easgate run` starts right after it:
 *
 *   easgate.yaml, policy.yaml   from conf/init/ (compiled in), commented
 *   tls/server.key, .crt        the certificate phones see: self-signed for
 *                               --public-host, or with --csr a request to
 *                               sign elsewhere (and a self-signed stand-in)
 *   tls/admin.key, .crt         the admin API's, for 127.0.0.1 and localhost
 *   ca/device-ca.key, .crt      the device CA (as `easgate core init-ca`)
 *   ca/device-ca.crl            its first, empty CRL
 *   registry.db                 the registry, with the first admin account
 *   admin.yaml                  where `easgate admin` finds the API
 *
 * With --dir DIR everything goes into DIR (paths in the file are relative
 * to it). With --system the layout of the package: the configuration and
 * keys in EG_CONFDIR (/etc/easgate), the CA and registry in EG_STATEDIR
 * (/var/lib/easgate), owned by the easgate user where the services write.
 *
 * It never overwrites a key or a database: if any is there it says which
 * and stops before writing anything (exit 1). An easgate.yaml that exists
 * is kept unless it is the untouched one the package installed (init
 * renders that one itself, with the defaults, to tell); policy.yaml is kept
 * whenever it exists.
 */
#include "cli/cli.h"
#include "cli/init_templates.h"

#include "common/conf.h"
#include "core/auth.h"
#include "core/cfg.h"
#include "core/ctx.h"
#include "enroll/ca.h"
#include "enroll/cfg.h"
#include "enroll/enr.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef EG_CONFDIR
#define EG_CONFDIR "/usr/local/etc/easgate"
#endif
#ifndef EG_STATEDIR
#define EG_STATEDIR "/usr/local/var/lib/easgate"
#endif
#ifndef EG_LOGDIR
#define EG_LOGDIR "/usr/local/var/log/easgate"
#endif

#define INIT_PATH_MAX 1200 /* --dir is at most 1024 characters */
#define INIT_PW_MAX 1100
#define INIT_USER "easgate"  /* the services' system user (debian/easgate.postinst) */
#define INIT_SERVER_DAYS 825 /* what browsers and phones still accept for a leaf */
#define INIT_CA_DAYS 3650    /* as enroll.ca_validity's default */
#define INIT_DEF_UPSTREAM "https://exchange.example.com" /* the packaged file's stand-ins */
#define INIT_DEF_PUBLIC_HOST "mail.example.com"

static const char init_usage[] =
    "usage: easgate init (--dir DIR | --system) --upstream URL [--public-host HOST]\n"
    "                    [--admin NAME] [--listen ADDR] [--csr]\n"
    "  write a working configuration: easgate.yaml and policy.yaml, the server's\n"
    "  and the admin API's keys and certificates, the device CA and its CRL, the\n"
    "  registry with the first admin (password from stdin, or prompted for twice)\n"
    "  --dir DIR          everything in DIR (created if missing)\n"
    "  --system           the package's layout: " EG_CONFDIR ", " EG_STATEDIR "\n"
    "  --upstream URL     the Exchange server: https://host[:port] (or http://)\n"
    "  --public-host HOST the name phones connect to (default: this host's name)\n"
    "  --admin NAME       the first admin account (default: admin)\n"
    "  --listen ADDR      where the proxy listens (default 0.0.0.0:443 with --system,\n"
    "                     else 0.0.0.0:8443)\n"
    "  --csr              also write tls/server.csr to have the certificate signed by a\n"
    "                     CA phones trust; a self-signed one stands in until then\n"
    "it never overwrites a key or a database; a key or database already there stops it\n";

struct init_opts {
    const char *dir, *upstream, *public_host, *admin, *listen;
    bool system, csr;
};

/* One file init may write: where, and whether an existing one stops it. */
struct init_paths {
    char config[INIT_PATH_MAX], policy[INIT_PATH_MAX], tls_dir[INIT_PATH_MAX],
        ca_dir[INIT_PATH_MAX];
    char server_key[INIT_PATH_MAX], server_crt[INIT_PATH_MAX], server_csr[INIT_PATH_MAX];
    char admin_key[INIT_PATH_MAX], admin_crt[INIT_PATH_MAX];
    char ca_key[INIT_PATH_MAX], ca_crt[INIT_PATH_MAX], ca_crl[INIT_PATH_MAX];
    char database[INIT_PATH_MAX], admin_yaml[INIT_PATH_MAX];
};

/* ---- the configuration from its template ------------------------------------ */

struct init_var {
    const char *name, *value;
};

/*
 * The template with every @NAME@ replaced by its value (malloc'd), or NULL
 * with the unknown name in err: a template and its values cannot drift
 * apart silently.
 */
static char *render(const char *tmpl, const struct init_var *vars, size_t n, char *err, size_t el)
{
    size_t cap = strlen(tmpl) * 2 + 4096, len = 0;
    char *out = malloc(cap);
    if (!out) {
        snprintf(err, el, "out of memory");
        return NULL;
    }
    for (const char *p = tmpl; *p;) {
        const char *end = *p == '@' ? strchr(p + 1, '@') : NULL;
        const char *val = NULL;
        size_t take = 1;
        if (end && end > p + 1 && (size_t)(end - p - 1) < 32) {
            for (size_t i = 0; i < n; i++)
                if (strlen(vars[i].name) == (size_t)(end - p - 1) &&
                    memcmp(vars[i].name, p + 1, (size_t)(end - p - 1)) == 0)
                    val = vars[i].value;
            if (!val) {
                snprintf(err, el, "template: no value for @%.*s@", (int)(end - p - 1), p + 1);
                free(out);
                return NULL;
            }
            take = (size_t)(end - p) + 1;
        }
        const char *src = val ? val : p;
        size_t sl = val ? strlen(val) : 1;
        if (len + sl + 1 > cap) {
            cap = (len + sl + 1) * 2;
            char *np = realloc(out, cap);
            if (!np) {
                free(out);
                snprintf(err, el, "out of memory");
                return NULL;
            }
            out = np;
        }
        memcpy(out + len, src, sl);
        len += sl;
        p += take;
    }
    out[len] = '\0';
    return out;
}

/* The easgate.yaml for upstream and host, in the layout of paths. */
static char *config_text(const struct init_paths *p, bool system, const char *upstream,
                         const char *host, const char *listen, char *err, size_t el)
{
    /* --dir: paths relative to the file's directory, which is how easgate
     * reads them, so the directory can be moved as a whole. */
    const struct init_var vars[] = {
        {"CONFIG", p->config},
        {"PROXY_LISTEN", listen},
        {"ENROLL_LISTEN", "0.0.0.0:8444"},
        {"CORE_LISTEN", "127.0.0.1:9443"},
        {"SERVER_CERT", system ? p->server_crt : "tls/server.crt"},
        {"SERVER_KEY", system ? p->server_key : "tls/server.key"},
        {"ADMIN_CERT", system ? p->admin_crt : "tls/admin.crt"},
        {"ADMIN_KEY", system ? p->admin_key : "tls/admin.key"},
        {"CA_CERT", system ? p->ca_crt : "ca/device-ca.crt"},
        {"CA_KEY", system ? p->ca_key : "ca/device-ca.key"},
        {"CA_CRL", system ? p->ca_crl : "ca/device-ca.crl"},
        {"DATABASE", system ? p->database : "registry.db"},
        {"UPSTREAM", upstream},
        {"PUBLIC_HOST", host},
        {"POLICY", "policy.yaml"},
        {"LOG_ACCESS", system ? EG_LOGDIR "/access.log" : "\"-\""},
    };
    return render(init_easgate_yaml, vars, sizeof(vars) / sizeof(vars[0]), err, el);
}

/* ---- files ------------------------------------------------------------------------ */

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Create dir (and its parents) with mode if missing. 0 or -1 with err. */
static int mkdirs(const char *dir, mode_t mode, char *err, size_t el)
{
    char tmp[INIT_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) {
            snprintf(err, el, "cannot create %s: %s", tmp, strerror(errno));
            return -1;
        }
        *s = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST) {
        snprintf(err, el, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

/* Write text to a new file (O_EXCL) with mode. 0 or -1 with err. */
static int write_new(const char *path, const char *text, size_t len, mode_t mode, char *err,
                     size_t el)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        snprintf(err, el, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t w = write(fd, text, len);
    int rc = (w == (ssize_t)len && fsync(fd) == 0) ? 0 : -1;
    if (close(fd) < 0)
        rc = -1;
    if (rc < 0)
        snprintf(err, el, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

static int read_all(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 8192, len = 0;
    char *b = malloc(cap);
    size_t n;
    while (b && (n = fread(b + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                b = NULL;
            }
            b = nb;
        }
    }
    fclose(f);
    if (!b)
        return -1;
    b[len] = '\0';
    *out = b;
    return 0;
}

/* ---- certificates ------------------------------------------------------------------ */

/*
 * A self-signed server certificate for the names in san ("DNS:a,IP:1.2.3.4")
 * with CN cn, written to crt (0644); key is its key. The phones' and the
 * admin client's TLS checks the SAN, not the CN.
 */
static int self_signed(EVP_PKEY *key, const char *cn, const char *san, const char *crt, char *err,
                       size_t el)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    ASN1_INTEGER *serial = ASN1_INTEGER_new();
    BIGNUM *bn = BN_new();
    int rc = -1;
    if (!x || !name || !serial || !bn || !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
        !BN_to_ASN1_INTEGER(bn, serial) || !X509_set_version(x, 2) ||
        !X509_set_serialNumber(x, serial) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), (long)INIT_SERVER_DAYS * 86400) ||
        !X509_set_pubkey(x, key))
        goto out;
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    const char *const ext[][2] = {{"basicConstraints", "critical,CA:FALSE"},
                                  {"keyUsage", "critical,digitalSignature,keyEncipherment"},
                                  {"extendedKeyUsage", "serverAuth"},
                                  {"subjectAltName", san}};
    for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
        X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, ext[i][0], ext[i][1]);
        if (!e || !X509_add_ext(x, e, -1)) {
            X509_EXTENSION_free(e);
            snprintf(err, el, "%s: cannot make the certificate's %s '%s'", crt, ext[i][0],
                     ext[i][1]);
            goto out_quiet;
        }
        X509_EXTENSION_free(e);
    }
    if (!X509_sign(x, key, EVP_sha256()))
        goto out;
    char *pem = NULL;
    size_t len = 0;
    if (enr_cert_pem(x, &pem, &len) == 0) {
        rc = write_new(crt, pem, len, 0644, err, el);
        free(pem);
        goto out_quiet;
    }
out:
    snprintf(err, el, "%s: cannot make a self-signed certificate", crt);
out_quiet:
    BN_free(bn);
    ASN1_INTEGER_free(serial);
    X509_NAME_free(name);
    X509_free(x);
    return rc;
}

/* A CSR for host (SAN DNS:host) signed by key, to csr (0644). */
static int write_csr(EVP_PKEY *key, const char *host, const char *csr, char *err, size_t el)
{
    X509_REQ *r = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    char san[600];
    snprintf(san, sizeof(san), "DNS:%s", host);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    BIO *b = BIO_new(BIO_s_mem());
    int rc = -1;
    if (r && name && exts && e && b && X509_REQ_set_version(r, 0) &&
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)host, -1, -1,
                                   0) &&
        X509_REQ_set_subject_name(r, name) && X509_REQ_set_pubkey(r, key) &&
        sk_X509_EXTENSION_push(exts, e) && (e = NULL, X509_REQ_add_extensions(r, exts)) &&
        X509_REQ_sign(r, key, EVP_sha256()) && PEM_write_bio_X509_REQ(b, r)) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        rc = write_new(csr, data, (size_t)n, 0644, err, el);
    } else {
        snprintf(err, el, "%s: cannot make the certificate request", csr);
    }
    X509_EXTENSION_free(e);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    BIO_free(b);
    X509_NAME_free(name);
    X509_REQ_free(r);
    return rc;
}

/* A new EC P-256 key written to path (mode, O_EXCL); *out keeps it. */
static int new_key(const char *path, mode_t mode, EVP_PKEY **out, char *err, size_t el)
{
    if (enr_keygen(ENR_ALGO_EC256, out, err, el) < 0)
        return -1;
    BIO *b = BIO_new(BIO_s_mem());
    int rc = -1;
    if (b && PEM_write_bio_PrivateKey(b, *out, NULL, NULL, 0, NULL, NULL)) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        rc = write_new(path, data, (size_t)n, mode, err, el);
        OPENSSL_cleanse(data, (size_t)n);
    } else {
        snprintf(err, el, "%s: cannot encode the key", path);
    }
    BIO_free(b);
    return rc;
}

/* ---- ownership (--system, as root) ------------------------------------------------- */

struct init_owner {
    bool chown; /* running as root with the easgate user present */
    uid_t uid;
    gid_t gid;
};

static void own(const struct init_owner *o, const char *path, bool user, mode_t mode)
{
    if (!o->chown)
        return;
    /* user: the services write it (easgate:easgate); else root writes and
     * the easgate group reads (root:easgate). */
    if (chown(path, user ? o->uid : 0, o->gid) < 0 || chmod(path, mode) < 0)
        fprintf(stderr, "easgate init: warning: cannot set owner/mode of %s: %s\n", path,
                strerror(errno));
}

/* ---- the command ------------------------------------------------------------------- */

static void set_paths(struct init_paths *p, const struct init_opts *o)
{
    const char *conf = o->system ? EG_CONFDIR : o->dir;
    const char *state = o->system ? EG_STATEDIR : o->dir;
    snprintf(p->config, sizeof(p->config), "%s/easgate.yaml", conf);
    snprintf(p->policy, sizeof(p->policy), "%s/policy.yaml", conf);
    snprintf(p->tls_dir, sizeof(p->tls_dir), "%s/tls", conf);
    snprintf(p->ca_dir, sizeof(p->ca_dir), "%s/ca", state);
    snprintf(p->server_key, sizeof(p->server_key), "%s/tls/server.key", conf);
    snprintf(p->server_crt, sizeof(p->server_crt), "%s/tls/server.crt", conf);
    snprintf(p->server_csr, sizeof(p->server_csr), "%s/tls/server.csr", conf);
    snprintf(p->admin_key, sizeof(p->admin_key), "%s/tls/admin.key", conf);
    snprintf(p->admin_crt, sizeof(p->admin_crt), "%s/tls/admin.crt", conf);
    snprintf(p->ca_key, sizeof(p->ca_key), "%s/ca/device-ca.key", state);
    snprintf(p->ca_crt, sizeof(p->ca_crt), "%s/ca/device-ca.crt", state);
    snprintf(p->ca_crl, sizeof(p->ca_crl), "%s/ca/device-ca.crl", state);
    snprintf(p->database, sizeof(p->database), "%s/registry.db", state);
    if (o->system) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (xdg && *xdg)
            snprintf(p->admin_yaml, sizeof(p->admin_yaml), "%s/easgate/admin.yaml", xdg);
        else
            snprintf(p->admin_yaml, sizeof(p->admin_yaml), "%s/.config/easgate/admin.yaml",
                     home && *home ? home : "/root");
    } else {
        snprintf(p->admin_yaml, sizeof(p->admin_yaml), "%s/admin.yaml", o->dir);
    }
}

/* "https://host[:port]" or "http://..." with a host and nothing after it. */
static bool upstream_ok(const char *u)
{
    const char *h = strncmp(u, "https://", 8) == 0  ? u + 8
                    : strncmp(u, "http://", 7) == 0 ? u + 7
                                                    : NULL;
    if (!h || !*h || strlen(u) > 400)
        return false;
    for (const char *s = h; *s; s++)
        if (*s == '/' || *s == '?' || *s == '@' || *s == '#' || *s == ' ' || *s == '"' ||
            *s == '\'' || *s == '\n')
            return *s == '/' && s[1] == '\0';
    return true;
}

/* A host name or address phones can be given: letters, digits, '-', '.', ':'. */
static bool host_ok(const char *h)
{
    if (!*h || strlen(h) > 253)
        return false;
    for (const char *s = h; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == ':'))
            return false;
    return true;
}

static int parse(int argc, char **argv, struct init_opts *o)
{
    enum { O_DIR = 256, O_SYSTEM, O_UPSTREAM, O_HOST, O_ADMIN, O_LISTEN, O_CSR };
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, O_DIR},
        {"system", no_argument, NULL, O_SYSTEM},
        {"upstream", required_argument, NULL, O_UPSTREAM},
        {"public-host", required_argument, NULL, O_HOST},
        {"admin", required_argument, NULL, O_ADMIN},
        {"listen", required_argument, NULL, O_LISTEN},
        {"csr", no_argument, NULL, O_CSR},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case O_DIR:
            o->dir = optarg;
            break;
        case O_SYSTEM:
            o->system = true;
            break;
        case O_UPSTREAM:
            o->upstream = optarg;
            break;
        case O_HOST:
            o->public_host = optarg;
            break;
        case O_ADMIN:
            o->admin = optarg;
            break;
        case O_LISTEN:
            o->listen = optarg;
            break;
        case O_CSR:
            o->csr = true;
            break;
        default:
            return CLI_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "easgate init: unexpected argument '%s'\n", argv[optind]);
        return CLI_USAGE;
    }
    if (!o->dir == !o->system) {
        fprintf(stderr, "easgate init: give either --dir DIR or --system\n");
        return CLI_USAGE;
    }
    if (!o->upstream) {
        fprintf(stderr, "easgate init: --upstream URL is required (your Exchange server)\n");
        return CLI_USAGE;
    }
    if (!upstream_ok(o->upstream)) {
        fprintf(stderr,
                "easgate init: --upstream '%s': give https://host[:port] (or http://), "
                "without a path\n",
                o->upstream);
        return 2;
    }
    if (o->dir && (!*o->dir || strlen(o->dir) > 1024)) {
        fprintf(stderr, "easgate init: --dir: give a directory\n");
        return 2;
    }
    if (o->public_host && !host_ok(o->public_host)) {
        fprintf(stderr, "easgate init: --public-host '%s' is not a host name\n", o->public_host);
        return 2;
    }
    if (!o->admin)
        o->admin = "admin";
    if (!o->listen)
        o->listen = o->system ? "0.0.0.0:443" : "0.0.0.0:8443";
    for (const char *s = o->listen; *s; s++)
        if (!((*s >= '0' && *s <= '9') || *s == '.' || *s == ':' || *s == '[' || *s == ']' ||
              *s == '*' || (*s >= 'a' && *s <= 'f'))) {
            fprintf(stderr, "easgate init: --listen '%s': give IP:PORT (0.0.0.0:443, [::]:443)\n",
                    o->listen);
            return 2;
        }
    return 0;
}

/* The keys and the database init would write: any that exists stops it. */
static int refuse_existing(const struct init_paths *p, bool csr)
{
    const char *const mine[] = {p->server_key, p->server_crt, p->admin_key,
                                p->admin_crt,  p->ca_key,     p->ca_crt,
                                p->ca_crl,     p->database,   csr ? p->server_csr : NULL};
    int n = 0;
    for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
        if (mine[i] && exists(mine[i])) {
            fprintf(stderr, "easgate init: %s exists\n", mine[i]);
            n++;
        }
    if (n)
        fprintf(stderr,
                "easgate init: stopped, nothing written: init never overwrites a key, a "
                "certificate or the registry. This looks like an installation that was set up "
                "already; to start afresh, move those files away first (every enrolled phone's "
                "certificate dies with the device CA)\n");
    return n ? -1 : 0;
}

static void print_next(const struct init_opts *o, const struct init_paths *p, const char *host)
{
    printf("\nnext steps:\n"
           "  1. check it (and set upstream.url or public_host if they are not right yet):\n"
           "       easgate check -c %s\n",
           p->config);
    if (o->system)
        printf("  2. start it (every role on this host; easgate-proxy and easgate-core split "
               "them):\n"
               "       systemctl enable --now easgate\n");
    else
        printf("  2. start it:\n"
               "       easgate run -c %s\n",
               p->config);
    char env[INIT_PATH_MAX + 64] = "";
    if (!o->system)
        snprintf(env, sizeof(env), "export EASGATE_ADMIN_CONFIG=%s\n       ", p->admin_yaml);
    printf("  3. log in and invite the first user (their phone enrolls at https://%s:8444):\n"
           "       %seasgate admin login --user %s    # prints a session token\n"
           "       export EASGATE_TOKEN=...\n"
           "       easgate admin invite alice@example.com --qr alice.png\n",
           host, env, o->admin);
    if (o->csr)
        printf("  and: have %s signed by a CA phones trust, put the certificate (with its chain) "
               "in %s, and reload\n",
               p->server_csr, p->server_crt);
}

static int run_init(int argc, char **argv)
{
    struct init_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    struct init_paths p;
    set_paths(&p, &o);
    char host[256], err[4096];
    if (o.public_host) {
        snprintf(host, sizeof(host), "%s", o.public_host);
    } else if (gethostname(host, sizeof(host)) < 0 || !host_ok(host)) {
        fprintf(stderr, "easgate init: cannot tell this host's name: give --public-host\n");
        return 2;
    }
    struct init_owner own_as = {0};
    if (o.system && geteuid() == 0) {
        struct passwd *pw = getpwnam(INIT_USER);
        if (!pw) {
            fprintf(stderr,
                    "easgate init: there is no '%s' user for the services (the Debian package "
                    "creates it; else: adduser --system --group %s)\n",
                    INIT_USER, INIT_USER);
            return 1;
        }
        own_as = (struct init_owner){true, pw->pw_uid, pw->pw_gid};
    } else if (o.system) {
        fprintf(stderr, "easgate init --system: run it as root (it writes %s and %s)\n", EG_CONFDIR,
                EG_STATEDIR);
        return 1;
    }
    if (refuse_existing(&p, o.csr) < 0)
        return 1;

    /* The password first: a weak one must not leave half a set behind. */
    char pw[INIT_PW_MAX], pw2[INIT_PW_MAX];
    if (cli_read_password("password for the first admin: ", pw, sizeof(pw)) < 0) {
        fprintf(stderr, "easgate init: no password given for '%s' (stdin was empty)\n", o.admin);
        return 1;
    }
    if (isatty(STDIN_FILENO) &&
        (cli_read_password("again: ", pw2, sizeof(pw2)) < 0 || strcmp(pw, pw2) != 0)) {
        fprintf(stderr, "easgate init: the passwords differ\n");
        return 1;
    }
    if (core_auth_password_check(o.admin, pw, err, sizeof(err)) < 0) {
        fprintf(stderr, "easgate init: password for '%s': %s\n", o.admin, err);
        OPENSSL_cleanse(pw, sizeof(pw));
        return 1;
    }

    /* Directories. */
    const char *conf_dir = o.system ? EG_CONFDIR : o.dir;
    const char *state_dir = o.system ? EG_STATEDIR : o.dir;
    if (mkdirs(conf_dir, 0750, err, sizeof(err)) < 0 || mkdirs(state_dir, 0700, err, sizeof(err)) ||
        mkdirs(p.tls_dir, 0750, err, sizeof(err)) < 0 ||
        mkdirs(p.ca_dir, 0700, err, sizeof(err)) < 0)
        goto fail;
    own(&own_as, p.tls_dir, false, 0750);
    own(&own_as, p.ca_dir, true, 0700);

    /* The configuration: written when missing, or when it is the file the
     * package installed, untouched (the same template with its defaults). */
    char *text = config_text(&p, o.system, o.upstream, host, o.listen, err, sizeof(err));
    if (!text)
        goto fail;
    char *have = NULL;
    bool write_conf = true;
    if (read_all(p.config, &have) == 0) {
        char *pristine = o.system ? config_text(&p, true, INIT_DEF_UPSTREAM, INIT_DEF_PUBLIC_HOST,
                                                "0.0.0.0:443", err, sizeof(err))
                                  : NULL;
        write_conf = pristine && strcmp(have, pristine) == 0;
        free(pristine);
        free(have);
        if (write_conf) {
            unlink(p.config);
        } else {
            fprintf(stderr,
                    "easgate init: kept %s (it exists and was edited): check that upstream.url "
                    "is %s and public_host %s, and that it names the files written here\n",
                    p.config, o.upstream, host);
            /* The registry and CRL are made through it: it must load. */
            struct conf *kept = NULL;
            core_cfg_register();
            enr_cfg_register();
            if (conf_load(p.config, &kept, err, sizeof(err)) < 0) {
                free(text);
                OPENSSL_cleanse(pw, sizeof(pw));
                fprintf(stderr,
                        "easgate init: %s\neasgate init: stopped, no key written: fix "
                        "or move away the kept file first\n",
                        err);
                return 1;
            }
            conf_free(kept);
        }
    }
    if (write_conf && write_new(p.config, text, strlen(text), 0640, err, sizeof(err)) < 0) {
        free(text);
        goto fail;
    }
    free(text);
    if (write_conf) {
        own(&own_as, p.config, false, 0640);
        printf("wrote %s\n", p.config);
    }
    if (!exists(p.policy)) {
        if (write_new(p.policy, init_policy_yaml, strlen(init_policy_yaml), 0640, err,
                      sizeof(err)) < 0)
            goto fail;
        own(&own_as, p.policy, false, 0640);
        printf("wrote %s\n", p.policy);
    }

    /* Keys and certificates: root:easgate 0640, read by the services. */
    EVP_PKEY *k = NULL;
    char san[700];
    snprintf(san, sizeof(san), "DNS:%s", host);
    if (new_key(p.server_key, 0640, &k, err, sizeof(err)) < 0 ||
        self_signed(k, host, san, p.server_crt, err, sizeof(err)) < 0 ||
        (o.csr && write_csr(k, host, p.server_csr, err, sizeof(err)) < 0)) {
        EVP_PKEY_free(k);
        goto fail;
    }
    EVP_PKEY_free(k);
    k = NULL;
    own(&own_as, p.server_key, false, 0640);
    own(&own_as, p.server_crt, false, 0644);
    printf("wrote %s, %s%s%s (self-signed for %s)\n", p.server_key, p.server_crt,
           o.csr ? " and " : "", o.csr ? p.server_csr : "", host);
    if (new_key(p.admin_key, 0640, &k, err, sizeof(err)) < 0 ||
        self_signed(k, "easgate admin API", "DNS:localhost,IP:127.0.0.1,IP:::1", p.admin_crt, err,
                    sizeof(err)) < 0) {
        EVP_PKEY_free(k);
        goto fail;
    }
    EVP_PKEY_free(k);
    own(&own_as, p.admin_key, false, 0640);
    own(&own_as, p.admin_crt, false, 0644);
    printf("wrote %s, %s (the admin API's, for 127.0.0.1)\n", p.admin_key, p.admin_crt);

    /* The device CA. */
    if (enr_ca_create(p.ca_crt, p.ca_key, "easgate device CA", ENR_ALGO_EC256, INIT_CA_DAYS, err,
                      sizeof(err)) < 0)
        goto fail;
    own(&own_as, p.ca_key, true, 0600);
    own(&own_as, p.ca_crt, true, 0644);
    printf("wrote %s, %s (the device CA)\n", p.ca_key, p.ca_crt);

    /* The registry, the first admin and the CRL, through the file just
     * written: what works here works for the services. */
    struct core_ctx cc;
    enr_cfg_register();
    rc = core_ctx_open(&cc, p.config, CORE_REDIS_NO, err, sizeof(err));
    if (rc) {
        core_ctx_close(&cc);
        goto fail;
    }
    struct core_auth *a = NULL;
    struct enr_ctx ec;
    memset(&ec, 0, sizeof(ec));
    const struct enr_cfg *ecfg = enr_cfg_get(cc.conf);
    int64_t now = core_now_ms();
    if (core_auth_open(cc.reg, &a) < 0) {
        snprintf(err, sizeof(err), "%s: cannot open the accounts tables", p.database);
        rc = -1;
    } else if (core_auth_account_add(a, o.admin, CORE_ROLE_ADMIN, pw, now, err, sizeof(err)) < 0) {
        rc = -1;
    } else {
        core_reg_audit_add(cc.reg, "cli:init", "", "account.create", o.admin, "admin", now);
        printf("wrote %s with the admin account '%s'\n", p.database, o.admin);
        if (!ecfg || enr_open(&ec, ecfg, &cc.eng, err, sizeof(err)) < 0 ||
            enr_crl_update(&ec, true, now, err, sizeof(err)) < 0)
            rc = -1;
        else
            printf("wrote %s (empty: nothing is revoked)\n", p.ca_crl);
    }
    OPENSSL_cleanse(pw, sizeof(pw));
    enr_close(&ec);
    core_auth_close(a);
    core_ctx_close(&cc); /* SQLite removes its -wal and -shm: the file alone remains */
    if (rc)
        goto fail;
    if (chmod(p.database, 0600) < 0) /* the admin's password hash: nobody else reads it */
        fprintf(stderr, "easgate init: warning: chmod 0600 %s: %s\n", p.database, strerror(errno));
    own(&own_as, p.database, true, 0600);
    own(&own_as, p.ca_crl, true, 0644);

    /* Where the admin client finds the API (kept if it exists). */
    if (!exists(p.admin_yaml)) {
        char dir[INIT_PATH_MAX], y[3 * INIT_PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", p.admin_yaml);
        *strrchr(dir, '/') = '\0';
        snprintf(y, sizeof(y),
                 "# easgate admin: where the admin API is (written by easgate init).\n"
                 "# Environment variables (EASGATE_URL, EASGATE_CACERT, EASGATE_TOKEN) and\n"
                 "# options win over this file.\n"
                 "url: https://127.0.0.1:9443\n"
                 "cacert: %s\n"
                 "enroll_url: https://%s:8444\n"
                 "enroll_cacert: %s    # remove once a public CA signed it\n",
                 p.admin_crt, host, p.server_crt);
        if (mkdirs(dir, 0700, err, sizeof(err)) == 0 &&
            write_new(p.admin_yaml, y, strlen(y), 0600, err, sizeof(err)) == 0)
            printf("wrote %s\n", p.admin_yaml);
        else
            fprintf(stderr, "easgate init: warning: %s\n", err);
    }
    print_next(&o, &p, host);
    return 0;

fail:
    OPENSSL_cleanse(pw, sizeof(pw));
    fprintf(stderr, "easgate init: %s\n", err);
    fprintf(stderr, "easgate init: stopped; what was written so far stays (see above)\n");
    return 1;
}

const struct cli_cmd cli_init_cmd = {"init",
                                     "first run: write a working configuration, keys, the device "
                                     "CA and the first admin",
                                     init_usage, run_init, NULL};
