/*
 * easgate core notify -c FILE [--state queued|sent|failed] [--limit N]: the
 * notification queue (docs/notifications.md) read straight from the
 * registry, newest first: what waits, what was sent, what failed and why.
 */
#include "cli/cli.h"

#include "core/ctx.h"
#include "core/notify.h"
#include "core/reg.h"

#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void when(int64_t ms, char *out, size_t n)
{
    if (!ms) {
        snprintf(out, n, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int run_notify(int argc, char **argv)
{
    struct cli_core_opts o;
    int first, rc = cli_core_opts_parse(argc, argv, &o, &first);
    if (rc)
        return rc;
    if (first < argc) {
        fprintf(stderr, "easgate core notify: unexpected argument '%s'\n", argv[first]);
        return CLI_USAGE;
    }
    if (o.state && strcmp(o.state, "queued") != 0 && strcmp(o.state, "sent") != 0 &&
        strcmp(o.state, "failed") != 0) {
        fprintf(stderr, "easgate core notify: --state is queued, sent or failed\n");
        return 2;
    }
    struct core_ctx c;
    if ((rc = cli_core_open(&c, o.config, CORE_REDIS_NO, "easgate core notify")))
        return rc;
    size_t max = o.limit > 0 ? (size_t)o.limit : 100, n = 0;
    struct core_notify_row *rows = calloc(max, sizeof(*rows));
    if (!rows || core_notify_list(c.reg, o.state, 0, rows, max, &n) < 0) {
        fprintf(stderr, "easgate core notify: %s\n",
                rows ? sqlite3_errmsg(core_reg_sqlite(c.reg)) : "out of memory");
        free(rows);
        core_ctx_close(&c);
        return 1;
    }
    printf("%-6s %-7s %-28s %-18s %-6s %-3s %-20s %-20s %s\n", "ID", "CHANNEL", "TO", "EVENT",
           "STATE", "TRY", "QUEUED", "NEXT/DONE", "LAST ERROR");
    for (size_t i = 0; i < n; i++) {
        const struct core_notify_row *r = &rows[i];
        char q[32], d[32];
        when(r->created_ms, q, sizeof(q));
        when(strcmp(r->state, "sent") == 0 ? r->sent_ms : r->next_ms, d, sizeof(d));
        printf("%-6lld %-7s %-28s %-18s %-6s %-3d %-20s %-20s %s\n", (long long)r->id, r->channel,
               r->target, r->event, r->state, r->attempts, q, d, r->last_error);
    }
    free(rows);
    core_ctx_close(&c);
    return 0;
}

const struct cli_cmd cli_notify_cmd = {
    "notify", "the notification queue: mails and webhooks waiting, sent, failed",
    "usage: easgate core notify -c FILE [--state queued|sent|failed] [--limit N]\n"
    "  the newest rows of the notification queue (docs/notifications.md): channel,\n"
    "  recipient or webhook, event, state, attempts, when queued, the next attempt\n"
    "  (queued) or when it ended, and the last error\n",
    run_notify, NULL};
