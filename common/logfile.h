/*
 * logfile: log files that can be reopened under running writers, for log
 * rotation (logrotate moves the file, then SIGUSR1). A reopen opens the
 * path again and dup2()s the new file over the old descriptor number, so a
 * thread writing at that moment lands in one file or the other, never in a
 * closed descriptor.
 *
 * Every file opened here is remembered (at most LOGFILE_MAX), and
 * logfile_reopen_all() reopens them all; it uses only open(2), dup2(2) and
 * close(2), so a signal handler may call it. Files are opened 0640, append.
 */
#ifndef EG_LOGFILE_H
#define EG_LOGFILE_H

#include <stddef.h>

#define LOGFILE_MAX 8

/* path: a file, "-" for stdout (dash_fd 1) or stderr (dash_fd 2). The
 * descriptor to write to, or -errno. Files stay open for the process. */
int logfile_open(const char *path, int dash_fd);

/* Reopen every file logfile_open opened. 0, or -errno of the last failure
 * (that file keeps its old descriptor). */
int logfile_reopen_all(void);

/* One whole line (with its newline) in one write(2). */
void logfile_write(int fd, const char *line, size_t len);

#endif
