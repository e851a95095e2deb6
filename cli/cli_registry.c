/*
 * cli_registry: the `easgate core` commands that work on the registry
 * directly, next to a running core:
 *
 *   easgate core resync | evaluate | devices | device ACTION ID | audit |
 *                pending [approve ID]
 *
 * They are the break-glass path (the admin API over HTTPS is the everyday
 * one): they write the registry under SQLite's locks and push what changed
 * to Redis themselves. `easgate core` itself (cli_core.c) takes the same
 * options, so they may come before the command word as well as after it.
 */
#include "cli/cli.h"

#include "core/ctx.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 10000 /* devices/audit rows one listing prints at most */

static const char resync_usage[] = "usage: easgate core resync -c FILE\n"
                                   "  rewrite Redis from the registry (every device, stale keys "
                                   "removed)\n";
static const char evaluate_usage[] =
    "usage: easgate core evaluate -c FILE\n"
    "  re-evaluate every device against the compliance rules now\n";
static const char devices_usage[] =
    "usage: easgate core devices -c FILE [--user U] [--state S] [--type T]\n"
    "                            [--managed yes|no] [--after ID] [--limit N]\n"
    "  list the registry's devices, 100 at a time (--limit up to 10000)\n";
static const char device_usage[] =
    "usage: easgate core device show ID -c FILE\n"
    "       easgate core device add ID -c FILE [--user U] [--type T]\n"
    "       easgate core device ACTION ID -c FILE [--user U] [--note TEXT]\n"
    "         ACTION: allow block quarantine wipe reset delete manage unmanage\n"
    "                 reprovision; wipe --account-only: AccountOnlyRemoteWipe\n"
    "                 (refused unless the device last spoke EAS 16.1 or later)\n"
    "       easgate core device checkin ID -c FILE [--os FAMILY] [--os-version V]\n"
    "                            [--passcode yes|no] [--encrypted yes|no] [--jailbroken yes|no]\n";
static const char pending_usage[] =
    "usage: easgate core pending -c FILE [--after ID] [--limit N]\n"
    "       easgate core pending approve ID -c FILE [--user U] [--allow] [--note TEXT]\n"
    "  devices seen but never accepted (the proxy answered their requests itself, so\n"
    "  nobody authenticated them): kept apart from the registry, at most\n"
    "  core.pending_max for core.pending_ttl. The user shown is the one claimed,\n"
    "  unchecked; approve registers the device (unmanaged), binding --user U if given;\n"
    "  --allow also gives it an admin allow override (unmanaged_devices may block it)\n";
static const char audit_usage[] = "usage: easgate core audit -c FILE [--limit N]\n"
                                  "  the newest lines of the audit log (50 unless --limit)\n";

int cli_core_opts_parse(int argc, char **argv, struct cli_core_opts *o, int *first)
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
        {"allow", no_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:u:n:t:s:m:a:l:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config = optarg;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'n':
            o->note = optarg;
            break;
        case 't':
            o->type = optarg;
            break;
        case 's':
            o->state = optarg;
            break;
        case 'm':
            o->managed = optarg;
            break;
        case 'a':
            o->after = optarg;
            break;
        case 'O':
            o->os = optarg;
            break;
        case 'V':
            o->os_version = optarg;
            break;
        case 'P':
            o->passcode = optarg;
            break;
        case 'E':
            o->encrypted = optarg;
            break;
        case 'J':
            o->jailbroken = optarg;
            break;
        case 'W':
            o->account_only = true;
            break;
        case 'A':
            o->allow = true;
            break;
        case 'l': {
            char *end;
            errno = 0;
            o->limit = strtol(optarg, &end, 10);
            if (errno || *end || o->limit <= 0 || o->limit > LIST_MAX) {
                fprintf(stderr, "easgate core: --limit must be 1 to %d\n", LIST_MAX);
                return 2;
            }
            break;
        }
        default:
            return CLI_USAGE; /* getopt said which option */
        }
    }
    *first = optind;
    return 0;
}

/* The options, then exactly n words (after the command's own name). */
static int parse_words(int argc, char **argv, struct cli_core_opts *o, int n, char ***words)
{
    int first, rc = cli_core_opts_parse(argc, argv, o, &first);
    if (rc)
        return rc;
    if (argc - first > n) {
        fprintf(stderr, "easgate core %s: unexpected argument '%s'\n", argv[0], argv[first + n]);
        return CLI_USAGE;
    }
    if (argc - first < n) {
        fprintf(stderr, "easgate core %s: missing arguments\n", argv[0]);
        return CLI_USAGE;
    }
    *words = argv + first;
    return 0;
}

static int cmd_resync(const struct cli_core_opts *o)
{
    struct core_ctx c;
    int rc = cli_core_open(&c, o->config, CORE_REDIS_REQUIRED, "easgate core resync");
    if (rc)
        return rc;
    struct rstore_resync_stats st;
    rc = core_eng_resync(&c.eng, &st);
    if (rc < 0)
        fprintf(stderr, "easgate core resync: %s\n", rstore_push_error(c.push));
    else
        printf("resync: %zu devices written, %zu stale keys removed, %zu keys scanned, %lld ms "
               "(%zu already current; sweep %lld ms), %zu certificate bindings\n",
               st.written, st.removed, st.scanned, (long long)st.elapsed_ms, st.unchanged,
               (long long)(st.elapsed_ms - st.write_ms), st.bindings);
    core_ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

static int cmd_evaluate(const struct cli_core_opts *o)
{
    struct core_ctx c;
    int rc = cli_core_open(&c, o->config, CORE_REDIS_TRY, "easgate core evaluate");
    if (rc)
        return rc;
    size_t n = 0;
    uint64_t before = c.eng.changes;
    rc = core_eng_evaluate_all(&c.eng, core_now_ms(), &n);
    if (rc < 0)
        fprintf(stderr, "easgate core evaluate: registry error %d\n", rc);
    else
        printf("evaluated %zu devices, %llu changed%s\n", n,
               (unsigned long long)(c.eng.changes - before),
               c.eng.dirty ? " (Redis not updated: run easgate core resync)" : "");
    core_ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

static const char *tri_name(enum compliance_tri t)
{
    return t == COMPLIANCE_YES ? "yes" : t == COMPLIANCE_NO ? "no" : "unknown";
}

static void print_device(const struct core_device *d)
{
    char fs[32], ls[32], lc[32], up[32], nc[32], ne[32], wa[32];
    cli_fmt_time(d->first_seen_ms, fs, sizeof(fs));
    cli_fmt_time(d->last_seen_ms, ls, sizeof(ls));
    cli_fmt_time(d->last_checkin_ms, lc, sizeof(lc));
    cli_fmt_time(d->updated_ms, up, sizeof(up));
    cli_fmt_time(d->non_compliant_since_ms, nc, sizeof(nc));
    cli_fmt_time(d->next_eval_ms, ne, sizeof(ne));
    cli_fmt_time(d->wipe_acked_ms, wa, sizeof(wa));
    char pk[16], pv[32];
    snprintf(pk, sizeof(pk), "%lu", (unsigned long)d->policy_key);
    if (!d->policy_key)
        snprintf(pk, sizeof(pk), "-");
    cli_fmt_time(d->provisioned_ms, pv, sizeof(pv));
    printf("device_id:       %s\n"
           "user:            %s\n"
           "state:           %s (%s), version %lld, since %s\n"
           "override:        %s\n"
           "managed:         %s\n"
           "device_type:     %s\n"
           "model:           %s\n"
           "os:              %s %s\n"
           "eas_os:          %s %s (reported over ActiveSync)\n"
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
           "last_client:     %s\n"
           "cert_enrollment: %s\n"
           "pk_epoch:        %lld\n"
           "policy_key:      %s (provisioned %s)\n",
           d->device_id, d->user, compliance_state_name(d->state), d->reason, (long long)d->version,
           up, compliance_override_name(d->override), d->managed ? "yes" : "no", d->device_type,
           d->model, d->os, d->os_version, d->eas_os, d->eas_os_version, d->imei, d->friendly_name,
           d->phone_number, d->user_agent, tri_name(d->passcode), tri_name(d->encrypted),
           tri_name(d->jailbroken), d->agent_version, fs, ls, lc, nc, ne, wa,
           d->wipe_account ? "account" : "full", d->eas_version[0] ? d->eas_version : "-",
           d->last_client[0] ? d->last_client : "-",
           d->cert_enrollment[0] ? d->cert_enrollment : "-", (long long)d->pk_epoch, pk, pv);
}

static int cmd_devices(const struct cli_core_opts *o)
{
    struct core_ctx c;
    int rc = cli_core_open(&c, o->config, CORE_REDIS_NO, "easgate core devices");
    if (rc)
        return rc;
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
            core_ctx_close(&c);
            return 2;
        }
        f.state = (int)st;
    }
    if (o->managed) {
        if (strcmp(o->managed, "yes") != 0 && strcmp(o->managed, "no") != 0) {
            fprintf(stderr, "easgate core devices: --managed must be yes or no\n");
            core_ctx_close(&c);
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
            cli_fmt_time(page[i].last_seen_ms, ls, sizeof(ls));
            printf("%-32s %-10s %-18s %-7s %-24s %-12s %s\n", page[i].device_id,
                   compliance_state_name(page[i].state), page[i].reason,
                   page[i].managed ? "yes" : "no", page[i].user[0] ? page[i].user : "-",
                   page[i].device_type[0] ? page[i].device_type : "-", ls);
        }
        if (n == max)
            printf("# more: --after %s\n", page[n - 1].device_id);
    }
    free(page);
    core_ctx_close(&c);
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

static int cmd_device(const char *verb, const char *id, const struct cli_core_opts *o)
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
        return CLI_USAGE;
    }
    if (o->account_only && act != CORE_ACT_WIPE) {
        fprintf(stderr, "easgate core device: --account-only goes with wipe only\n");
        return 2;
    }
    if (o->account_only)
        act = CORE_ACT_WIPE_ACCOUNT;
    struct core_ctx c;
    int rc =
        cli_core_open(&c, o->config, show ? CORE_REDIS_NO : CORE_REDIS_TRY, "easgate core device");
    if (rc)
        return rc;
    char actor[CORE_USER_MAX];
    cli_actor(actor, sizeof(actor));
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
                    cli_fmt_time(a[i].at_ms, at, sizeof(at));
                    printf("  %s %-10s by %s%s%s\n", at, a[i].action, a[i].actor,
                           a[i].note[0] ? ": " : "", a[i].note);
                }
            }
        }
    } else if (checkin) {
        rc = core_eng_checkin(&c.eng, canon, &ci, core_now_ms());
        struct core_device d;
        if (rc == 0 && core_reg_device_get(c.reg, canon, &d) == 0)
            printf("%s: %s (%s), version %lld\n", canon, compliance_state_name(d.state), d.reason,
                   (long long)d.version);
    } else if (add) {
        struct core_devinfo in = {.user = o->user, .device_type = o->type};
        bool created = false;
        int64_t now = core_now_ms();
        rc = core_eng_seen(&c.eng, canon, &in, now, &created);
        if (rc == 0)
            rc = core_reg_audit_add(c.reg, actor, "", "device.add", canon, o->note, now);
        if (rc == 0)
            printf("%s %s\n", canon, created ? "added" : "already registered (updated)");
    } else {
        rc = core_eng_action(&c.eng, canon, act, o->user, actor, "", o->note, core_now_ms());
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
    core_ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

static int cmd_audit(const struct cli_core_opts *o)
{
    struct core_ctx c;
    int rc = cli_core_open(&c, o->config, CORE_REDIS_NO, "easgate core audit");
    if (rc)
        return rc;
    size_t max = o->limit > 0 && o->limit <= LIST_MAX ? (size_t)o->limit : 50;
    struct core_audit *a = calloc(max, sizeof(*a));
    size_t n = 0;
    rc = a ? core_reg_audit_list(c.reg, 0, a, max, &n) : CORE_REG_ENOMEM;
    if (rc < 0)
        fprintf(stderr, "easgate core audit: registry error %d\n", rc);
    for (size_t i = 0; i < n; i++) {
        char at[32];
        cli_fmt_time(a[i].at_ms, at, sizeof(at));
        printf("%s %-16s %-20s %-32s %s%s\n", at, a[i].actor, a[i].action, a[i].target,
               a[i].address[0] ? "from " : "", a[i].address);
        if (a[i].detail[0])
            printf("    %s\n", a[i].detail);
    }
    free(a);
    core_ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

static int cmd_pending_list(const struct cli_core_opts *o)
{
    struct core_ctx c;
    int rc = cli_core_open(&c, o->config, CORE_REDIS_NO, "easgate core pending");
    if (rc)
        return rc;
    size_t max = o->limit > 0 && o->limit <= LIST_MAX ? (size_t)o->limit : 100;
    struct core_pending_row *page = calloc(max, sizeof(*page));
    size_t n = 0;
    rc = page ? core_reg_pending_list(c.reg, o->after, page, max, &n) : CORE_REG_ENOMEM;
    if (rc < 0) {
        fprintf(stderr, "easgate core pending: registry error %d\n", rc);
    } else {
        printf("%-32s %-24s %-12s %-16s %-20s %s\n", "DEVICE_ID", "CLAIMED_USER", "TYPE", "FROM",
               "LAST_SEEN", "SEEN");
        for (size_t i = 0; i < n; i++) {
            char ls[32];
            cli_fmt_time(page[i].last_ms, ls, sizeof(ls));
            printf("%-32s %-24s %-12s %-16s %-20s %lld\n", page[i].device_id,
                   page[i].user[0] ? page[i].user : "-",
                   page[i].device_type[0] ? page[i].device_type : "-",
                   page[i].client_addr[0] ? page[i].client_addr : "-", ls,
                   (long long)page[i].count);
        }
        if (n == max)
            printf("# more: --after %s\n", page[n - 1].device_id);
    }
    free(page);
    core_ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

/* As POST /api/v1/pending/ID/approve: registered with the type and user
 * agent seen, bound to --user only (the claimed user was never checked). */
static int cmd_pending_approve(const char *id, const struct cli_core_opts *o)
{
    char canon[CORE_DEVID_MAX + 1];
    if (core_reg_devid(id, canon) < 0) {
        fprintf(stderr,
                "easgate core pending: '%s' is not a DeviceId (1 to 32 letters and digits)\n", id);
        return 2;
    }
    struct core_ctx c;
    int rc = cli_core_open(&c, o->config, CORE_REDIS_TRY, "easgate core pending");
    if (rc)
        return rc;
    struct core_pending_row p;
    rc = core_reg_pending_get(c.reg, canon, &p);
    if (rc == CORE_REG_ENOTFOUND) {
        fprintf(stderr,
                "easgate core pending: no pending device %s (expired, approved, or never "
                "seen)\n",
                canon);
        core_ctx_close(&c);
        return 1;
    }
    char actor[CORE_USER_MAX];
    cli_actor(actor, sizeof(actor));
    struct core_devinfo in = {.device_type = p.device_type[0] ? p.device_type : NULL,
                              .user_agent = p.user_agent[0] ? p.user_agent : NULL,
                              .client_addr = p.client_addr[0] ? p.client_addr : NULL,
                              .user = o->user && o->user[0] ? o->user : NULL};
    int64_t now = core_now_ms();
    /* Registered and allowed in one transaction, or neither. */
    if (rc == 0)
        rc = core_eng_begin(&c.eng);
    if (rc == 0) {
        rc = core_eng_seen(&c.eng, canon, &in, now, NULL);
        if (rc == 0)
            rc = core_reg_audit_add(c.reg, actor, "", "device.approve", canon,
                                    in.user ? in.user : "", now);
        if (rc == 0 && o->allow)
            rc = core_eng_action(&c.eng, canon, CORE_ACT_ALLOW, NULL, actor, "",
                                 o->note ? o->note : "approved", now);
        if (rc < 0)
            core_eng_rollback(&c.eng);
        else
            rc = core_eng_commit(&c.eng);
    }
    struct core_device d;
    if (rc == 0 && core_reg_device_get(c.reg, canon, &d) == 0)
        printf("%s: approved, registered: %s (%s), user %s\n", canon,
               compliance_state_name(d.state), d.reason, d.user[0] ? d.user : "(none)");
    if (rc < 0)
        fprintf(stderr, "easgate core pending: registry error %d\n", rc);
    if (rc == 0 && c.eng.dirty)
        fprintf(stderr,
                "easgate core pending: warning: Redis was not updated%s%s; run easgate core "
                "resync when it is back\n",
                c.push ? ": " : "", c.push ? rstore_push_error(c.push) : "");
    core_ctx_close(&c);
    return rc < 0 ? 1 : 0;
}

static int run_pending(int argc, char **argv)
{
    struct cli_core_opts o;
    int first, rc = cli_core_opts_parse(argc, argv, &o, &first);
    if (rc)
        return rc;
    int n = argc - first;
    if (n == 0 || (n == 1 && strcmp(argv[first], "list") == 0))
        return cmd_pending_list(&o);
    if (n == 2 && strcmp(argv[first], "approve") == 0)
        return cmd_pending_approve(argv[first + 1], &o);
    fprintf(stderr, "easgate core pending: [list] | approve ID\n");
    return CLI_USAGE;
}

static int run_resync(int argc, char **argv)
{
    struct cli_core_opts o;
    char **w;
    int rc = parse_words(argc, argv, &o, 0, &w);
    return rc ? rc : cmd_resync(&o);
}

static int run_evaluate(int argc, char **argv)
{
    struct cli_core_opts o;
    char **w;
    int rc = parse_words(argc, argv, &o, 0, &w);
    return rc ? rc : cmd_evaluate(&o);
}

static int run_devices(int argc, char **argv)
{
    struct cli_core_opts o;
    char **w;
    int rc = parse_words(argc, argv, &o, 0, &w);
    return rc ? rc : cmd_devices(&o);
}

static int run_device(int argc, char **argv)
{
    struct cli_core_opts o;
    char **w;
    int rc = parse_words(argc, argv, &o, 2, &w);
    return rc ? rc : cmd_device(w[0], w[1], &o);
}

static int run_audit(int argc, char **argv)
{
    struct cli_core_opts o;
    char **w;
    int rc = parse_words(argc, argv, &o, 0, &w);
    return rc ? rc : cmd_audit(&o);
}

const struct cli_cmd cli_resync_cmd = {"resync", "rewrite Redis from the registry", resync_usage,
                                       run_resync, NULL};
const struct cli_cmd cli_evaluate_cmd = {"evaluate", "re-evaluate every device now", evaluate_usage,
                                         run_evaluate, NULL};
const struct cli_cmd cli_devices_cmd = {"devices", "list the registry's devices", devices_usage,
                                        run_devices, NULL};
const struct cli_cmd cli_device_cmd = {"device", "show, add, check in or act on one device",
                                       device_usage, run_device, NULL};
const struct cli_cmd cli_pending_cmd = {"pending",
                                        "devices the proxy turned away: list them, or approve one",
                                        pending_usage, run_pending, NULL};
const struct cli_cmd cli_audit_cmd = {"audit", "the newest lines of the audit log", audit_usage,
                                      run_audit, NULL};
