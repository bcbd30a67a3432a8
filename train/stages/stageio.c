// train/stages/stageio.c: completion marks, JSON-safe text and whole-file writes for the stages.
#include "train/stages/stageio.h"
#include "common/check.h"
#include "common/fs.h"
#include "train/run/state.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int stageio_fail(const StageRun *sr, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "layercake: stage '%s': ", sr->stage->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

int stageio_mark_complete(const StageRun *sr, char *err, size_t errlen) {
    const Run *run = sr->run;
    char path[4200];
    snprintf(path, sizeof(path), "%s/final.h5", sr->dir);
    TrainState ts = {.complete = 1,
                     .tokenizer = run->fingerprint,
                     .recipe = run->recipe_text,
                     .tokenizer_path = run->recipe->tokenizer};
    return state_save(path, NULL, 0, &ts, err, errlen);
}

// The length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not one (NUL
// counts as invalid: it would end the string early).
static size_t utf8_seq(const unsigned char *s, size_t n) {
    size_t len = s[0] < 0x80             ? 1
                 : (s[0] & 0xE0) == 0xC0 ? 2
                 : (s[0] & 0xF0) == 0xE0 ? 3
                 : (s[0] & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (s[0] == 0 || len == 0 || len > n) return 0;
    for (size_t k = 1; k < len; k++)
        if ((s[k] & 0xC0) != 0x80) return 0;
    uint32_t cp = len == 1 ? s[0] : (uint32_t)(s[0] & (0x7F >> len));
    for (size_t k = 1; k < len; k++) cp = cp << 6 | (s[k] & 0x3F);
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

char *stageio_clean_text(const char *s, size_t n) {
    char *out = lc_malloc(3 * n + 1), *o = out;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq((const unsigned char *)s + i, n - i);
        if (len) {
            memcpy(o, s + i, len);
            o += len, i += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3); // U+FFFD
            o += 3, i++;
        }
    }
    *o = '\0';
    return out;
}

json_t *stageio_json_text(const char *s, size_t n) {
    char *clean = stageio_clean_text(s, n);
    json_t *j = json_string(clean);
    free(clean);
    LC_ASSERT(j);
    return j;
}

int stageio_write_memstream(const char *path, FILE *f, char **buf, size_t *len, char *err,
                            size_t errlen) {
    int rc = fclose(f) == 0 ? 0 : -1;
    if (rc) snprintf(err, errlen, "%s: out of memory while writing it", path);
    if (!rc) rc = fs_write_atomic(path, *buf, *len, err, errlen);
    free(*buf);
    *buf = NULL;
    return rc;
}
