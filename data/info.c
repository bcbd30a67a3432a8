// data/info.c: dataset summaries. Lengths come from the offsets arrays alone; only sft files
// have their values read (to count the tokens under the loss mask).
#include "data/info.h"
#include "common/check.h"
#include <jansson.h>
#include <stdlib.h>

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// Nearest rank: the smallest length with at least p% of the examples at or below it.
static int64_t percentile(const int64_t *sorted, int64_t n, int p) {
    if (n == 0) return 0;
    int64_t rank = (p * n + 99) / 100;
    return sorted[rank > 0 ? rank - 1 : 0];
}

static int64_t span(const TokenSeqs *s, int64_t i) {
    return s->off[i + 1] - s->off[i];
}

static int64_t example_length(const Dataset *ds, int64_t i) {
    int64_t n = span(&ds->tokens, i);
    if (ds->kind == DATA_UNPAIRED) return n + span(&ds->completion, i);
    if (ds->kind != DATA_PREFERENCE) return n;
    int64_t c = span(&ds->chosen, i), r = span(&ds->rejected, i);
    return n + (c > r ? c : r);
}

static void lengths(const Dataset *ds, DatasetInfo *info) {
    int64_t *len = lc_malloc((size_t)ds->n * sizeof(int64_t));
    for (int64_t i = 0; i < ds->n; i++) len[i] = example_length(ds, i);
    qsort(len, (size_t)ds->n, sizeof(int64_t), cmp_i64);
    info->len_p50 = percentile(len, ds->n, 50);
    info->len_p90 = percentile(len, ds->n, 90);
    info->len_p99 = percentile(len, ds->n, 99);
    info->len_max = ds->n ? len[ds->n - 1] : 0;
    free(len);
}

static int trained(Dataset *ds, DatasetInfo *info, char *err, size_t errlen) {
    if (ds->kind == DATA_LM) info->trained = ds->n_tokens;
    if (ds->kind == DATA_PREFERENCE)
        info->trained = ds->chosen.off[ds->n] + ds->rejected.off[ds->n];
    if (ds->kind == DATA_UNPAIRED) {
        info->trained = ds->completion.off[ds->n];
        if (dataset_load(ds, 0, err, errlen) < 0) return -1;
        for (int64_t i = 0; i < ds->n; i++) info->desirable += ds->label[i];
    }
    if (ds->kind == DATA_PROMPT)
        for (int64_t i = 0; i < ds->n; i++)
            info->references +=
                span(&ds->reference, i) > 0 || ds->ref_text_off[i + 1] > ds->ref_text_off[i];
    if (ds->kind != DATA_SFT) return 0;
    if (dataset_load(ds, 0, err, errlen) < 0) return -1;
    for (int64_t i = 0; i < ds->tokens.off[ds->n]; i++) info->trained += ds->loss_mask[i];
    return 0;
}

int dataset_info(const char *path, DatasetInfo *info, char *err, size_t errlen) {
    Dataset *ds = dataset_open(path, DATA_KIND_COUNT, err, errlen);
    if (!ds) return -1;
    *info = (DatasetInfo){.kind = ds->kind,
                          .fingerprint = ds->fingerprint,
                          .examples = ds->n,
                          .tokens = ds->n_tokens};
    lengths(ds, info);
    int rc = dataset_attribute(ds, "chat_template", info->chat_template,
                               sizeof(info->chat_template), err, errlen) < 0
                 ? -1
                 : trained(ds, info, err, errlen);
    dataset_free(ds);
    return rc;
}

void dataset_info_print(FILE *f, const char *path, const DatasetInfo *info) {
    char fp[17];
    dataset_fingerprint_hex(info->fingerprint, fp);
    fprintf(f, "%s\n", path);
    fprintf(f, "  kind        %s\n", data_kind_name(info->kind));
    fprintf(f, "  examples    %lld\n", (long long)info->examples);
    fprintf(f, "  tokens      %lld (%lld trained)\n", (long long)info->tokens,
            (long long)info->trained);
    if (info->kind == DATA_PROMPT) fprintf(f, "  references  %lld\n", (long long)info->references);
    if (info->kind == DATA_UNPAIRED)
        fprintf(f, "  desirable   %lld (undesirable %lld)\n", (long long)info->desirable,
                (long long)(info->examples - info->desirable));
    fprintf(f, "  length      p50 %lld  p90 %lld  p99 %lld  max %lld tokens\n",
            (long long)info->len_p50, (long long)info->len_p90, (long long)info->len_p99,
            (long long)info->len_max);
    fprintf(f, "  tokenizer   %s\n", fp);
    if (info->chat_template[0]) fprintf(f, "  template    %s\n", info->chat_template);
}

static void set_int(json_t *o, const char *key, int64_t v) {
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

char *dataset_info_json(const char *path, const DatasetInfo *info) {
    char fp[17];
    dataset_fingerprint_hex(info->fingerprint, fp);
    json_t *o = json_object(), *len = json_object();
    json_object_set_new(o, "file", json_string_nocheck(path)); // file names need not be UTF-8
    json_object_set_new(o, "kind", json_string(data_kind_name(info->kind)));
    set_int(o, "examples", info->examples);
    set_int(o, "tokens", info->tokens);
    set_int(o, "trained_tokens", info->trained);
    set_int(o, "references", info->references);
    if (info->kind == DATA_UNPAIRED) set_int(o, "desirable", info->desirable);
    set_int(len, "p50", info->len_p50);
    set_int(len, "p90", info->len_p90);
    set_int(len, "p99", info->len_p99);
    set_int(len, "max", info->len_max);
    json_object_set_new(o, "length", len);
    json_object_set_new(o, "tokenizer", json_string(fp));
    if (info->chat_template[0])
        json_object_set_new(o, "chat_template", json_string_nocheck(info->chat_template));
    char *s = json_dumps(o, JSON_PRESERVE_ORDER | JSON_COMPACT);
    json_decref(o);
    return s;
}
