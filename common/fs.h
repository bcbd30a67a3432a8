// common/fs.h: filesystem helpers.
#pragma once
#include <stddef.h>

// Creates path and its missing parents (mkdir -p). Returns 0, or -1 with errno set.
int fs_mkdirs(const char *path);

// Creates the folder that will hold the file at path. Returns 0 or -1.
int fs_mkdirs_for(const char *path);

// The cause of an I/O error for messages: "disk full (no space left on device)" for ENOSPC,
// "disk full (quota exceeded)" for EDQUOT, strerror's text otherwise.
const char *fs_errno_text(int errnum);

// Writes n bytes to path atomically: into path.tmp, fsynced, renamed over path, the folder
// fsynced. Every write is checked; on failure path.tmp is removed, path is left as it was, and
// err names the file and the cause. Returns 0 or -1.
int fs_write_atomic(const char *path, const void *buf, size_t n, char *err, size_t errlen);
