/*
 * logfile: reopenable log files (common/logfile.h). The table is filled
 * before the threads that write start and only read afterwards; a reopen
 * changes what a descriptor number points at, never the table.
 */
#include "common/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#define LOGFILE_PATH_MAX 1024

static struct {
    int fd;
    char path[LOGFILE_PATH_MAX];
} files[LOGFILE_MAX];
static atomic_int nfiles;

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int logfile_open(const char *path, int dash_fd)
{
    if (!path || strcmp(path, "-") == 0)
        return dash_fd;
    if (strlen(path) >= LOGFILE_PATH_MAX)
        return -ENAMETOOLONG;
    int n = atomic_load(&nfiles);
    for (int i = 0; i < n; i++)
        if (strcmp(files[i].path, path) == 0)
            return files[i].fd; /* one descriptor per file: reopened once */
    if (n >= LOGFILE_MAX)
        return -EMFILE;
    int fd = open_path(path);
    if (fd < 0)
        return -errno;
    files[n].fd = fd;
    memcpy(files[n].path, path, strlen(path) + 1);
    atomic_store(&nfiles, n + 1);
    return fd;
}

int logfile_reopen_all(void)
{
    int saved = errno, rc = 0, n = atomic_load(&nfiles);
    for (int i = 0; i < n; i++) {
        int fd = open_path(files[i].path);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (dup2(fd, files[i].fd) < 0)
            rc = -errno;
        close(fd);
    }
    errno = saved;
    return rc;
}

void logfile_write(int fd, const char *line, size_t len)
{
    if (fd < 0)
        return;
    ssize_t w = write(fd, line, len);
    (void)w;
}
