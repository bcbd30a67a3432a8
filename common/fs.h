// common/fs.h: filesystem helpers.
#pragma once

// Creates path and its missing parents (mkdir -p). Returns 0, or -1 with errno set.
int fs_mkdirs(const char *path);

// Creates the folder that will hold the file at path. Returns 0 or -1.
int fs_mkdirs_for(const char *path);
