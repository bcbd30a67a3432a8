// tests/fuzz/fuzz_jsonl.c: libFuzzer harness for the JSONL line importer (data/import_json.c
// through the importer's internal header). The first byte of an input picks the dataset kind
// (bits 0-1: lm, sft, preference, prompt; bit 4 set: unpaired instead), the tokenizer (bit 2:
// GPT-2's, or a small trained one with chat role tokens) and --max-len (bit 3: 8 tokens, else
// 1024); the rest is one line.
// Examples are appended to scratch datasets that are never closed. tests/fuzz/run.sh builds
// and runs it.
#include "data/import-impl.h"
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KINDS 5

static Tokenizer *toks[2];               // GPT-2's; trained, with role tokens
static DatasetWriter *writers[2][KINDS]; // one scratch file per tokenizer and kind
static ImportOptions opts[2][2][KINDS];  // [tokenizer][short max_len][kind]
static ImportStats stats;

static void die(const char *what, const char *err) {
    fprintf(stderr, "fuzz_jsonl: %s: %s\n", what, err);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char err[1024], dir[] = "/tmp/lc-fuzz-jsonl-XXXXXX", path[PATH_MAX];
    const char *corpus[] = {LC_SOURCE_DIR "/tests/fixtures/doc_a.txt"};
    if (!mkdtemp(dir)) abort();
    if (!(toks[0] = tokenizer_load(LC_SOURCE_DIR "/samples/gpt2-tokenizer", err, sizeof(err))))
        die("GPT-2 tokenizer", err);
    if (!(toks[1] = tokenizer_train(corpus, 1, 300, NULL, 0, err, sizeof(err))))
        die("trained tokenizer", err);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < KINDS; k++) {
            snprintf(path, sizeof(path), "%s/%d-%d.h5", dir, t, k);
            writers[t][k] =
                dataset_create(path, (DataKind)k, tokenizer_fingerprint(toks[t]), err, sizeof(err));
            if (!writers[t][k]) die(path, err);
            for (int s = 0; s < 2; s++)
                opts[t][s][k] =
                    (ImportOptions){.kind = (DataKind)k, .tok = toks[t], .max_len = s ? 8 : 1024};
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int kind = data[0] & 16 ? DATA_UNPAIRED : data[0] & 3, t = (data[0] >> 2) & 1,
        s = (data[0] >> 3) & 1;
    Importer im = {.o = &opts[t][s][kind], .st = &stats, .chat = chat_init(toks[t])};
    im.w[0] = writers[t][kind];
    int rc = import_json_line(&im, (const char *)data + 1, size - 1);
    if (rc != LINE_OK && !im.why[0]) {
        fprintf(stderr, "a line failed (%d) without saying why\n", rc);
        abort();
    }
    tokenbuf_free(&im.p.ctx);
    tokenbuf_free(&im.p.resp[0]);
    tokenbuf_free(&im.p.resp[1]);
    tokenbuf_free(&im.seq);
    free(im.msgs[0]);
    free(im.msgs[1]);
    free(im.text);
    return 0;
}
