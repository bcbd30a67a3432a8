// common/error.c: the message formatter behind common/error.h.
#include "common/error.h"
#include <stdarg.h>
#include <stdio.h>

int lc_error(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}
