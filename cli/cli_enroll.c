/*
 * cli_enroll: `easgate core init-ca` and `easgate core enroll ...`, the
 * enrollment role from the command line (moved here from enroll/, since
 * only cli/ knows every role; the table is cli_core.c's).
 *
 * The everyday path is the HTTPS endpoint (devices) and the admin API
 * (invitations); these commands are for setting up the CA, for scripts and
 * for the break-glass case. They open the registry and Redis like the
 * core's own maintenance commands (core_ctx_open), so an enrollment made
 * here is pushed to Redis exactly like one made over HTTPS.
 */
#include "cli/cli.h"

#include "common/units.h"
#include "core/ctx.h"
#include "enroll/ca.h"
#include "enroll/cfg.h"
#include "enroll/enr.h"
#include "enroll/err.h"
#include "enroll/qr.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERR_MAX 1024
#define CSR_MAX (1 << 20)
#define LIST_MAX 1000

struct opts {
    const char *what; /* "easgate core enroll invite", for messages */
    const char *config, *algo, *import, *import_key, *password_env, *user, *expires, *qr;
    const char *key, *csr, *platform, *out, *email, *device, *reason;
    long max_uses;
    int genkey, json;
    int nwords; /* words after the command's name */
};

/*
 * The options every enrollment command takes (getopt_long, permuting), then
 * between min and max words after the command's own name: 0 with *words
 * set, or an exit status.
 */
static int parse(int argc, char **argv, const char *what, struct opts *o, int min, int max,
                 char ***words)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"algo", required_argument, NULL, 'A'},
        {"import", required_argument, NULL, 'I'},
        {"import-key", required_argument, NULL, 'K'},
        {"password-env", required_argument, NULL, 'P'},
        {"user", required_argument, NULL, 'u'},
        {"max-uses", required_argument, NULL, 'm'},
        {"expires", required_argument, NULL, 'e'},
        {"qr", required_argument, NULL, 'q'},
        {"json", no_argument, NULL, 'j'},
        {"key", required_argument, NULL, 'k'},
        {"csr", required_argument, NULL, 's'},
        {"genkey", no_argument, NULL, 'g'},
        {"platform", required_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},
        {"email", required_argument, NULL, 'E'},
        {"device", required_argument, NULL, 'd'},
        {"reason", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    o->what = what;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 'A':
            o->algo = optarg;
            break;
        case 'I':
            o->import = optarg;
            break;
        case 'K':
            o->import_key = optarg;
            break;
        case 'P':
            o->password_env = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'm': {
            char *end;
            errno = 0;
            o->max_uses = strtol(optarg, &end, 10);
            if (errno || *end || o->max_uses < 1 || o->max_uses > 100000) {
                fprintf(stderr, "easgate core enroll: --max-uses must be 1 to 100000\n");
                return 2;
            }
            break;
        }
        case 'e':
            o->expires = optarg;
            break;
        case 'q':
            o->qr = optarg;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 's':
            o->csr = optarg;
            break;
        case 'g':
            o->genkey = 1;
            break;
        case 'p':
            o->platform = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'E':
            o->email = optarg;
            break;
        case 'd':
            o->device = optarg;
            break;
        case 'r':
            o->reason = optarg;
            break;
        default:
            return CLI_USAGE;
        }
    }
    int n = argc - optind;
    if (n > max) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", what, argv[optind + max]);
        return CLI_USAGE;
    }
    if (n < min) {
        fprintf(stderr, "%s: missing arguments\n", what);
        return CLI_USAGE;
    }
    *words = argv + optind;
    o->nwords = n;
    return 0;
}

/* The configuration with the enroll: section, or an exit status. */
static int load_cfg(const struct opts *o, struct conf **conf, const struct enr_cfg **cfg)
{
    char err[ERR_MAX];
    if (!o->config) {
        fprintf(stderr, "%s: -c FILE is required\n", o->what);
        return CLI_USAGE;
    }
    enr_cfg_register();
    if (conf_load(o->config, conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    *cfg = enr_cfg_get(*conf);
    if (!*cfg) {
        fprintf(stderr, "%s: no enroll: section (it needs at least enroll.public_host)\n",
                o->config);
        conf_free(*conf);
        *conf = NULL;
        return 2;
    }
    return 0;
}

static int cmd_init_ca(const struct opts *o)
{
    struct conf *conf = NULL;
    const struct enr_cfg *cfg = NULL;
    int rc = load_cfg(o, &conf, &cfg);
    if (rc)
        return rc;
    char err[ERR_MAX];
    if (o->import) {
        const char *pw = NULL;
        if (o->password_env && !(pw = getenv(o->password_env))) {
            fprintf(stderr, "easgate core init-ca: environment variable %s is not set\n",
                    o->password_env);
            conf_free(conf);
            return 2;
        }
        rc = enr_ca_import(o->import, o->import_key, pw, cfg->ca.cert, cfg->ca.key, err,
                           sizeof(err));
    } else {
        enum enr_algo a;
        const char *name = o->algo ? o->algo : cfg->ca_algo;
        if (enr_algo_parse(name, &a) < 0 || a == ENR_ALGO_RSA2048) {
            fprintf(stderr, "easgate core init-ca: --algo must be ec256, ec384 or rsa3072\n");
            conf_free(conf);
            return 2;
        }
        rc = enr_ca_create(cfg->ca.cert, cfg->ca.key, cfg->ca_name, a,
                           (int)(cfg->ca_validity_ms / 86400000LL), err, sizeof(err));
    }
    if (rc < 0) {
        fprintf(stderr, "easgate core init-ca: %s\n", err);
    } else {
        printf("device CA %s: certificate %s, key %s (mode 0600)\n",
               o->import ? "imported" : "created", cfg->ca.cert, cfg->ca.key);
    }
    conf_free(conf);
    return rc < 0 ? 1 : 0;
}

/* Registry, Redis and the enrollment context, or an exit status. */
static void close_all(struct core_ctx *cc, struct enr_ctx *ec);

static int open_parts(const struct opts *o, struct core_ctx *cc, struct enr_ctx *ec)
{
    char err[ERR_MAX];
    memset(ec, 0, sizeof(*ec));
    enr_cfg_register();
    int rc = cli_core_open(cc, o->config, CORE_REDIS_TRY, o->what);
    if (rc)
        return rc;
    const struct enr_cfg *cfg = enr_cfg_get(cc->conf);
    if (!cfg) {
        fprintf(stderr, "%s: no enroll: section (it needs at least enroll.public_host)\n",
                o->config);
        return 2;
    }
    if (enr_open(ec, cfg, &cc->eng, err, sizeof(err)) < 0) {
        fprintf(stderr, "easgate core enroll: %s\n", err);
        return 1;
    }
    return 0;
}

/* Open the registry, Redis and the enrollment context; on failure, what was
 * opened is closed again, so a caller only returns the code. */
static int open_all(const struct opts *o, struct core_ctx *cc, struct enr_ctx *ec)
{
    int rc = open_parts(o, cc, ec);
    if (rc)
        close_all(cc, ec);
    return rc;
}

static void close_all(struct core_ctx *cc, struct enr_ctx *ec)
{
    enr_close(ec);
    core_ctx_close(cc);
}

static int write_out(const char *prefix, const char *ext, const void *buf, size_t len, int mode,
                     FILE *note)
{
    char path[4096], err[ERR_MAX];
    snprintf(path, sizeof(path), "%s%s", prefix, ext);
    if (enr_write_file(path, buf, len, mode, err, sizeof(err)) < 0) {
        fprintf(stderr, "easgate core enroll: %s\n", err);
        return -1;
    }
    fprintf(note, "wrote %s\n", path);
    return 0;
}

static int cmd_invite(const struct opts *o, const char *email)
{
    int64_t exp = 0, now = core_now_ms();
    if (o->expires) {
        int64_t d;
        const char *why;
        if (strcmp(o->expires, "never") == 0)
            exp = -1;
        else if (units_parse_duration(o->expires, &d, &why) < 0 || d <= 0) {
            fprintf(stderr,
                    "easgate core enroll invite: --expires '%s': give a duration such as "
                    "7d or 12h, or never\n",
                    o->expires);
            return 2;
        } else
            exp = now + d;
    }
    if (o->max_uses < 0 || o->max_uses > 100000) {
        fprintf(stderr, "easgate core enroll invite: --max-uses must be 1 to 100000\n");
        return 2;
    }
    struct core_ctx cc;
    struct enr_ctx ec;
    int rc = open_all(o, &cc, &ec);
    if (rc)
        return rc;
    char who[256], err[ERR_MAX];
    cli_actor(who, sizeof(who));
    /* The directory, when configured, vets the user here too. */
    struct core_dir *dir = NULL;
    if (cc.cfg->directory.enabled &&
        core_dir_open(&cc.cfg->directory, &dir, err, sizeof(err)) < 0) {
        fprintf(stderr, "easgate core enroll invite: %s\n", err);
        close_all(&cc, &ec);
        return 2;
    }
    ec.dir = dir;
    struct enr_invite inv;
    struct enr_invite_req r = {.email = email,
                               .user = o->user,
                               .max_uses = (int)o->max_uses,
                               .expires_ms = exp,
                               .actor = who};
    rc = enr_invite(&ec, &r, now, &inv, err, sizeof(err));
    core_dir_close(dir);
    ec.dir = NULL;
    if (rc < 0) {
        fprintf(stderr, "easgate core enroll invite: %s\n", err);
        close_all(&cc, &ec);
        return rc == ENR_EINVAL ? 2 : 1;
    }
    char ex[32];
    cli_fmt_time(inv.expires_ms, ex, sizeof(ex));
    if (o->json) {
        /* jansson escapes: a user such as CORP\bob or one with a quote
         * printed raw was not JSON, or read back as another name. */
        json_t *j =
            json_pack("{s:I, s:s, s:s, s:s, s:i, s:s, s:s}", "id", (json_int_t)inv.id, "email",
                      inv.email, "user", inv.user, "key", inv.key, "max_uses", inv.max_uses,
                      "expires", inv.expires_ms ? ex : "never", "url", inv.url);
        char *txt = j ? json_dumps(j, 0) : NULL;
        printf("%s\n", txt ? txt : "{}");
        free(txt);
        json_decref(j);
    } else
        printf("invitation %lld for %s (user %s)\n"
               "key:      %s   (shown once; only its hash is stored)\n"
               "uses:     %d\n"
               "expires:  %s\n"
               "url:      %s\n",
               (long long)inv.id, inv.email, inv.user, inv.key, inv.max_uses,
               inv.expires_ms ? ex : "never", inv.url[0] ? inv.url : "(set enroll.url)");
    if (o->qr) {
        unsigned char *png = NULL;
        size_t len = 0;
        const char *text = inv.url[0] ? inv.url : inv.key;
        if (enr_qr_png(text, ENR_QR_SCALE, &png, &len) < 0 ||
            write_out(o->qr, "", png, len, 0600, o->json ? stderr : stdout) < 0)
            rc = 1;
        free(png);
    }
    OPENSSL_cleanse(inv.key, sizeof(inv.key));
    close_all(&cc, &ec);
    return rc;
}

static int cmd_invitations(const struct opts *o)
{
    struct core_ctx cc;
    struct enr_ctx ec;
    int rc = open_all(o, &cc, &ec);
    if (rc)
        return rc;
    struct enr_invite *v = calloc(LIST_MAX, sizeof(*v));
    size_t n = 0;
    rc = v ? enr_invite_list(&ec, o->email, v, LIST_MAX, &n) : ENR_ENOMEM;
    if (rc == 0) {
        printf("%-6s %-32s %-24s %-9s %-20s %s\n", "ID", "EMAIL", "USER", "USES", "EXPIRES",
               "STATUS");
        for (size_t i = 0; i < n; i++) {
            char ex[32], uses[24];
            cli_fmt_time(v[i].expires_ms, ex, sizeof(ex));
            snprintf(uses, sizeof(uses), "%d/%d", v[i].uses, v[i].max_uses);
            int64_t now = core_now_ms();
            const char *st = v[i].revoked_ms                             ? "withdrawn"
                             : v[i].expires_ms && now >= v[i].expires_ms ? "expired"
                             : v[i].uses >= v[i].max_uses                ? "used"
                                                                         : "open";
            printf("%-6lld %-32s %-24s %-9s %-20s %s\n", (long long)v[i].id, v[i].email, v[i].user,
                   uses, v[i].expires_ms ? ex : "never", st);
        }
    } else {
        fprintf(stderr, "easgate core enroll invitations: registry error\n");
    }
    free(v);
    close_all(&cc, &ec);
    return rc < 0 ? 1 : 0;
}

static int cmd_uninvite(const struct opts *o, const char *idstr)
{
    char *end;
    errno = 0;
    long long id = strtoll(idstr, &end, 10);
    if (errno || *end || id <= 0) {
        fprintf(stderr, "easgate core enroll uninvite: '%s' is not an invitation id\n", idstr);
        return 2;
    }
    struct core_ctx cc;
    struct enr_ctx ec;
    int rc = open_all(o, &cc, &ec);
    if (rc)
        return rc;
    char who[256], err[ERR_MAX];
    cli_actor(who, sizeof(who));
    rc = enr_invite_revoke(&ec, id, who, core_now_ms(), err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "easgate core enroll uninvite: %s\n", err);
    else
        printf("invitation %lld withdrawn\n", id);
    close_all(&cc, &ec);
    return rc < 0 ? 1 : 0;
}

static int print_result(const struct opts *o, const struct enr_result *res)
{
    char na[32];
    cli_fmt_time(res->not_after_ms, na, sizeof(na));
    printf("device:   %s\nuser:     %s\nserial:   %s\nexpires:  %s\n", res->device_id, res->user,
           res->serial, na);
    if (res->p12)
        printf("p12 password: %s   (one-time; also inside the profile)\n", res->p12_password);
    if (!o->out)
        return 0;
    int bad = write_out(o->out, ".crt", res->cert_pem, strlen(res->cert_pem), 0644, stdout) < 0;
    if (res->p12)
        bad |= write_out(o->out, ".p12", res->p12, res->p12_len, 0600, stdout) < 0;
    if (res->profile)
        bad |= write_out(o->out,
                         strcmp(res->profile_type, "application/json") == 0 ? ".json"
                                                                            : ".mobileconfig",
                         res->profile, res->profile_len, 0600, stdout) < 0;
    return bad ? -1 : 0;
}

static int read_csr(const char *path, unsigned char **buf, size_t *len)
{
    char err[ERR_MAX];
    if (enr_read_file(path, CSR_MAX, buf, len, err, sizeof(err)) < 0) {
        fprintf(stderr, "easgate core enroll: %s\n", err);
        return -1;
    }
    return 0;
}

static int cmd_device(const struct opts *o, const char *device_id, bool renew)
{
    enum enr_platform plat = ENR_PLAT_NONE;
    if (!renew && (!o->key || (!o->csr == !o->genkey))) {
        fprintf(stderr, "easgate core enroll device: give --key and one of --csr or --genkey\n");
        return CLI_USAGE;
    }
    if (renew && !o->csr) {
        fprintf(stderr, "easgate core enroll renew: give --csr (signed by the current key)\n");
        return CLI_USAGE;
    }
    if (enr_platform_parse(o->platform, &plat) < 0) {
        fprintf(stderr, "easgate core enroll device: --platform must be ios, android or none\n");
        return 2;
    }
    unsigned char *csr = NULL;
    size_t csr_len = 0;
    if (o->csr && read_csr(o->csr, &csr, &csr_len) < 0)
        return 1;
    struct core_ctx cc;
    struct enr_ctx ec;
    int rc = open_all(o, &cc, &ec);
    if (rc) {
        free(csr);
        return rc;
    }
    struct enr_result res;
    char err[ERR_MAX] = "";
    if (renew) {
        rc = enr_renew(&ec, device_id, csr, csr_len, core_now_ms(), &res, err, sizeof(err));
    } else {
        struct enr_request r = {.key = o->key,
                                .device_id = device_id,
                                .csr = csr,
                                .csr_len = csr_len,
                                .platform = plat,
                                .address = ""};
        rc = enr_enroll(&ec, &r, core_now_ms(), &res, err, sizeof(err));
    }
    if (rc < 0) {
        fprintf(stderr, "easgate core enroll %s: %s\n", renew ? "renew" : "device", err);
        rc = 1;
    } else {
        rc = print_result(o, &res) < 0 ? 1 : 0;
        if (cc.eng.dirty)
            fprintf(stderr, "easgate core enroll: Redis not updated (run easgate core resync)\n");
        enr_result_free(&res);
    }
    free(csr);
    close_all(&cc, &ec);
    return rc;
}

static int cmd_certs(const struct opts *o)
{
    struct core_ctx cc;
    struct enr_ctx ec;
    int rc = open_all(o, &cc, &ec);
    if (rc)
        return rc;
    struct enr_cert *v = calloc(LIST_MAX, sizeof(*v));
    size_t n = 0;
    rc = v ? enr_cert_list(&ec, o->device, v, LIST_MAX, &n) : ENR_ENOMEM;
    if (rc == 0) {
        printf("%-32s %-32s %-24s %-20s %s\n", "SERIAL", "DEVICE_ID", "USER", "NOT_AFTER",
               "STATUS");
        for (size_t i = 0; i < n; i++) {
            char na[32], st[96];
            cli_fmt_time(v[i].not_after_ms, na, sizeof(na));
            if (v[i].revoked_ms)
                snprintf(st, sizeof(st), "revoked (%s)", v[i].revoke_reason);
            else
                snprintf(st, sizeof(st), "%s",
                         v[i].not_after_ms <= core_now_ms() ? "expired" : "valid");
            printf("%-32s %-32s %-24s %-20s %s\n", v[i].serial, v[i].device_id, v[i].user, na, st);
        }
    } else {
        fprintf(stderr, "easgate core enroll certs: %s\n",
                rc == ENR_EINVAL ? "--device is not a DeviceId" : "registry error");
    }
    free(v);
    close_all(&cc, &ec);
    return rc < 0 ? 1 : 0;
}

static int cmd_revoke(const struct opts *o, const char *serial)
{
    if (!serial == !o->device) {
        fprintf(stderr, "easgate core enroll revoke: give a SERIAL or --device ID\n");
        return CLI_USAGE;
    }
    struct core_ctx cc;
    struct enr_ctx ec;
    int rc = open_all(o, &cc, &ec);
    if (rc)
        return rc;
    char who[256], err[ERR_MAX];
    cli_actor(who, sizeof(who));
    rc = enr_revoke(&ec, serial, o->device, o->reason, who, core_now_ms(), err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "easgate core enroll revoke: %s\n", err);
    else
        printf("revoked; CRL rewritten: %s\n", ec.cfg->crl_path);
    close_all(&cc, &ec);
    return rc < 0 ? 1 : 0;
}

static int cmd_crl(const struct opts *o)
{
    struct core_ctx cc;
    struct enr_ctx ec;
    int rc = open_all(o, &cc, &ec);
    if (rc)
        return rc;
    char err[ERR_MAX];
    rc = enr_crl_update(&ec, true, core_now_ms(), err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "easgate core enroll crl: %s\n", err);
    else
        printf("CRL written: %s\n", ec.cfg->crl_path);
    close_all(&cc, &ec);
    return rc < 0 ? 1 : 0;
}

/* ---- the commands (their table is cli_core.c's) ---------------------------- */

static int run_init_ca(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core init-ca", &o, 0, 0, &w);
    return rc ? rc : cmd_init_ca(&o);
}

static int run_invite(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core enroll invite", &o, 1, 1, &w);
    return rc ? rc : cmd_invite(&o, w[0]);
}

static int run_invitations(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core enroll invitations", &o, 0, 0, &w);
    return rc ? rc : cmd_invitations(&o);
}

static int run_uninvite(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core enroll uninvite", &o, 1, 1, &w);
    return rc ? rc : cmd_uninvite(&o, w[0]);
}

static int run_device(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core enroll device", &o, 1, 1, &w);
    return rc ? rc : cmd_device(&o, w[0], false);
}

static int run_renew(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core enroll renew", &o, 1, 1, &w);
    return rc ? rc : cmd_device(&o, w[0], true);
}

static int run_certs(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core enroll certs", &o, 0, 0, &w);
    return rc ? rc : cmd_certs(&o);
}

static int run_revoke(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core enroll revoke", &o, 0, 1, &w);
    return rc ? rc : cmd_revoke(&o, o.nwords == 1 ? w[0] : NULL);
}

static int run_crl(int argc, char **argv)
{
    struct opts o;
    char **w;
    int rc = parse(argc, argv, "easgate core enroll crl", &o, 0, 0, &w);
    return rc ? rc : cmd_crl(&o);
}

const struct cli_cmd cli_init_ca_cmd = {
    "init-ca", "create or import the device CA",
    "usage: easgate core init-ca -c FILE [--algo ec256|ec384|rsa3072]\n"
    "       easgate core init-ca -c FILE --import CA.pem|CA.p12 [--import-key KEY.pem]\n"
    "                                   [--password-env VAR]\n"
    "  write the device CA's certificate and key where enroll.ca names them\n",
    run_init_ca, NULL};

const struct cli_cmd cli_enroll_invite_cmd = {
    "invite", "invite a user: a one-time enrollment key (and URL, QR code)",
    "usage: easgate core enroll invite EMAIL -c FILE [--user U] [--max-uses N]\n"
    "                                   [--expires DURATION|never] [--qr FILE.png] [--json]\n",
    run_invite, NULL};

const struct cli_cmd cli_enroll_invitations_cmd = {
    "invitations", "list invitations, newest first",
    "usage: easgate core enroll invitations -c FILE [--email E]\n", run_invitations, NULL};

const struct cli_cmd cli_enroll_uninvite_cmd = {
    "uninvite", "withdraw an invitation: its key stops working",
    "usage: easgate core enroll uninvite ID -c FILE\n", run_uninvite, NULL};

const struct cli_cmd cli_enroll_device_cmd = {
    "device", "enroll a device with an invitation key",
    "usage: easgate core enroll device DEVICEID -c FILE --key KEY (--csr FILE | --genkey)\n"
    "                                   [--platform ios|android|none] [--out PREFIX]\n",
    run_device, NULL};

const struct cli_cmd cli_enroll_renew_cmd = {
    "renew", "renew a device's certificate (CSR signed by its current key)",
    "usage: easgate core enroll renew DEVICEID -c FILE --csr FILE [--out PREFIX]\n", run_renew,
    NULL};

const struct cli_cmd cli_enroll_certs_cmd = {
    "certs", "list issued certificates", "usage: easgate core enroll certs -c FILE [--device ID]\n",
    run_certs, NULL};

const struct cli_cmd cli_enroll_revoke_cmd = {
    "revoke", "revoke a certificate (by serial, or every one of a device)",
    "usage: easgate core enroll revoke SERIAL -c FILE [--reason TEXT]\n"
    "       easgate core enroll revoke --device ID -c FILE [--reason TEXT]\n",
    run_revoke, NULL};

const struct cli_cmd cli_enroll_crl_cmd = {"crl", "rewrite the CRL now",
                                           "usage: easgate core enroll crl -c FILE\n"
                                           "  rewrite the CRL now\n",
                                           run_crl, NULL};
