// common/parse.c: strict number parsing.
#include "common/parse.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

// strto* skip leading white space and accept a '+'; a command line that says " 5" or "+5"
// most likely holds a mistake, so a number must start with a digit, '-' or '.'.
static int number_start(const char *s) {
    return *s && (isdigit((unsigned char)*s) || *s == '-' || *s == '.');
}

int parse_i64(const char *s, int64_t *out) {
    if (!number_start(s)) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

int parse_int(const char *s, int *out) {
    int64_t v;
    if (parse_i64(s, &v) != 0 || v < INT_MIN || v > INT_MAX) return -1;
    *out = (int)v;
    return 0;
}

int parse_u64(const char *s, uint64_t *out) {
    if (!isdigit((unsigned char)*s)) return -1; // strtoull would wrap "-1" to 2^64-1
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out) {
    if (!number_start(s)) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int parse_float(const char *s, float *out) {
    double v;
    if (parse_double(s, &v) != 0 || fabs(v) > 3.4028234663852886e38) return -1;
    *out = (float)v;
    return 0;
}
