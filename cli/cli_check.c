/*
 * cli_check: `easgate check -c FILE` validates easgate.yaml, the policy it
 * names and the files they point at, then prints every effective setting
 * (defaults included) so an admin sees what the proxy will really do.
 * Exit 0 when all is well, 2 with "FILE:LINE:COL: message" otherwise; it
 * runs the very loaders the roles run, so a file that passes here starts.
 */
#include "cli/cli.h"
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
        bad |= check_file(c, "upstream.ca", i, in->upstream.ca);
    }
    return bad ? -1 : 0;
}

static void warnings(const struct conf *c)
{
    for (size_t i = 0; i < c->proxy.n_instances; i++) {
        const struct conf_instance *in = &c->proxy.instances[i];
        if (!in->upstream.verify)
            fprintf(stderr,
                    "%s: warning: instance '%s': upstream.verify is false: any certificate "
                    "is accepted from the mail server, so anyone in the path can read mail\n",
                    c->path, in->name);
        for (size_t u = 0; u < in->upstream.n_urls; u++)
            if (!in->upstream.urls[u].tls)
                fprintf(stderr,
                        "%s: warning: instance '%s': upstream %s is plain HTTP: passwords "
                        "cross the network in clear\n",
                        c->path, in->name, in->upstream.urls[u].url);
    }
}

static int check_policy(const char *path, bool quiet)
{
    char err[CHECK_ERR_MAX];
    struct pol_policy *p;
    if (pol_load(path, &p, err, sizeof(err)) < 0) {
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
    const char *conf_path = NULL, *pol_path = NULL;
    bool quiet = false;
    int opt;
    optind = 1;
    while ((opt = getopt(argc, argv, "c:p:q")) != -1) {
        switch (opt) {
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
    int rc = check_files(c) ? 2 : 0;
    if (rc == 0 && c->has_proxy && proxy_check_tls(c, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", c->path, err);
        rc = 2;
    }
    if (rc == 0) {
        warnings(c);
        if (!quiet)
            conf_print(stdout, c);
        if (c->policy_path) {
            if (!quiet)
                fputs("---\n", stdout);
            rc = check_policy(c->policy_path, quiet);
        }
    }
    if (rc == 0 && !quiet)
        fprintf(stderr, "%s: configuration OK\n", conf_path);
    conf_free(c);
    return rc;
}

const struct cli_cmd cli_check_cmd = {"check", "validate the configuration and policy (-c FILE)",
                                      "usage: easgate check -c FILE [-q]\n"
                                      "       easgate check -p POLICY [-q]\n"
                                      "  -c FILE    easgate.yaml (and the policy file it names)\n"
                                      "  -p POLICY  a policy file on its own\n"
                                      "  -q         print nothing when all is well\n",
                                      run_check, NULL};
