// common/parse.h: strict numbers from command-line text: the whole string must be a number in
// range, so "12x", " 12" or "" is an error rather than a silent 12 or 0.
#pragma once
#include <stdint.h>

// Each returns 0 and sets *out, or -1 (leaving *out) if s is not entirely a number of the type.
// Integers are decimal with an optional leading '-' (none for parse_u64); floating-point
// values must be finite.
int parse_int(const char *s, int *out);
int parse_i64(const char *s, int64_t *out);
int parse_u64(const char *s, uint64_t *out);
int parse_float(const char *s, float *out);
int parse_double(const char *s, double *out);
