// data/import.c: the importer's driver. Reads the inputs (plain text whole, JSONL a line at a
// time through import_json.c), hands documents and examples to import_emit.c (which cuts them
// to the wanted kind, applies the over-length policy and the validation split and writes
// them), and counts everything.
//
// Policies (docs/datasets.md): lm documents longer than max_len are cut into pieces of
// max_len tokens, never dropped; sft, preference and prompt examples longer than max_len are
// dropped whole (a truncated response would lose its end token, a truncated prompt its
// question). An example goes to the validation file when a hash of its token ids and the seed
// falls below val_fraction, so the split does not depend on input order or file boundaries and
// duplicate examples land on the same side.
#include "common/check.h"
#include "common/timer.h"
#include "common/error.h"
#include "data/import-impl.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---- writing -------------------------------------------------------------------------------

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int is_jsonl(const char *path) {
    return has_suffix(path, ".jsonl") || has_suffix(path, ".json") || has_suffix(path, ".ndjson");
}

static int line_is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

// Handles a line's result: fine, skipped (counted, the first one remembered) or an error.
static int line_result(Importer *im, int rc, const char *path, int64_t line, char *err,
                       size_t errlen) {
    if (rc == LINE_OK) return 0;
    if (rc == LINE_BAD && im->o->skip_bad) {
        if (im->st->skipped++ == 0)
            snprintf(im->st->first_skip, sizeof(im->st->first_skip), "%.200s:%lld: %.280s", path,
                     (long long)line, im->why);
        return 0;
    }
    return lc_error(err, errlen, "%s:%lld: %s", path, (long long)line, im->why);
}

static int import_jsonl(Importer *im, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) return lc_error(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        im->st->bytes += n;
        if (line_is_blank(line, (size_t)n)) continue;
        im->st->lines++;
        rc = line_result(im, import_json_line(im, line, (size_t)n), path, lineno, err, errlen);
    }
    if (rc == 0 && ferror(f)) rc = lc_error(err, errlen, "%s: read error", path);
    free(line);
    fclose(f);
    return rc;
}

// Reads a whole file (any size, pipes included) into malloc'd memory.
static char *read_all(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        lc_error(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, k;
    char *buf = lc_malloc(cap);
    while ((k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap && !(buf = realloc(buf, cap *= 2))) LC_DIE("out of memory reading %s", path);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        lc_error(err, errlen, "%s: read error", path);
        return NULL;
    }
    *len = n;
    return buf;
}

static int document(Importer *im, const char *path, const char *s, size_t n, char *err,
                    size_t errlen) {
    if (n == 0 || import_document(im, s, n) == LINE_OK) return 0;
    return lc_error(err, errlen, "%s: %s", path, im->why);
}

// Plain text cut at runs of >= split_blank blank (empty or whitespace-only) lines, which
// belong to no document.
static int import_paragraphs(Importer *im, const char *path, const char *s, size_t len, char *err,
                             size_t errlen) {
    size_t doc = 0, run = 0;
    int blanks = 0;
    for (size_t i = 0, e; i < len; i = e) {
        const char *nl = memchr(s + i, '\n', len - i);
        e = nl ? (size_t)(nl - s) + 1 : len;
        if (line_is_blank(s + i, e - i)) {
            if (blanks++ == 0) run = i;
            continue;
        }
        if (blanks >= im->o->split_blank) {
            if (document(im, path, s + doc, run - doc, err, errlen) < 0) return -1;
            doc = i;
        }
        blanks = 0;
    }
    size_t end = blanks >= im->o->split_blank && blanks > 0 ? run : len;
    return document(im, path, s + doc, end > doc ? end - doc : 0, err, errlen);
}

static int import_text(Importer *im, const char *path, char *err, size_t errlen) {
    size_t len;
    char *s = read_all(path, &len, err, errlen);
    if (!s) return -1;
    im->st->bytes += (int64_t)len;
    int rc = im->o->split_blank > 0 ? import_paragraphs(im, path, s, len, err, errlen)
                                    : document(im, path, s, len, err, errlen);
    free(s);
    return rc;
}

// ---- the import ----------------------------------------------------------------------------

void import_val_path(const char *out, char *buf, size_t len) {
    size_t n = strlen(out);
    if (has_suffix(out, ".h5"))
        snprintf(buf, len, "%.*s-val.h5", (int)(n - 3), out);
    else
        snprintf(buf, len, "%s-val", out);
}

static int options_check(const ImportOptions *o, const char *const *inputs, int n_inputs, char *err,
                         size_t errlen) {
    if (o->max_len < 1)
        return lc_error(err, errlen, "--max-len must be at least 1, not %lld",
                        (long long)o->max_len);
    if (!(o->val_fraction >= 0.0 && o->val_fraction < 1.0))
        return lc_error(err, errlen, "--val-fraction must be in [0, 1), not %g", o->val_fraction);
    if (n_inputs < 1) return lc_error(err, errlen, "no input files");
    for (int i = 0; i < n_inputs; i++)
        if (!is_jsonl(inputs[i]) && o->kind != DATA_LM)
            return lc_error(err, errlen,
                            "%s: plain text makes 'lm' datasets only, not '%s' (JSONL inputs "
                            "are named *.jsonl, *.json or *.ndjson)",
                            inputs[i], data_kind_name(o->kind));
    return 0;
}

static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

// Files are compared, not names (device and inode: other spellings, symbolic and hard links
// count).
int import_check_outputs(const ImportOptions *o, const char *const *inputs, int n_inputs, char *err,
                         size_t errlen) {
    char val[4096], real[PATH_MAX];
    import_val_path(o->out, val, sizeof(val));
    const char *outs[2] = {o->out, o->val_fraction > 0.0 ? val : NULL};
    for (int i = 0; i < n_inputs; i++)
        for (int k = 0; k < 2; k++) {
            if (!outs[k] || !same_file(outs[k], inputs[i])) continue;
            if (!realpath(inputs[i], real)) snprintf(real, sizeof(real), "%s", inputs[i]);
            lc_error(err, errlen,
                     "--out: %s%s%s is the input %s (%s): it would be overwritten before it is "
                     "read; write the dataset elsewhere",
                     k ? "the validation file " : "", outs[k], k ? " (from --out)" : "", inputs[i],
                     real);
            return IMPORT_ERR_USAGE;
        }
    return 0;
}

static int writers_open(Importer *im, char *err, size_t errlen) {
    uint64_t fp = tokenizer_fingerprint(im->o->tok);
    im->w[0] = dataset_create(im->o->out, im->o->kind, fp, err, errlen);
    if (!im->w[0]) return -1;
    if (im->o->val_fraction <= 0.0) return 0;
    char val[4096];
    import_val_path(im->o->out, val, sizeof(val));
    im->w[1] = dataset_create(val, im->o->kind, fp, err, errlen);
    return im->w[1] ? 0 : -1;
}

// Closes both files, or discards them if the import failed or made nothing. A file whose
// examples went through the chat template records its name.
static int writers_close(Importer *im, int rc, char *err, size_t errlen) {
    if (rc == 0 && im->st->examples[0] == 0)
        rc = lc_error(err, errlen, "no examples to write%s (%lld lines skipped, %lld dropped)",
                      im->st->examples[1] ? " to the training file" : "",
                      (long long)im->st->skipped, (long long)im->st->dropped);
    for (int i = 0; i < 2; i++) {
        if (!im->w[i]) continue;
        if (rc == 0 && im->chat_used)
            rc = dataset_set_attribute(im->w[i], "chat_template", chat_template_name(im->chat.tmpl),
                                       err, errlen);
        if (rc == 0)
            rc = dataset_close(im->w[i], err, errlen);
        else
            dataset_abort(im->w[i]);
    }
    return rc;
}

static void importer_free(Importer *im) {
    tokenbuf_free(&im->p.ctx);
    tokenbuf_free(&im->p.resp[0]);
    tokenbuf_free(&im->p.resp[1]);
    tokenbuf_free(&im->seq);
    free(im->msgs[0]);
    free(im->msgs[1]);
    free(im->text);
}

int import_run(const ImportOptions *o, const char *const *inputs, int n_inputs, ImportStats *st,
               char *err, size_t errlen) {
    double t0 = time_now();
    *st = (ImportStats){0};
    if (options_check(o, inputs, n_inputs, err, errlen) < 0) return -1;
    if (import_check_outputs(o, inputs, n_inputs, err, errlen) < 0) return IMPORT_ERR_USAGE;
    char why[512];
    if (tokenizer_eot(o->tok) < 0)
        return lc_error(err, errlen,
                        "the tokenizer has no end-of-text token (eos_token in "
                        "tokenizer_config.json), which ends every document and response");
    Importer im = {.o = o, .st = st};
    im.chat = chat_init_named(o->tok, o->chat_template, o->model_chat_template, why, sizeof(why));
    if (!im.chat.tok) return lc_error(err, errlen, "--chat-template: %s", why);
    int rc = writers_open(&im, err, errlen);
    for (int i = 0; rc == 0 && i < n_inputs; i++)
        rc = is_jsonl(inputs[i]) ? import_jsonl(&im, inputs[i], err, errlen)
                                 : import_text(&im, inputs[i], err, errlen);
    if (im.w[0]) rc = writers_close(&im, rc, err, errlen);
    importer_free(&im);
    st->seconds = time_now() - t0;
    return rc;
}
