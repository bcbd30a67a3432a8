// common/check.h: fail-fast checks for the `layercake` binary and its libraries' internal
// invariants. Each macro prints the failing statement, file:line and a hint, then exits(1).
// Libraries report *user* errors (bad recipes, datasets, checkpoints) through return codes
// and messages instead; these macros are for what cannot go on (out of memory, I/O failure,
// a broken internal contract).
#pragma once
#include <stdio.h>
#include <stdlib.h>

#define LC_DIE(...)                                                                                \
    do {                                                                                           \
        fprintf(stderr, "layercake: fatal: %s:%d: ", __FILE__, __LINE__);                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        exit(1);                                                                                   \
    } while (0)

// An internal invariant; a failure is a bug in layercake, not in the user's input.
#define LC_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) LC_DIE("assertion failed: %s (this is a bug in layercake)", #cond);           \
    } while (0)

void *lc_malloc_check(size_t bytes, const char *file, int line);
void *lc_calloc_check(size_t count, size_t size, const char *file, int line);

// malloc/calloc that never return NULL: on failure they name the size and the call site.
#define lc_malloc(bytes)     lc_malloc_check((bytes), __FILE__, __LINE__)
#define lc_calloc(count, sz) lc_calloc_check((count), (sz), __FILE__, __LINE__)
