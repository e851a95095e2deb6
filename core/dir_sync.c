/*
 * core_dir: the sync of registry users against the directory. See dir.h.
 *
 * Users who left (the directory has no such user) or were disabled lose
 * their devices' access: blocked at once, and with left_action: wipe also
 * wiped once the directory's block is wipe_grace old (the admin_actions
 * row of that block, actor "directory", is the clock; nothing new is
 * stored). A user the directory could not be asked about is skipped and
 * counted: an outage neither blocks everyone nor lets anyone back in, and
 * the devices keep the state they had.
 *
 * Reads use the caller's registry connection; the changes go through the
 * core's writer (core_wr_call, one call per device) so they are pushed to
 * Redis like any admin action, or, from the CLI, through its own engine.
 */
#include "core/dir.h"

#include "common/log.h"
#include "core/ctx.h"
#include "core/eng.h"
#include "core/reg.h"
#include "core/wr.h"

#include <sqlite3.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SYNC_USERS_MAX 100000 /* users read per pass */

struct act_arg {
    const char *device_id, *note;
    enum core_act act;
    int64_t now_ms;
};

static int act_fn(struct core_wr_env *env, void *arg)
{
    struct act_arg *a = arg;
    return core_eng_action(env->eng, a->device_id, a->act, NULL, "directory", "", a->note,
                           a->now_ms);
}

/* When the directory last blocked the device (0 = never). */
static int64_t blocked_at(sqlite3 *db, const char *device_id)
{
    sqlite3_stmt *s;
    int64_t at = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT at_ms FROM admin_actions WHERE device_id = ?1 AND actor = "
                           "'directory' AND action = 'block' ORDER BY id DESC LIMIT 1",
                           -1, &s, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(s, 1, device_id, -1, SQLITE_STATIC);
    if (sqlite3_step(s) == SQLITE_ROW)
        at = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return at;
}

static int act_on(struct core_reg *reg, struct core_eng *eng, struct core_wr *wr, struct act_arg *a)
{
    if (wr)
        return core_wr_call(wr, act_fn, a);
    return core_eng_action(eng, a->device_id, a->act, NULL, "directory", "", a->note, a->now_ms);
}

static int user_devices(const struct core_dir_cfg *cfg, struct core_reg *reg, struct core_eng *eng,
                        struct core_wr *wr, const char *user, const char *why, int64_t now_ms,
                        struct core_dir_sync_stats *st)
{
    sqlite3 *db = core_reg_sqlite(reg);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "SELECT device_id, override FROM devices WHERE user = ?1 AND "
                           "managed = 1",
                           -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(s, 1, user, -1, SQLITE_TRANSIENT);
    char ids[64][CORE_DEVID_MAX + 1], ovr[64][16];
    size_t n = 0;
    while (n < 64 && sqlite3_step(s) == SQLITE_ROW) {
        snprintf(ids[n], sizeof(ids[n]), "%s", (const char *)sqlite3_column_text(s, 0));
        snprintf(ovr[n], sizeof(ovr[n]), "%s", (const char *)sqlite3_column_text(s, 1));
        n++;
    }
    sqlite3_finalize(s);
    char note[400];
    snprintf(note, sizeof(note), "directory: user %s %s", user, why);
    for (size_t i = 0; i < n; i++) {
        struct act_arg a = {.device_id = ids[i], .note = note, .now_ms = now_ms};
        if (strcmp(ovr[i], "wipe") == 0)
            continue;
        if (strcmp(ovr[i], "block") != 0) {
            a.act = CORE_ACT_BLOCK;
            if (act_on(reg, eng, wr, &a) == 0) {
                st->blocked++;
                eg_info("directory: device %s blocked: %s", ids[i], note);
            }
        } else if (cfg->left_action == CORE_DIR_LEFT_WIPE) {
            int64_t at = blocked_at(db, ids[i]);
            if (at && now_ms - at >= cfg->wipe_grace_ms) {
                a.act = CORE_ACT_WIPE;
                if (act_on(reg, eng, wr, &a) == 0) {
                    st->wiped++;
                    eg_warn("directory: device %s wiped: %s since %lld s", ids[i], note,
                            (long long)((now_ms - at) / 1000));
                }
            }
        }
    }
    return 0;
}

static int sync_pass(struct core_dir *d, const struct core_dir_cfg *cfg, struct core_reg *reg,
                     struct core_eng *eng, struct core_wr *wr, int64_t now_ms,
                     struct core_dir_sync_stats *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    sqlite3 *db = core_reg_sqlite(reg);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db,
                           "SELECT DISTINCT user FROM devices WHERE managed = 1 AND user != '' "
                           "LIMIT ?1",
                           -1, &s, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "directory sync: %s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int(s, 1, SYNC_USERS_MAX);
    size_t cap = 256, n = 0;
    char **users = malloc(cap * sizeof(char *));
    while (users && sqlite3_step(s) == SQLITE_ROW) {
        if (n == cap) {
            char **u2 = realloc(users, 2 * cap * sizeof(char *));
            if (!u2)
                break;
            users = u2;
            cap *= 2;
        }
        users[n++] = strdup((const char *)sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    for (size_t i = 0; i < n; i++) {
        if (!users[i])
            continue;
        struct core_dir_user u;
        char e[512] = "";
        st->users++;
        int rc = core_dir_lookup(d, users[i], now_ms, &u, e, sizeof(e));
        if (rc == CORE_DIR_ENOTFOUND) {
            st->gone++;
            user_devices(cfg, reg, eng, wr, users[i], "is no longer in the directory", now_ms, st);
        } else if (rc == 0 && u.disabled) {
            st->disabled++;
            user_devices(cfg, reg, eng, wr, users[i], "is disabled in the directory", now_ms, st);
        } else if (rc < 0) {
            st->unavailable++;
            eg_warn("directory sync: %s: %s; its devices are left as they are", users[i], e);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(users[i]);
    free(users);
    return 0;
}

int core_dir_sync(struct core_dir *d, struct core_eng *eng, int64_t now_ms,
                  struct core_dir_sync_stats *st, char *err, size_t errlen)
{
    return sync_pass(d, core_dir_cfg_of(d), eng->reg, eng, NULL, now_ms, st, err, errlen);
}

/* ---- the core's periodic sync ----------------------------------------------- */

struct core_dir_syncer {
    const struct core_dir_cfg *cfg;
    struct core_dir *dir;
    struct core_reg *reg;
    struct core_wr *wr;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

static void *syncer_main(void *arg)
{
    struct core_dir_syncer *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        struct core_dir_sync_stats st;
        char err[512] = "";
        if (sync_pass(s->dir, s->cfg, s->reg, NULL, s->wr, core_now_ms(), &st, err, sizeof(err)) <
            0)
            eg_warn("%s", err);
        else
            eg_info("directory sync: %zu users, %zu gone, %zu disabled, %zu not answered; "
                    "%zu devices blocked, %zu wiped",
                    st.users, st.gone, st.disabled, st.unavailable, st.blocked, st.wiped);
        pthread_mutex_lock(&s->mu);
        if (s->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (s->cfg->sync_ms % 1000) * 1000000;
        ts.tv_sec += s->cfg->sync_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int core_dir_syncer_start(const struct core_dir_cfg *cfg, const char *database, struct core_wr *wr,
                          struct core_dir_syncer **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->enabled || !cfg->sync_ms)
        return 0;
    struct core_dir_syncer *s = calloc(1, sizeof(*s));
    if (!s)
        return CORE_DIR_ENOMEM;
    s->cfg = cfg;
    s->wr = wr;
    char e[512];
    if (core_dir_open(cfg, &s->dir, err, errlen) < 0) {
        free(s);
        return CORE_DIR_EINVAL;
    }
    if (core_reg_open(database, &s->reg, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "directory sync: %s", e);
        core_dir_close(s->dir);
        free(s);
        return CORE_DIR_EINVAL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->th, NULL, syncer_main, s) != 0) {
        snprintf(err, errlen, "directory sync: cannot start its thread");
        core_reg_close(s->reg);
        core_dir_close(s->dir);
        free(s);
        return CORE_DIR_ENOMEM;
    }
    *out = s;
    return 0;
}

void core_dir_syncer_stop(struct core_dir_syncer *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    core_reg_close(s->reg);
    core_dir_close(s->dir);
    free(s);
}
