/*
 * easgate core notify -c FILE [--state queued|sent|failed] [--limit N]: the
 * notification queue (docs/notifications.md) read straight from the
 * registry, newest first: what waits, what was sent, what failed and why.
 */
#include "cli/cli.h"

#include "core/ctx.h"
#include "core/reg.h"

#include <sqlite3.h>

#include <stdio.h>
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
    sqlite3 *db = core_reg_sqlite(c.reg);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, channel, target, event, state, attempts, created_ms, "
                           "CASE WHEN state = 'sent' THEN sent_ms ELSE next_ms END, last_error "
                           "FROM notify_queue WHERE ?1 IS NULL OR state = ?1 ORDER BY id DESC "
                           "LIMIT ?2",
                           -1, &s, NULL) != SQLITE_OK) {
        fprintf(stderr, "easgate core notify: %s\n", sqlite3_errmsg(db));
        core_ctx_close(&c);
        return 1;
    }
    if (o.state)
        sqlite3_bind_text(s, 1, o.state, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, o.limit > 0 ? o.limit : 100);
    printf("%-6s %-7s %-28s %-18s %-6s %-3s %-20s %-20s %s\n", "ID", "CHANNEL", "TO", "EVENT",
           "STATE", "TRY", "QUEUED", "NEXT/DONE", "LAST ERROR");
    while (sqlite3_step(s) == SQLITE_ROW) {
        char q[32], d[32];
        when(sqlite3_column_int64(s, 6), q, sizeof(q));
        when(sqlite3_column_int64(s, 7), d, sizeof(d));
        printf("%-6lld %-7s %-28s %-18s %-6s %-3d %-20s %-20s %s\n",
               (long long)sqlite3_column_int64(s, 0), sqlite3_column_text(s, 1),
               sqlite3_column_text(s, 2), sqlite3_column_text(s, 3), sqlite3_column_text(s, 4),
               sqlite3_column_int(s, 5), q, d, sqlite3_column_text(s, 8));
    }
    sqlite3_finalize(s);
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
