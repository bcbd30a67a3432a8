// train/recipe/files.c: checking the files a loaded recipe names: the tokenizer, every dataset
// and every checkpoint a stage starts from or uses. Here they must exist and be readable; what
// is inside them (a dataset's kind, its tokenizer) is checked by the caller's RecipeFileCheck,
// which the data and model code provide.
#include "train/recipe/recipe-impl.h"
#include "train/recipe/prepare.h"
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const Recipe *r;       // the recipe
    RecipeFileCheck check; // the caller's check of a file's contents, or NULL
    void *ctx;             // its context
    char *err;             // message buffer
    size_t errlen;         // its size
} FileCheck;

// Reports a problem with the file key (of stage i, or -1) names, at the place that set it.
static RecipeError file_fail(const FileCheck *c, int i, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static RecipeError file_fail(const FileCheck *c, int i, const char *key, const char *fmt, ...) {
    const char *where = recipe_where(c->r, i, key);
    int n = snprintf(c->err, c->errlen, "%s: %s%s%s: ", where ? where : c->r->file,
                     i >= 0 ? c->r->stages[i].name : "", i >= 0 ? "." : "", key);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return RECIPE_ERR_FILE;
}

// Whether path is a readable file (or, with folder_ok, a folder); if not, why into why.
static bool readable(const char *path, bool folder_ok, char *why, size_t len) {
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0)
        snprintf(why, len, "%s", strerror(errno));
    else if (S_ISDIR(st.st_mode) && !folder_ok)
        snprintf(why, len, "it is a folder");
    else
        return true;
    return false;
}

// Checks the file at path (key of stage i) and hands it to the caller's check as `kind`.
static RecipeError file_check(const FileCheck *c, int i, const char *key, const char *path,
                              const char *kind) {
    char why[512];
    if (prepare_will_make(c->r, path)) return RECIPE_OK; // not made yet: nothing to check
    // nor is a dataset an earlier stage writes, until it has (then it is checked like any other)
    if (i >= 0 && outputs_will_make(c->r, i, path) && access(path, R_OK) != 0) return RECIPE_OK;
    // a checkpoint may be a Hugging Face folder; the caller's check tells it from other folders
    if (!readable(path, strcmp(kind, "checkpoint") == 0, why, sizeof(why)))
        return file_fail(c, i, key, "cannot read '%s': %s", path, why);
    if (c->check && c->check(c->ctx, path, kind, c->r->tokenizer, why, sizeof(why)) != 0)
        return file_fail(c, i, key, "%s", why);
    return RECIPE_OK;
}

// A tokenizer is a file (layercake's or Hugging Face's .json, SentencePiece's .model, llama2.c's
// .bin) or a folder holding one (data/tokenizer.h).
// A folder holds a tokenizer when it has one of the file sets tokenizer_load reads; false with
// the reason in why (a set's missing half, or none of them).
static bool tokenizer_folder(const char *dir, char *why, size_t len) {
    static const char *const sets[][2] = {{"tokenizer.json", NULL},
                                          {"tokenizer.model", NULL},
                                          {"encoder.json", "vocab.bpe"},
                                          {"vocab.json", "merges.txt"}};
    char part[PATH_MAX + 32], cause[256];
    snprintf(why, len,
             "'%s' holds no tokenizer: a folder needs tokenizer.json, tokenizer.model, or "
             "GPT-2's encoder.json and vocab.bpe (or vocab.json and merges.txt)",
             dir);
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
        snprintf(part, sizeof(part), "%s/%s", dir, sets[i][0]);
        if (!readable(part, false, cause, sizeof(cause))) continue;
        if (!sets[i][1]) return true;
        snprintf(part, sizeof(part), "%s/%s", dir, sets[i][1]);
        if (readable(part, false, cause, sizeof(cause))) return true;
        snprintf(why, len, "cannot read '%.*s': %s (%s needs it)", 1024, part, cause, sets[i][0]);
    }
    return false;
}

static RecipeError tokenizer_check(const FileCheck *c) {
    const char *path = c->r->tokenizer;
    char why[1536];
    struct stat st;
    if (prepare_will_make(c->r, path)) return RECIPE_OK;
    if (!readable(path, true, why, sizeof(why)))
        return file_fail(c, -1, "tokenizer", "cannot read '%s': %s", path, why);
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode) && !tokenizer_folder(path, why, sizeof(why)))
        return file_fail(c, -1, "tokenizer", "%s", why);
    if (c->check && c->check(c->ctx, path, "tokenizer", path, why, sizeof(why)) != 0)
        return file_fail(c, -1, "tokenizer", "%s", why);
    return RECIPE_OK;
}

static RecipeError stage_files(const FileCheck *c, int i) {
    const Stage *s = &c->r->stages[i];
    for (int n = 0; n < SCHEMA_COUNT; n++) {
        const Key *k = &SCHEMA[n];
        if (k->scope != SCOPE_STAGE || !key_applies(k, s->kind)) continue;
        for (int m = 0; m < value_string_count(k, s); m++) {
            const char *v = value_string(k, s, m);
            char model[PATH_MAX], err[256];
            int count;
            if ((k->flags & KEY_STAGE_REF) &&
                recipe_bon_parse(v, model, sizeof(model), &count, err, sizeof(err)) == 1)
                v = model; // bon(<model>, <n>): the model's file
            RecipeError rc = RECIPE_OK;
            if ((k->flags & KEY_INPUT_PATH) && *v)
                rc = file_check(c, i, k->path, v, stage_data_kind(s, k->path));
            else if ((k->flags & KEY_STAGE_REF) && ref_is_path(v))
                rc = file_check(c, i, k->path, v, "checkpoint");
            if (rc) return rc;
        }
    }
    return RECIPE_OK;
}

RecipeError recipe_validate_files(const Recipe *r, RecipeFileCheck check, void *ctx, char *err,
                                  size_t errlen) {
    FileCheck c = {r, check, ctx, err, errlen};
    RecipeError rc = tokenizer_check(&c);
    for (int i = 0; rc == RECIPE_OK && i < r->n_stages; i++) rc = stage_files(&c, i);
    return rc;
}
