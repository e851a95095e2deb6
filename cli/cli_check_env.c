/*
 * cli_check_env: what `easgate check` looks at beyond the files' syntax:
 * the host the roles will start on. Every refusal a role makes at start
 * that can be seen beforehand is an error here, so that "configuration OK"
 * means it starts:
 *
 *   - upstream host names that do not resolve (the proxy resolves them
 *     once, at start, and exits 2), unless --offline;
 *   - listeners that cannot bind: in use, or a port below 1024 without the
 *     privilege (tested by binding them all at once, as `easgate run` will,
 *     so two sections naming one port show too). A port held by a running
 *     easgate is noted, not refused: that is the reload case;
 *   - a core or enrollment listener off loopback without TLS;
 *   - the device CA missing while enroll.listen is set.
 *
 * And warnings (exit status stays 0): a client CA without a CRL, keys
 * readable by others, the CA key or the registry readable by anyone but
 * their owner.
 */
#include "cli/cli_check.h"

#include "core/cfg.h"
#include "enroll/cfg.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK_LISTENERS_MAX 64

static void report(struct check_env *e, bool error, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: %s", e->path, error ? "" : "warning: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (error)
        e->errors++;
    else
        e->warnings++;
}

/* ---- upstream names ----------------------------------------------------------------- */

static void check_resolve(struct check_env *e, const struct conf *c)
{
    for (size_t i = 0; i < c->proxy.n_instances; i++) {
        const struct conf_instance *in = &c->proxy.instances[i];
        for (size_t u = 0; u < in->upstream.n_urls; u++) {
            const struct conf_url *url = &in->upstream.urls[u];
            struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
            int r = getaddrinfo(url->host, NULL, &hints, &res);
            if (r == 0) {
                freeaddrinfo(res);
                continue;
            }
            report(e, true,
                   "instance '%s': upstream %s: the host '%s' does not resolve (%s); the proxy "
                   "resolves upstream names once at start and would exit 2 (--offline skips "
                   "this check)",
                   in->name, url->url, url->host, gai_strerror(r));
        }
    }
}

/* ---- listeners ------------------------------------------------------------------------ */

/* The pid and name of the process listening on TCP port, from /proc (only
 * processes this user may look at). 0 if not found. */
/* A process name (/proc/PID/comm, at most 15 characters) that is easgate:
 * the one binary, or easgate-proxy-lean, which `easgate proxy` becomes. */
static bool is_easgate(const char *comm)
{
    return strcmp(comm, "easgate") == 0 || strcmp(comm, "easgate-proxy-l") == 0 ||
           strcmp(comm, "easgate-proxy-lean") == 0;
}

static int port_holder(int port, char *comm, size_t n)
{
    unsigned long inodes[16];
    size_t ni = 0;
    const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");
        if (!f)
            continue;
        char line[512];
        while (fgets(line, sizeof(line), f) && ni < 16) {
            char local[128];
            unsigned st;
            unsigned long inode;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, "%*s %127s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &inode) != 3)
                continue;
            const char *colon = strrchr(local, ':');
            if (st == 0x0A && colon && strtol(colon + 1, NULL, 16) == port && inode)
                inodes[ni++] = inode;
        }
        fclose(f);
    }
    if (!ni)
        return 0;
    DIR *proc = opendir("/proc");
    struct dirent *de;
    int found = 0;
    while (proc && !found && (de = readdir(proc))) {
        int pid = atoi(de->d_name);
        if (pid <= 0)
            continue;
        char fddir[64];
        snprintf(fddir, sizeof(fddir), "/proc/%d/fd", pid);
        DIR *fds = opendir(fddir);
        struct dirent *fe;
        while (fds && !found && (fe = readdir(fds))) {
            char link[64 + 256], target[64];
            snprintf(link, sizeof(link), "%s/%s", fddir, fe->d_name);
            ssize_t l = readlink(link, target, sizeof(target) - 1);
            if (l <= 0)
                continue;
            target[l] = '\0';
            unsigned long ino;
            if (sscanf(target, "socket:[%lu]", &ino) != 1)
                continue;
            for (size_t i = 0; i < ni; i++)
                if (inodes[i] == ino)
                    found = pid;
        }
        if (fds)
            closedir(fds);
    }
    if (proc)
        closedir(proc);
    if (found) {
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/comm", found);
        FILE *f = fopen(p, "r");
        if (!f || !fgets(comm, (int)n, f))
            snprintf(comm, n, "?");
        comm[strcspn(comm, "\n")] = '\0';
        if (f)
            fclose(f);
    }
    return found;
}

struct listener {
    const char *what; /* "proxy.instances[0].listen" */
    const struct units_addr *addr;
};

/* Bind every listener at once (SO_REUSEADDR, dual-stack for "*", as the
 * roles do); what fails is reported. The sockets are closed again. */
static void check_bind(struct check_env *e, const struct listener *ls, size_t n)
{
    int fds[CHECK_LISTENERS_MAX];
    for (size_t i = 0; i < n; i++) {
        const struct units_addr *a = ls[i].addr;
        int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        fds[i] = fd;
        if (fd < 0) {
            report(e, true, "%s %s: cannot make a socket: %s", ls[i].what, a->text,
                   strerror(errno));
            continue;
        }
        int one = 1, zero = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (a->sa.ss_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        if (bind(fd, (const struct sockaddr *)&a->sa, a->salen) == 0 && listen(fd, 1) == 0)
            continue;
        int err = errno;
        if (err == EACCES) {
            report(e, true,
                   "%s %s: cannot bind: permission denied (ports below 1024 need "
                   "CAP_NET_BIND_SERVICE, which the packaged units give the proxy; or listen "
                   "on 1024 or above)",
                   ls[i].what, a->text);
            continue;
        }
        if (err != EADDRINUSE) {
            report(e, true, "%s %s: cannot bind: %s", ls[i].what, a->text, strerror(err));
            continue;
        }
        /* In use: by an earlier listener of this file, by easgate itself
         * (check before a reload), or by something else. */
        size_t k;
        for (k = 0; k < i; k++)
            if (ls[k].addr->port == a->port && fds[k] >= 0)
                break;
        char comm[64] = "";
        int pid = k < i ? 0 : port_holder(a->port, comm, sizeof(comm));
        if (k < i)
            report(e, true, "%s %s: the same port as %s %s", ls[i].what, a->text, ls[k].what,
                   ls[k].addr->text);
        else if (pid && is_easgate(comm))
            fprintf(stderr,
                    "%s: note: %s %s is held by easgate (pid %d), as when it runs: fine for a "
                    "reload, a second instance would not start\n",
                    e->path, ls[i].what, a->text, pid);
        else if (pid)
            report(e, true, "%s %s: cannot bind: the port is in use by %s (pid %d)", ls[i].what,
                   a->text, comm, pid);
        else
            report(e, true, "%s %s: cannot bind: the port is in use", ls[i].what, a->text);
        close(fd);
        fds[i] = -1;
    }
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static bool loopback(const struct units_addr *ad)
{
    const struct sockaddr *sa = (const struct sockaddr *)&ad->sa;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, &in6addr_loopback,
                      sizeof(struct in6_addr)) == 0;
    return false;
}

/* ---- files and modes ------------------------------------------------------------------ */

/* A key others may read; a secret (CA key, registry) anyone but its owner may. */
static void check_mode(struct check_env *e, const char *what, const char *path, bool owner_only)
{
    struct stat st;
    if (!path || stat(path, &st) < 0)
        return;
    mode_t loose = owner_only ? 0077 : 0007;
    if (st.st_mode & loose)
        report(e, false, "%s %s has mode %04o: %s (chmod %s %s)", what, path,
               (unsigned)(st.st_mode & 07777),
               owner_only ? "only its owner should read it" : "others can read it",
               owner_only ? "600" : "640", path);
}

static void check_readable(struct check_env *e, bool error, const char *what, const char *path,
                           const char *why)
{
    if (path && access(path, R_OK) < 0)
        report(e, error, "%s: cannot read '%s': %s%s", what, path, strerror(errno), why);
}

void check_env(struct check_env *e, const struct conf *c)
{
    struct listener ls[CHECK_LISTENERS_MAX];
    char names[CHECK_LISTENERS_MAX][48];
    size_t n = 0;
    const struct core_cfg *core = core_cfg_get(c);
    const struct enr_cfg *enr = enr_cfg_get(c);

    if (!e->offline)
        check_resolve(e, c);
    for (size_t i = 0; i < c->proxy.n_instances && n < CHECK_LISTENERS_MAX - 3; i++) {
        const struct conf_instance *in = &c->proxy.instances[i];
        snprintf(names[n], sizeof(names[n]), "proxy.instances[%zu].listen", i);
        ls[n] = (struct listener){names[n], &in->listen};
        n++;
        if (in->client_auth.ca && !in->client_auth.crl)
            report(e, false,
                   "instance '%s': client_auth.ca without client_auth.crl: a revoked phone's "
                   "certificate still gets in (enrollment writes enroll.crl)",
                   in->name);
        check_mode(e, "the key", in->tls.key, false);
    }
    if (c->has_proxy && c->proxy.has_admin)
        ls[n++] = (struct listener){"proxy.admin_listen", &c->proxy.admin_listen};
    if (core && core->listen.port) {
        ls[n++] = (struct listener){"core.listen", &core->listen};
        if (!core->tls.cert && !loopback(&core->listen))
            report(e, true,
                   "core.listen %s: off loopback without core.tls: the admin API carries "
                   "passwords and tokens, so the core refuses it; give core.tls or listen on "
                   "127.0.0.1",
                   core->listen.text);
        check_mode(e, "the key", core->tls.key, false);
    }
    if (core)
        check_mode(e, "the registry", core->database, true);
    if (enr) {
        if (enr->listen.port) {
            ls[n++] = (struct listener){"enroll.listen", &enr->listen};
            if (!enr->tls.cert)
                report(e, true, "enroll.listen %s: without enroll.tls (phones enroll over HTTPS)",
                       enr->listen.text);
        }
        bool serving = enr->listen.port != 0;
        const char *why = serving ? " (enroll.listen is set: the enrollment endpoint would not "
                                    "start; easgate init or easgate core init-ca writes it)"
                                  : " (easgate core init-ca writes it)";
        check_readable(e, serving, "enroll.ca.cert", enr->ca.cert, why);
        check_readable(e, serving, "enroll.ca.key", enr->ca.key, why);
        check_mode(e, "the device CA key", enr->ca.key, true);
        check_mode(e, "the key", enr->tls.key, false);
        if (enr->signing.key != enr->tls.key)
            check_mode(e, "the key", enr->signing.key, false);
    }
    check_bind(e, ls, n);
}
