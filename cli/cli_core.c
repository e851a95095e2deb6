/*
 * cli_core: `easgate core`, the management core (server role), and the
 * maintenance commands that work on its registry directly:
 *
 *   easgate core -c FILE                 run: evaluate, resync, then keep the
 *                                        time-based rules and Redis up to date
 *   easgate core resync -c FILE          rewrite Redis from the registry
 *   easgate core evaluate -c FILE        re-evaluate every device now
 *   easgate core devices -c FILE [filters]
 *   easgate core device show|add|allow|block|quarantine|wipe|reset|delete|
 *                       manage|unmanage|reprovision ID -c FILE [--user U]
 *                       [--note TEXT] [--account-only (wipe)]
 *   easgate core audit -c FILE [--limit N]
 *
 * The maintenance commands are the break-glass path (the admin API over
 * HTTPS is the everyday one): they write the registry under SQLite's locks,
 * next to a running core, and push what changed to Redis themselves.
 */
#include "cli/cli.h"

#include "common/conf.h"
#include "common/log.h"
#include "core/cfg.h"
#include "core/eng.h"
#include "core/run.h"
#include "enroll/cli.h"
#include "enroll/srv.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ERR_MAX 1024
#define LIST_MAX 10000 /* devices/audit rows one listing prints at most */

struct opts {
    const char *config;
    const char *user, *note, *type, *state, *managed, *after;
    const char *os, *os_version, *passcode, *encrypted, *jailbroken; /* checkin */
    long limit;
    bool account_only; /* wipe: AccountOnlyRemoteWipe */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: easgate core -c FILE                 run the management core\n"
               "       easgate core resync -c FILE          rewrite Redis from the registry\n"
               "       easgate core evaluate -c FILE        re-evaluate every device now\n"
               "       easgate core devices -c FILE [--user U] [--state S] [--type T]\n"
               "                            [--managed yes|no] [--after ID] [--limit N]\n"
               "       easgate core device show ID -c FILE\n"
               "       easgate core device add ID -c FILE [--user U] [--type T]\n"
               "       easgate core device ACTION ID -c FILE [--user U] [--note TEXT]\n"
               "         ACTION: allow block quarantine wipe reset delete manage unmanage\n"
               "                 reprovision; wipe --account-only: AccountOnlyRemoteWipe\n"
               "                 (refused unless the device last spoke EAS 16.1 or later)\n"
               "       easgate core device checkin ID -c FILE [--os FAMILY] [--os-version V]\n"
               "                            [--passcode yes|no] [--encrypted yes|no] "
               "[--jailbroken yes|no]\n"
               "       easgate core audit -c FILE [--limit N]\n");
}

static int64_t now_ms(void)
{
    return core_now_ms();
}

/* want_redis as core_ctx_open; prints the error and returns the exit status. */
static int ctx_open(struct core_ctx *c, const struct opts *o, enum core_redis_need redis)
{
    if (!o->config) {
        memset(c, 0, sizeof(*c));
        fprintf(stderr, "easgate core: -c FILE is required\n");
        return 2;
    }
    char err[ERR_MAX];
    int rc = core_ctx_open(c, o->config, redis, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s%s\n", rc == 1 ? "easgate core: " : "", err);
    return rc;
}

static void ctx_close(struct core_ctx *c)
{
    core_ctx_close(c);
}

/* ---- run ---------------------------------------------------------------- */

static volatile sig_atomic_t stop_flag, hup_flag;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        hup_flag = 1;
    else
        stop_flag = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int cmd_run(const struct opts *o)
{
    struct core_ctx c;
    int rc = ctx_open(&c, o, CORE_REDIS_TRY);
    struct enr_srv *enr = NULL; /* the enrollment endpoint, when enroll.listen is set */
    char e[1024];
    if (rc == 0 && enr_srv_start(o->config, &enr, e, sizeof(e)) < 0) {
        fprintf(stderr, "easgate core: %s\n", e);
        rc = 2;
    }
    if (rc == 0) {
        install_signals();
        rc = core_run(&c, &stop_flag, &hup_flag);
    }
    enr_srv_stop(enr);
    ctx_close(&c);
    return rc;
}

/* ---- maintenance commands ------------------------------------------------ */

static int cmd_resync(const struct opts *o)
{
    struct core_ctx c;
    int rc = ctx_open(&c, o, CORE_REDIS_REQUIRED);
    if (rc) {
        ctx_close(&c);
        return rc;
    }
    struct rstore_resync_stats st;
    rc = core_eng_resync(&c.eng, &st);
    if (rc < 0)
        fprintf(stderr, "easgate core resync: %s\n", rstore_push_error(c.push));
    else
        printf("resync: %zu devices written, %zu stale keys removed, %zu keys scanned, %lld ms\n",
               st.written, st.removed, st.scanned, (long long)st.elapsed_ms);
    ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

static int cmd_evaluate(const struct opts *o)
{
    struct core_ctx c;
    int rc = ctx_open(&c, o, CORE_REDIS_TRY);
    if (rc) {
        ctx_close(&c);
        return rc;
    }
    size_t n = 0;
    uint64_t before = c.eng.changes;
    rc = core_eng_evaluate_all(&c.eng, now_ms(), &n);
    if (rc < 0)
        fprintf(stderr, "easgate core evaluate: registry error %d\n", rc);
    else
        printf("evaluated %zu devices, %llu changed%s\n", n,
               (unsigned long long)(c.eng.changes - before),
               c.eng.dirty ? " (Redis not updated: run easgate core resync)" : "");
    ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

static void fmt_time(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *tri_name(enum compliance_tri t)
{
    return t == COMPLIANCE_YES ? "yes" : t == COMPLIANCE_NO ? "no" : "unknown";
}

static void print_device(const struct core_device *d)
{
    char fs[32], ls[32], lc[32], up[32], nc[32], ne[32], wa[32];
    fmt_time(d->first_seen_ms, fs, sizeof(fs));
    fmt_time(d->last_seen_ms, ls, sizeof(ls));
    fmt_time(d->last_checkin_ms, lc, sizeof(lc));
    fmt_time(d->updated_ms, up, sizeof(up));
    fmt_time(d->non_compliant_since_ms, nc, sizeof(nc));
    fmt_time(d->next_eval_ms, ne, sizeof(ne));
    fmt_time(d->wipe_acked_ms, wa, sizeof(wa));
    char pk[16], pv[32];
    snprintf(pk, sizeof(pk), "%lu", (unsigned long)d->policy_key);
    if (!d->policy_key)
        snprintf(pk, sizeof(pk), "-");
    fmt_time(d->provisioned_ms, pv, sizeof(pv));
    printf("device_id:       %s\n"
           "user:            %s\n"
           "state:           %s (%s), version %lld, since %s\n"
           "override:        %s\n"
           "managed:         %s\n"
           "device_type:     %s\n"
           "model:           %s\n"
           "os:              %s %s\n"
           "imei:            %s\n"
           "friendly_name:   %s\n"
           "phone_number:    %s\n"
           "user_agent:      %s\n"
           "passcode:        %s\n"
           "encrypted:       %s\n"
           "jailbroken:      %s\n"
           "agent_version:   %s\n"
           "first_seen:      %s\n"
           "last_seen:       %s\n"
           "last_checkin:    %s\n"
           "non_compliant:   %s\n"
           "next_evaluation: %s\n"
           "wipe_acked:      %s\n"
           "wipe_kind:       %s\n"
           "eas_version:     %s\n"
           "pk_epoch:        %lld\n"
           "policy_key:      %s (provisioned %s)\n",
           d->device_id, d->user, compliance_state_name(d->state), d->reason, (long long)d->version,
           up, compliance_override_name(d->override), d->managed ? "yes" : "no", d->device_type,
           d->model, d->os, d->os_version, d->imei, d->friendly_name, d->phone_number,
           d->user_agent, tri_name(d->passcode), tri_name(d->encrypted), tri_name(d->jailbroken),
           d->agent_version, fs, ls, lc, nc, ne, wa, d->wipe_account ? "account" : "full",
           d->eas_version[0] ? d->eas_version : "-", (long long)d->pk_epoch, pk, pv);
}

static int cmd_devices(const struct opts *o)
{
    struct core_ctx c;
    int rc = ctx_open(&c, o, CORE_REDIS_NO);
    if (rc) {
        ctx_close(&c);
        return rc;
    }
    struct core_dev_filter f;
    core_dev_filter_init(&f);
    f.user = o->user;
    f.device_type = o->type;
    f.after = o->after;
    enum compliance_state st;
    if (o->state) {
        if (compliance_state_parse(o->state, &st) < 0) {
            fprintf(stderr, "easgate core devices: --state must be allow, block, quarantine or "
                            "wipe\n");
            ctx_close(&c);
            return 2;
        }
        f.state = (int)st;
    }
    if (o->managed) {
        if (strcmp(o->managed, "yes") != 0 && strcmp(o->managed, "no") != 0) {
            fprintf(stderr, "easgate core devices: --managed must be yes or no\n");
            ctx_close(&c);
            return 2;
        }
        f.managed = strcmp(o->managed, "yes") == 0;
    }
    size_t max = o->limit > 0 && o->limit <= LIST_MAX ? (size_t)o->limit : 100;
    struct core_device *page = calloc(max, sizeof(*page));
    size_t n = 0;
    rc = page ? core_reg_device_list(c.reg, &f, page, max, &n) : CORE_REG_ENOMEM;
    if (rc < 0) {
        fprintf(stderr, "easgate core devices: registry error %d\n", rc);
    } else {
        printf("%-32s %-10s %-18s %-7s %-24s %-12s %s\n", "DEVICE_ID", "STATE", "REASON", "MANAGED",
               "USER", "TYPE", "LAST_SEEN");
        for (size_t i = 0; i < n; i++) {
            char ls[32];
            fmt_time(page[i].last_seen_ms, ls, sizeof(ls));
            printf("%-32s %-10s %-18s %-7s %-24s %-12s %s\n", page[i].device_id,
                   compliance_state_name(page[i].state), page[i].reason,
                   page[i].managed ? "yes" : "no", page[i].user[0] ? page[i].user : "-",
                   page[i].device_type[0] ? page[i].device_type : "-", ls);
        }
        if (n == max)
            printf("# more: --after %s\n", page[n - 1].device_id);
    }
    free(page);
    ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

/* yes|no|unknown (absent = not reported this time) for a check-in fact. */
static int parse_tri(const char *opt, const char *v, enum compliance_tri *out)
{
    if (!v || strcmp(v, "unknown") == 0)
        *out = COMPLIANCE_UNKNOWN;
    else if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0)
        *out = COMPLIANCE_YES;
    else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0)
        *out = COMPLIANCE_NO;
    else {
        fprintf(stderr, "easgate core device checkin: %s must be yes or no, not '%s'\n", opt, v);
        return -1;
    }
    return 0;
}

static int cmd_device(const char *verb, const char *id, const struct opts *o)
{
    char canon[CORE_DEVID_MAX + 1];
    if (core_reg_devid(id, canon) < 0) {
        fprintf(stderr,
                "easgate core device: '%s' is not a DeviceId (1 to 32 letters and digits)\n", id);
        return 2;
    }
    enum core_act act = CORE_ACT_ALLOW;
    bool show = strcmp(verb, "show") == 0, add = strcmp(verb, "add") == 0;
    bool checkin = strcmp(verb, "checkin") == 0;
    struct core_checkin ci = {.os = o->os, .os_version = o->os_version};
    if (checkin && (parse_tri("--passcode", o->passcode, &ci.passcode) < 0 ||
                    parse_tri("--encrypted", o->encrypted, &ci.encrypted) < 0 ||
                    parse_tri("--jailbroken", o->jailbroken, &ci.jailbroken) < 0))
        return 2;
    if (!show && !add && !checkin &&
        (core_action_parse(verb, &act) < 0 || act == CORE_ACT_WIPE_ACCOUNT)) {
        fprintf(stderr, "easgate core device: unknown action '%s'\n", verb);
        usage(stderr);
        return 2;
    }
    if (o->account_only && act != CORE_ACT_WIPE) {
        fprintf(stderr, "easgate core device: --account-only goes with wipe only\n");
        return 2;
    }
    if (o->account_only)
        act = CORE_ACT_WIPE_ACCOUNT;
    struct core_ctx c;
    int rc = ctx_open(&c, o, show ? CORE_REDIS_NO : CORE_REDIS_TRY);
    if (rc) {
        ctx_close(&c);
        return rc;
    }
    char actor[CORE_USER_MAX];
    const char *login = getenv("USER");
    snprintf(actor, sizeof(actor), "cli:%s", login && *login ? login : "unknown");
    if (show) {
        struct core_device d;
        rc = core_reg_device_get(c.reg, canon, &d);
        if (rc == 0) {
            print_device(&d);
            struct core_action a[20];
            size_t n = 0;
            if (core_reg_action_list(c.reg, canon, 0, a, 20, &n) == 0 && n > 0) {
                printf("history:\n");
                for (size_t i = 0; i < n; i++) {
                    char at[32];
                    fmt_time(a[i].at_ms, at, sizeof(at));
                    printf("  %s %-10s by %s%s%s\n", at, a[i].action, a[i].actor,
                           a[i].note[0] ? ": " : "", a[i].note);
                }
            }
        }
    } else if (checkin) {
        rc = core_eng_checkin(&c.eng, canon, &ci, now_ms());
        struct core_device d;
        if (rc == 0 && core_reg_device_get(c.reg, canon, &d) == 0)
            printf("%s: %s (%s), version %lld\n", canon, compliance_state_name(d.state), d.reason,
                   (long long)d.version);
    } else if (add) {
        struct core_devinfo in = {.user = o->user, .device_type = o->type};
        bool created = false;
        int64_t now = now_ms();
        rc = core_eng_seen(&c.eng, canon, &in, now, &created);
        if (rc == 0)
            rc = core_reg_audit_add(c.reg, actor, "", "device.add", canon, o->note, now);
        if (rc == 0)
            printf("%s %s\n", canon, created ? "added" : "already registered (updated)");
    } else {
        rc = core_eng_action(&c.eng, canon, act, o->user, actor, "", o->note, now_ms());
        if (rc == 0) {
            struct core_device d;
            if (act == CORE_ACT_DELETE)
                printf("%s deleted\n", canon);
            else if (core_reg_device_get(c.reg, canon, &d) == 0)
                printf("%s: %s (%s), version %lld\n", canon, compliance_state_name(d.state),
                       d.reason, (long long)d.version);
        }
    }
    struct core_device pd = {0};
    if (rc == CORE_REG_EPROTO && core_reg_device_get(c.reg, canon, &pd) < 0)
        pd.eas_version[0] = '\0';
    const char *d_eas_version = pd.eas_version;
    if (rc == CORE_REG_ENOTFOUND)
        fprintf(stderr, "easgate core device: %s is not registered\n", canon);
    else if (rc == CORE_REG_EPROTO)
        fprintf(stderr,
                "easgate core device: %s: account-only wipe refused: the device last spoke "
                "ActiveSync %s, and AccountOnlyRemoteWipe needs 16.1 or later (an older phone "
                "only knows the full wipe); nothing changed. Order a full wipe with "
                "'easgate core device wipe %s' if that is what you want\n",
                canon, d_eas_version[0] ? d_eas_version : "(never seen)", canon);
    else if (rc < 0)
        fprintf(stderr, "easgate core device: registry error %d\n", rc);
    if (rc == 0 && c.eng.dirty && !show)
        fprintf(stderr,
                "easgate core device: warning: Redis was not updated%s%s; run easgate "
                "core resync when it is back\n",
                c.push ? ": " : "", c.push ? rstore_push_error(c.push) : "");
    ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

static int cmd_audit(const struct opts *o)
{
    struct core_ctx c;
    int rc = ctx_open(&c, o, CORE_REDIS_NO);
    if (rc) {
        ctx_close(&c);
        return rc;
    }
    size_t max = o->limit > 0 && o->limit <= LIST_MAX ? (size_t)o->limit : 50;
    struct core_audit *a = calloc(max, sizeof(*a));
    size_t n = 0;
    rc = a ? core_reg_audit_list(c.reg, 0, a, max, &n) : CORE_REG_ENOMEM;
    if (rc < 0)
        fprintf(stderr, "easgate core audit: registry error %d\n", rc);
    for (size_t i = 0; i < n; i++) {
        char at[32];
        fmt_time(a[i].at_ms, at, sizeof(at));
        printf("%s %-16s %-20s %-32s %s%s\n", at, a[i].actor, a[i].action, a[i].target,
               a[i].address[0] ? "from " : "", a[i].address);
        if (a[i].detail[0])
            printf("    %s\n", a[i].detail);
    }
    free(a);
    ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

int cli_core(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"user", required_argument, NULL, 'u'},
        {"note", required_argument, NULL, 'n'},
        {"type", required_argument, NULL, 't'},
        {"state", required_argument, NULL, 's'},
        {"managed", required_argument, NULL, 'm'},
        {"after", required_argument, NULL, 'a'},
        {"limit", required_argument, NULL, 'l'},
        {"os", required_argument, NULL, 'O'},
        {"os-version", required_argument, NULL, 'V'},
        {"passcode", required_argument, NULL, 'P'},
        {"encrypted", required_argument, NULL, 'E'},
        {"jailbroken", required_argument, NULL, 'J'},
        {"account-only", no_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Accounts and API tokens (cli_admin.c) parse their own options. */
    if (argc > 1 && (strcmp(argv[1], "init-admin") == 0 || strcmp(argv[1], "token") == 0))
        return cli_core_auth(argc - 1, argv + 1);
    /* The enrollment role's commands parse their own options. */
    if (argc > 1 && (strcmp(argv[1], "init-ca") == 0 || strcmp(argv[1], "enroll") == 0))
        return enr_cli(argc - 1, argv + 1);
    struct opts o = {0};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:u:n:t:s:m:a:l:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o.config = optarg;
            break;
        case 'u':
            o.user = optarg;
            break;
        case 'n':
            o.note = optarg;
            break;
        case 't':
            o.type = optarg;
            break;
        case 's':
            o.state = optarg;
            break;
        case 'm':
            o.managed = optarg;
            break;
        case 'a':
            o.after = optarg;
            break;
        case 'O':
            o.os = optarg;
            break;
        case 'V':
            o.os_version = optarg;
            break;
        case 'P':
            o.passcode = optarg;
            break;
        case 'E':
            o.encrypted = optarg;
            break;
        case 'J':
            o.jailbroken = optarg;
            break;
        case 'W':
            o.account_only = true;
            break;
        case 'l': {
            char *end;
            errno = 0;
            o.limit = strtol(optarg, &end, 10);
            if (errno || *end || o.limit <= 0 || o.limit > LIST_MAX) {
                fprintf(stderr, "easgate core: --limit must be 1 to %d\n", LIST_MAX);
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    if (nargs == 0)
        return cmd_run(&o);
    if (strcmp(args[0], "resync") == 0 && nargs == 1)
        return cmd_resync(&o);
    if (strcmp(args[0], "evaluate") == 0 && nargs == 1)
        return cmd_evaluate(&o);
    if (strcmp(args[0], "devices") == 0 && nargs == 1)
        return cmd_devices(&o);
    if (strcmp(args[0], "audit") == 0 && nargs == 1)
        return cmd_audit(&o);
    if (strcmp(args[0], "device") == 0 && nargs == 3)
        return cmd_device(args[1], args[2], &o);
    if (strcmp(args[0], "init-admin") == 0) {
        fprintf(stderr, "easgate core %s: not built yet (comes with the admin API / enrollment)\n",
                args[0]);
        return 2;
    }
    usage(stderr);
    return 2;
}
