// common/error.h: how the libraries report user errors (bad recipes, datasets, checkpoints): a
// message written into a caller's buffer and a -1 (or NULL) return, so the binary decides
// whether to exit and tests can check the text.
#pragma once
#include <stddef.h>

// Formats a message into err[errlen] (err may be NULL) and returns -1, for
// `return lc_error(err, errlen, "%s: ...", path)`.
int lc_error(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
