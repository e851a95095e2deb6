/*
 * cli_check: `easgate check -c FILE` validates easgate.yaml, the policy it
 * names and the files they point at, then prints every effective setting
 * (defaults included) so an admin sees what the proxy will really do.
 * Exit 0 when all is well (warnings printed), 2 with "FILE:LINE:COL:
 * message" otherwise; it runs the very loaders the roles run, and looks at
 * what they would refuse on this host (cli_check_env.c: names that do not
 * resolve, ports that cannot be bound, ...), so a file that passes here
 * starts.
 */
#include "cli/cli.h"
#include "cli/cli_check.h"
#include "proxy/proxy.h"

#include "common/conf.h"
#include "core/cfg.h"
#include "enroll/cfg.h"
#include "policy/pol.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define CHECK_ERR_MAX 1024

/* The referenced certificate, key and CA files must be readable now rather
 * than at the first TLS handshake. */
static int check_file(const struct conf *c, const char *key, size_t idx, const char *path)
{
    if (!path || access(path, R_OK) == 0)
        return 0;
    fprintf(stderr, "%s: proxy.instances[%zu].%s: cannot read '%s': %s\n", c->path, idx, key, path,
            strerror(errno));
    return -1;
}

static int check_files(const struct conf *c)
{
    int bad = 0;
    for (size_t i = 0; i < c->proxy.n_instances; i++) {
        const struct conf_instance *in = &c->proxy.instances[i];
        bad |= check_file(c, "tls.cert", i, in->tls.cert);
        bad |= check_file(c, "tls.key", i, in->tls.key);
        bad |= check_file(c, "client_auth.ca", i, in->client_auth.ca);
        bad |= check_file(c, "client_auth.crl", i, in->client_auth.crl);
        bad |= check_file(c, "upstream.ca", i, in->upstream.ca);
    }
    return bad ? -1 : 0;
}

/* The mail templates, read as the core reads them when it starts: a
 * misspelt variable is an error here, with its file and line. */
static int check_notify(const struct conf *c)
{
    const struct core_cfg *cc = core_cfg_get(c);
    if (!cc || !cc->notify.enabled || !cc->notify.smtp.url)
        return 0;
    char err[CHECK_ERR_MAX];
    struct core_tpls *t = NULL;
    if (core_tpls_load(cc->notify.templates, &t, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: core.notify.templates: %s\n", c->path, err);
        return -1;
    }
    core_tpls_free(t);
    return 0;
}

static void warnings(const struct conf *c, struct check_env *e)
{
    for (size_t i = 0; i < c->proxy.n_instances; i++) {
        const struct conf_instance *in = &c->proxy.instances[i];
        if (!in->upstream.verify)
            fprintf(stderr,
                    "%s: warning: instance '%s': upstream.verify is false: any certificate "
                    "is accepted from the mail server, so anyone in the path can read mail\n",
                    c->path, in->name);
        e->warnings += !in->upstream.verify;
        for (size_t u = 0; u < in->upstream.n_urls; u++) {
            if (in->upstream.urls[u].tls)
                continue;
            fprintf(stderr,
                    "%s: warning: instance '%s': upstream %s is plain HTTP: passwords "
                    "cross the network in clear\n",
                    c->path, in->name, in->upstream.urls[u].url);
            e->warnings++;
        }
    }
}

/* A configuration that names no policy file leaves the roles deciding on
 * their own: say what each will do and how to make them one decision. */
static void no_policy_warnings(const struct conf *c, struct check_env *e)
{
    if (c->policy_path)
        return;
    const struct yt_node *n = conf_section_node(c, "core");
    if (n) {
        fprintf(stderr,
                "%s:%d:%d: warning: core: no policy file: unmanaged devices get the defaults of "
                "an empty policy (unknown_devices: allow, so unmanaged_devices: allow) and no "
                "device_rules apply; add `policy: policy.yaml` at the top, naming the file the "
                "proxies use, so the core and the proxies decide alike (docs/access-model.md)\n",
                c->path, n->line, n->col);
        e->warnings++;
    }
    if (c->has_proxy && c->redis.enabled) {
        fprintf(stderr,
                "%s: warning: proxy: no policy file: the defaults of an empty policy apply "
                "(unknown_devices: allow, no user_agents, devices or device_rules) and the "
                "device states the core writes to Redis apply; add `policy: policy.yaml` at the "
                "top, naming the file the core uses, to decide more than that\n",
                c->path);
        e->warnings++;
    }
}

static int check_policy(const char *path, bool quiet)
{
    char err[CHECK_ERR_MAX];
    struct pol_policy *p;
    int rc = path ? pol_load(path, &p, err, sizeof(err))
                  : pol_load_buf(CORE_CFG_NO_POLICY, "", 0, &p, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (!quiet)
        pol_print(stdout, p);
    pol_unref(p);
    return 0;
}

static int run_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"policy", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"offline", no_argument, NULL, 'O'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = NULL, *pol_path = NULL;
    bool quiet = false, offline = false;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:p:q", longopts, NULL)) != -1) {
        switch (opt) {
        case 'O':
            offline = true;
            break;
        case 'c':
            conf_path = optarg;
            break;
        case 'p':
            pol_path = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        default:
            return CLI_USAGE;
        }
    }
    if (optind != argc || (!conf_path && !pol_path) || (conf_path && pol_path)) {
        fprintf(stderr, "easgate check: give -c FILE or -p POLICY\n");
        return CLI_USAGE;
    }
    if (pol_path)
        return check_policy(pol_path, quiet);

    /* Every role's section is checked here, whichever roles the host runs. */
    if (core_cfg_register() < 0 || enr_cfg_register() < 0) {
        fprintf(stderr, "easgate check: cannot register the core section\n");
        return 1;
    }
    char err[CHECK_ERR_MAX];
    struct conf *c;
    if (conf_load(conf_path, &c, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    int rc = check_files(c) | check_notify(c) ? 2 : 0;
    if (rc == 0 && c->has_proxy && proxy_check_tls(c, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", c->path, err);
        rc = 2;
    }
    struct check_env env = {.path = c->path, .offline = offline};
    if (rc == 0) {
        check_env(&env, c);
        if (env.errors)
            rc = 2;
    }
    if (rc == 0) {
        warnings(c, &env);
        no_policy_warnings(c, &env);
        if (!quiet)
            conf_print(stdout, c);
        if (c->policy_path) {
            if (!quiet)
                fputs("---\n", stdout);
            rc = check_policy(c->policy_path, quiet);
        } else if ((core_cfg_get(c) || c->has_proxy) && !quiet) {
            /* What the core and the proxies decide without a file, printed
             * as any policy is. */
            fputs("---\n", stdout);
            rc = check_policy(NULL, quiet);
        }
    }
    if (rc == 0 && c->policy_path && core_cfg_get(c)) {
        /* What the core would refuse at start: group rules need a directory. */
        struct compliance_rules r;
        if (core_cfg_rules(c->policy_path, &r, err, sizeof(err)) == 0) {
            if (core_cfg_groups_check(core_cfg_get(c), &r, err, sizeof(err)) < 0) {
                fprintf(stderr, "%s\n", err);
                rc = 2;
            }
            core_cfg_rules_free(&r);
        }
    }
    if (rc == 0 && !quiet)
        fprintf(stderr, "%s: configuration OK%s\n", conf_path,
                env.warnings ? " (with the warnings above)" : "");
    else if (rc == 2 && env.errors)
        fprintf(stderr, "%s: %d error%s: the roles would not start\n", conf_path, env.errors,
                env.errors == 1 ? "" : "s");
    conf_free(c);
    return rc;
}

const struct cli_cmd cli_check_cmd = {"check", "validate the configuration and policy (-c FILE)",
                                      "usage: easgate check -c FILE [-q] [--offline]\n"
                                      "       easgate check -p POLICY [-q]\n"
                                      "  -c FILE    easgate.yaml (and the policy file it names)\n"
                                      "  -p POLICY  a policy file on its own\n"
                                      "  -q         print nothing when all is well\n"
                                      "  --offline  do not resolve the upstream host names\n"
                                      "exit 0: the roles will start (warnings are printed); "
                                      "2: they would not\n",
                                      run_check, NULL};
