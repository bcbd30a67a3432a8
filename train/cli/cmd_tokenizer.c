// train/cli/cmd_tokenizer.c: `layercake tokenizer`: train a byte-level BPE tokenizer on text
// files, and encode or decode with a trained tokenizer file or GPT-2's tokenizer folder.
#include "common/check.h"
#include "common/timer.h"
#include "data/tokenizer.h"
#include "train/cli/commands.h"
#include <errno.h>
#include "common/parse.h"
#include "train/cli/options.h"
#include <math.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char TOKENIZER_HELP[] =
    "a trained tokenizer file or a folder with GPT-2's encoder.json and vocab.bpe";

static const OptionsCommand TRAIN = {
    .name = "tokenizer train",
    .synopsis = "--vocab-size N --out FILE [--special TOKEN]... CORPUS...",
    .summary = "learn a byte-level BPE vocabulary from corpus files",
    .description =
        "Learns a byte-level BPE vocabulary of exactly N ids from the corpus files, with the "
        "special\n"
        "tokens <|endoftext|> <|system|> <|user|> <|assistant|> <|end|> and each --special TOKEN\n"
        "reserved; writes FILE (JSON, docs/tokenizer.md).\n",
    .args = "CORPUS",
    .min_args = 1,
    .max_args = -1};
static const OptionsCommand ENCODE = {
    .name = "tokenizer encode",
    .synopsis = "--tokenizer PATH [--allow-special] (TEXT | --file FILE)",
    .summary = "print the token ids of a text",
    .description =
        "Prints the token ids of TEXT (or of FILE's bytes, '-' for stdin, with the encoding speed\n"
        "on stderr), separated by spaces; special-token texts become their ids only with\n"
        "--allow-special.\n",
    .args = "TEXT",
    .max_args = 1};
static const OptionsCommand DECODE = {
    .name = "tokenizer decode",
    .synopsis = "--tokenizer PATH ID...",
    .summary = "write the bytes of token ids to stdout",
    .description = "Writes the bytes of the ids to stdout, exactly (no newline is added).\n",
    .args = "ID",
    .max_args = -1};

static Tokenizer *load_or_report(const char *path) {
    char err[1024];
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    if (!tok) fprintf(stderr, "layercake tokenizer: %s\n", err);
    return tok;
}

// ---- train -------------------------------------------------------------------------------------

static int train_and_save(char **files, int n_files, int vocab_size, const char **specials,
                          int n_specials, const char *out) {
    char err[1024];
    double t0 = time_now();
    Tokenizer *tok = tokenizer_train((const char *const *)files, n_files, vocab_size, specials,
                                     n_specials, err, sizeof(err));
    double seconds = time_now() - t0;
    if (!tok || tokenizer_save(tok, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake tokenizer: %s\n", err);
        tokenizer_free(tok);
        return 1;
    }
    printf("%s: vocab size %d, trained in %.2f s, fingerprint %016" PRIx64 "\n", out,
           tokenizer_vocab_size(tok), seconds, tokenizer_fingerprint(tok));
    tokenizer_free(tok);
    return 0;
}

static int tokenizer_train_main(int argc, char **argv) {
    int vocab_size = -1;
    const char *out = NULL;
    OptionList specials = {0};
    const Option opts[] = {
        {"vocab-size", 0, OPT_INT, &vocab_size, 0, INFINITY, true, "N", "ids in the vocabulary"},
        {"out", 0, OPT_STRING, &out, 0, 0, true, "FILE", "the tokenizer file to write"},
        {"special", 0, OPT_LIST, &specials, 0, 0, false, "TOKEN", "reserve a special token"},
        {0}};
    OptionsCommand cmd = TRAIN;
    cmd.options = opts;
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc == OPTIONS_CONTINUE)
        rc = train_and_save(args.v, args.n, vocab_size, specials.v, specials.n, out);
    options_list_free(&specials);
    return rc;
}

// ---- encode ------------------------------------------------------------------------------------

// Reads a whole file ("-": standard input); NULL with a message on stderr if it cannot.
static char *read_whole(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "layercake tokenizer: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, got;
    char *buf = lc_malloc(cap);
    *len = 0;
    while ((got = fread(buf + *len, 1, cap - *len, f)) > 0) {
        *len += got;
        if (*len == cap && !(buf = realloc(buf, cap *= 2)))
            LC_DIE("out of memory reading %s (%zu bytes)", path, cap);
    }
    if (ferror(f)) {
        fprintf(stderr, "layercake tokenizer: %s: %s\n", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    if (f != stdin) fclose(f);
    return buf;
}

static int encode_and_print(const char *path, const char *text, size_t len, bool allow_special,
                            bool timed) {
    Tokenizer *tok = load_or_report(path);
    if (!tok) return 1;
    int *ids;
    double t0 = time_now();
    int n = tokenizer_encode(tok, text, len, allow_special, &ids);
    double seconds = time_now() - t0;
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    if (timed)
        fprintf(stderr, "encoded %zu bytes into %d tokens in %.3f s (%.1f MB/s)\n", len, n, seconds,
                (double)len / 1e6 / (seconds > 0 ? seconds : 1e-9));
    free(ids);
    tokenizer_free(tok);
    return 0;
}

static int tokenizer_encode_main(int argc, char **argv) {
    const char *path = NULL, *file = NULL;
    bool allow_special = false;
    const Option opts[] = {
        {"tokenizer", 0, OPT_STRING, &path, 0, 0, true, "PATH", TOKENIZER_HELP},
        {"allow-special", 0, OPT_FLAG, &allow_special, 0, 0, false, NULL,
         "special-token texts become their ids"},
        {"file", 0, OPT_STRING, &file, 0, 0, false, "FILE", "encode FILE's bytes ('-': stdin)"},
        {0}};
    OptionsCommand cmd = ENCODE;
    cmd.options = opts;
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    if (file ? args.n != 0 : args.n != 1)
        return options_usage_error(&cmd, "needs either one TEXT or --file");
    if (!file) return encode_and_print(path, args.v[0], strlen(args.v[0]), allow_special, false);
    size_t len;
    char *text = read_whole(file, &len);
    if (!text) return 1;
    rc = encode_and_print(path, text, len, allow_special, true);
    free(text);
    return rc;
}

// ---- decode ------------------------------------------------------------------------------------

static int decode_and_print(const char *path, const int *ids, int n) {
    Tokenizer *tok = load_or_report(path);
    if (!tok) return 1;
    size_t len;
    char *text = tokenizer_decode(tok, ids, n, &len);
    if (text) fwrite(text, 1, len, stdout);
    for (int i = 0; i < n && !text; i++)
        if (ids[i] >= tokenizer_vocab_size(tok)) {
            fprintf(stderr, "layercake tokenizer: id %d is out of range: %s has %d ids\n", ids[i],
                    path, tokenizer_vocab_size(tok));
            break;
        }
    int status = text ? 0 : 1;
    free(text);
    tokenizer_free(tok);
    return status;
}

static int tokenizer_decode_main(int argc, char **argv) {
    const char *path = NULL;
    const Option opts[] = {{"tokenizer", 0, OPT_STRING, &path, 0, 0, true, "PATH", TOKENIZER_HELP},
                           {0}};
    OptionsCommand cmd = DECODE;
    cmd.options = opts;
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    int *ids = lc_malloc(((size_t)args.n + 1) * sizeof(int));
    for (int i = 0; i < args.n && rc == OPTIONS_CONTINUE; i++)
        if (parse_int(args.v[i], &ids[i]) != 0 || ids[i] < 0)
            rc = options_usage_error(&cmd, "'%s' is not a token id", args.v[i]);
    if (rc == OPTIONS_CONTINUE) rc = decode_and_print(path, ids, args.n);
    free(ids);
    return rc;
}

// ---- the command -------------------------------------------------------------------------------

int cmd_tokenizer(int argc, char **argv) {
    static const OptionsCommand *const SUBS[] = {&TRAIN, &ENCODE, &DECODE};
    static const OptionsMain RUN[] = {tokenizer_train_main, tokenizer_encode_main,
                                      tokenizer_decode_main};
    return options_dispatch("tokenizer", SUBS, RUN, 3, argc, argv);
}
