// common/fs.c: filesystem helpers.
#include "common/fs.h"
#include "common/error.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_mkdirs(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int fs_mkdirs_for(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) return -1;
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf) return 0;
    *slash = '\0';
    return fs_mkdirs(buf);
}

const char *fs_errno_text(int errnum) {
    if (errnum == ENOSPC) return "disk full (no space left on device)";
    if (errnum == EDQUOT) return "disk full (quota exceeded)";
    return strerror(errnum);
}

// Writes all n bytes to fd, retrying short writes; 0, or -1 with errno set.
static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

// fsyncs the folder holding path, so the rename that put path there is durable.
static void sync_folder(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    int fd = open(dirname(dir), O_RDONLY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

int fs_write_atomic(const char *path, const void *buf, size_t n, char *err, size_t errlen) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return lc_error(err, errlen, "%s: cannot create %s: %s", path, tmp, fs_errno_text(errno));
    // the first failing step and its errno name the cause
    const char *step = NULL;
    int saved = 0;
    if (write_all(fd, buf, n) != 0) step = "writing", saved = errno;
    if (!step && fsync(fd) != 0) step = "syncing", saved = errno;
    if (close(fd) != 0 && !step) step = "closing", saved = errno;
    if (!step && rename(tmp, path) != 0) step = "renaming", saved = errno;
    if (step) {
        unlink(tmp);
        return lc_error(err, errlen, "%s: %s failed: %s", path, step, fs_errno_text(saved));
    }
    sync_folder(path);
    return 0;
}
