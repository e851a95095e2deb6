/*
 * The one way C tests run Redis: a private redis-server (or redis-sentinel)
 * on a free loopback port, its files in one temp dir (tr_rmtmp removes it),
 * started by fork/exec and stopped by its pid (tr_kill), never by name. The
 * test talks to it with hiredis's blocking API (fine in a test, never in
 * the proxy). tr_have lets a test skip when Redis is not installed.
 */
#ifndef TEST_REDIS_UTIL_H
#define TEST_REDIS_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tr_tmp[256];

static inline int64_t tr_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int tr_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static inline bool tr_have(const char *bin)
{
    char path[512];
    const char *dirs[] = {"/usr/bin", "/usr/sbin", "/usr/local/bin"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", dirs[i], bin);
        if (access(path, X_OK) == 0)
            return true;
    }
    return false;
}

static inline const char *tr_tmpdir(void)
{
    if (!tr_tmp[0]) {
        snprintf(tr_tmp, sizeof(tr_tmp), "/tmp/easgate-redis.XXXXXX");
        if (!mkdtemp(tr_tmp))
            return NULL;
    }
    return tr_tmp;
}

static inline void tr_rmtmp(void)
{
    if (tr_tmp[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tr_tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tr_tmp);
        tr_tmp[0] = '\0';
    }
}

/* Blocking connect, a short bounded wait for the port to answer. */
static inline redisContext *tr_connect(int port, int wait_ms)
{
    int64_t end = tr_ms() + wait_ms;
    struct timeval tv = {1, 0};
    do {
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c && !c->err) {
            redisSetTimeout(c, tv);
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type != REDIS_REPLY_ERROR;
            if (r)
                freeReplyObject(r);
            if (ok)
                return c;
        }
        if (c)
            redisFree(c);
        usleep(20000);
    } while (tr_ms() < end);
    return NULL;
}

/* redis-server on port (0 = pick one), extra args appended. pid out. */
static inline pid_t tr_redis_start(int port, const char *const *extra, size_t nextra)
{
    const char *dir = tr_tmpdir();
    char p[16], sub[300];
    snprintf(p, sizeof(p), "%d", port);
    snprintf(sub, sizeof(sub), "%s/r%d", dir, port);
    mkdir(sub, 0700);
    pid_t pid = fork();
    if (pid == 0) {
        const char *argv[32] = {"redis-server", "--port",     p,        "--bind",
                                "127.0.0.1",    "--save",     "",       "--appendonly",
                                "no",           "--dir",      sub,      "--daemonize",
                                "no",           "--loglevel", "warning"};
        size_t n = 15;
        for (size_t i = 0; i < nextra && n < 31; i++)
            argv[n++] = extra[i];
        argv[n] = NULL;
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static inline pid_t tr_sentinel_start(int port, int master_port, const char *name)
{
    const char *dir = tr_tmpdir();
    char conf[300];
    snprintf(conf, sizeof(conf), "%s/sentinel-%d.conf", dir, port);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\n"
            "sentinel monitor %s 127.0.0.1 %d 1\n"
            "sentinel down-after-milliseconds %s 800\n"
            "sentinel failover-timeout %s 4000\n"
            "sentinel parallel-syncs %s 1\n",
            port, dir, name, master_port, name, name, name);
    fclose(f);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execlp("redis-sentinel", "redis-sentinel", conf, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static inline void tr_kill(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    for (int i = 0; i < 200; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* One command on a blocking context; returns the reply (caller frees). */
static inline redisReply *tr_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    return r;
}

static inline void tr_do(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r)
        freeReplyObject(r);
}

/* calls=N of a command in INFO commandstats, -1 if absent. */
static inline long tr_calls(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, "INFO commandstats");
    long calls = -1;
    char key[64];
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, key);
        if (p)
            calls = strtol(p + strlen(key), NULL, 10);
        else
            calls = 0;
    }
    if (r)
        freeReplyObject(r);
    return calls;
}

#endif
