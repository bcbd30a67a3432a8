#include "common/check.h"

void *lc_malloc_check(size_t bytes, const char *file, int line) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "layercake: fatal: %s:%d: out of memory allocating %zu bytes\n", file, line,
                bytes);
        fprintf(stderr, "  hint: reduce batch_size, max_seq_len or the model size\n");
        exit(1);
    }
    return p;
}

void *lc_calloc_check(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "layercake: fatal: %s:%d: out of memory allocating %zu x %zu bytes\n", file,
                line, count, size);
        fprintf(stderr, "  hint: reduce batch_size, max_seq_len or the model size\n");
        exit(1);
    }
    return p;
}
