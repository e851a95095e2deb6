/*
 * easgate core directory lookup NAME | sync -c FILE: the directory
 * (core.directory, docs/directory.md) from the command line: what it says
 * about one user (as JSON, for scripts and for checking the attribute
 * settings), and one sync pass now (the running core syncs every
 * core.directory.sync by itself).
 */
#include "cli/cli.h"

#include "core/ctx.h"
#include "core/dir.h"

#include <jansson.h>

#include <stdio.h>
#include <string.h>

static int dir_open(const struct cli_core_opts *o, struct core_ctx *c, struct core_dir **d,
                    const char *what)
{
    int rc = cli_core_open(c, o->config, CORE_REDIS_TRY, what);
    if (rc)
        return rc;
    if (!c->cfg->directory.enabled) {
        fprintf(stderr, "%s: %s has no core.directory section\n", what, o->config);
        core_ctx_close(c);
        return 2;
    }
    char err[512];
    if (core_dir_open(&c->cfg->directory, d, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", what, err);
        core_ctx_close(c);
        return 2;
    }
    return 0;
}

static int cmd_lookup(const struct cli_core_opts *o, const char *who)
{
    struct core_ctx c;
    struct core_dir *d;
    int rc = dir_open(o, &c, &d, "easgate core directory lookup");
    if (rc)
        return rc;
    struct core_dir_user u;
    char err[512] = "";
    rc = core_dir_lookup(d, who, core_now_ms(), &u, err, sizeof(err));
    if (rc == 0) {
        json_t *g = json_array();
        for (size_t i = 0; i < u.n_groups; i++)
            json_array_append_new(g, json_string(u.groups[i]));
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:o}", "dn", u.dn, "name", u.name,
                              "upn", u.upn, "mail", u.mail, "language", u.lang, "disabled",
                              u.disabled, "groups", g);
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        fprintf(stderr, "easgate core directory lookup: %s\n", err);
    }
    core_dir_close(d);
    core_ctx_close(&c);
    return rc == 0 ? 0 : rc == CORE_DIR_ENOTFOUND ? 3 : 1;
}

static int cmd_sync(const struct cli_core_opts *o)
{
    struct core_ctx c;
    struct core_dir *d;
    int rc = dir_open(o, &c, &d, "easgate core directory sync");
    if (rc)
        return rc;
    struct core_dir_sync_stats st;
    char err[512] = "";
    rc = core_dir_sync(d, &c.eng, core_now_ms(), &st, err, sizeof(err));
    if (rc == 0)
        printf("%zu users: %zu gone, %zu disabled, %zu not answered; %zu devices blocked, "
               "%zu wiped\n",
               st.users, st.gone, st.disabled, st.unavailable, st.blocked, st.wiped);
    else
        fprintf(stderr, "easgate core directory sync: %s\n", err);
    core_dir_close(d);
    core_ctx_close(&c);
    return rc == 0 ? (st.unavailable ? 1 : 0) : 1;
}

static int run_directory(int argc, char **argv)
{
    struct cli_core_opts o;
    int first, rc = cli_core_opts_parse(argc, argv, &o, &first);
    if (rc)
        return rc;
    int n = argc - first;
    if (n == 2 && strcmp(argv[first], "lookup") == 0)
        return cmd_lookup(&o, argv[first + 1]);
    if (n == 1 && strcmp(argv[first], "sync") == 0)
        return cmd_sync(&o);
    fprintf(stderr, "easgate core directory: say lookup NAME or sync\n");
    return CLI_USAGE;
}

const struct cli_cmd cli_directory_cmd = {
    "directory", "look a user up in LDAP/Active Directory, or sync the registry's users now",
    "usage: easgate core directory lookup NAME -c FILE\n"
    "       easgate core directory sync -c FILE\n"
    "  lookup: the user whose name, UPN or e-mail address is NAME, as JSON (dn,\n"
    "          mail, language, disabled, groups with nesting followed); exit 3\n"
    "          when the directory has no such user\n"
    "  sync:   every user with managed devices is looked up; devices of users who\n"
    "          left or were disabled get core.directory.left_action (docs/directory.md);\n"
    "          exit 1 when some users could not be looked up\n",
    run_directory, NULL};
