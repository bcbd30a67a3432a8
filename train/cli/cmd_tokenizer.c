// train/cli/cmd_tokenizer.c: `layercake tokenizer`: train a byte-level BPE tokenizer on text
// files, and encode or decode with a trained tokenizer file or GPT-2's tokenizer folder.
#include "common/check.h"
#include "common/timer.h"
#include "data/tokenizer.h"
#include "train/cli/commands.h"
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: layercake tokenizer train --vocab-size N --out FILE [--special TOKEN]... CORPUS...\n"
    "       layercake tokenizer encode --tokenizer PATH [--allow-special] (TEXT | --file FILE)\n"
    "       layercake tokenizer decode --tokenizer PATH ID...\n"
    "\n"
    "  train    learn a byte-level BPE vocabulary of exactly N ids from the corpus files, with\n"
    "           the special tokens <|endoftext|> <|system|> <|user|> <|assistant|> <|end|> and\n"
    "           each --special TOKEN reserved; writes FILE (JSON, docs/tokenizer.md)\n"
    "  encode   print the token ids of TEXT (or of FILE's bytes, '-' for stdin, with the\n"
    "           encoding speed on stderr), separated by spaces; special-token texts become\n"
    "           their ids only with --allow-special\n"
    "  decode   write the bytes of the ids to stdout, exactly (no newline is added)\n"
    "\n"
    "PATH is a trained tokenizer file or a folder with GPT-2's encoder.json and vocab.bpe.\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "layercake tokenizer: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n\n%s", USAGE);
    va_end(ap);
    return 2;
}

static int help(void) {
    printf("%s", USAGE);
    return 0;
}

static Tokenizer *load_or_report(const char *path) {
    char err[1024];
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    if (!tok) fprintf(stderr, "layercake tokenizer: %s\n", err);
    return tok;
}

// Parses a non-negative int; false if s is not one.
static bool parse_int(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0 || v > INT_MAX) return false;
    *out = (int)v;
    return true;
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
    static const struct option opts[] = {{"vocab-size", required_argument, NULL, 'v'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"special", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int vocab_size = -1, n_specials = 0, c;
    const char *out = NULL;
    const char **specials = lc_calloc((size_t)argc + 1, sizeof(*specials));
    int status = -1;
    optind = 0;
    opterr = 0;
    while (status < 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'v' && !parse_int(optarg, &vocab_size))
            status = usage_error("train: --vocab-size needs a number, not '%s'", optarg);
        else if (c == 'o')
            out = optarg;
        else if (c == 's')
            specials[n_specials++] = optarg;
        else if (c == 'h')
            status = help();
        else if (c == '?')
            status =
                usage_error("train: unknown option or missing value in '%s'", argv[optind - 1]);
    }
    if (status < 0 && (vocab_size < 0 || !out || optind >= argc))
        status = usage_error("train needs --vocab-size, --out and a corpus file");
    if (status < 0)
        status =
            train_and_save(argv + optind, argc - optind, vocab_size, specials, n_specials, out);
    free(specials);
    return status;
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

static int encode_and_print(const char *path, const char *text, size_t len, int allow_special,
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
    static const struct option opts[] = {{"tokenizer", required_argument, NULL, 't'},
                                         {"allow-special", no_argument, NULL, 'a'},
                                         {"file", required_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL, *file = NULL;
    int allow_special = 0, c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't') path = optarg;
        if (c == 'a') allow_special = 1;
        if (c == 'f') file = optarg;
        if (c == 'h') return help();
        if (c == '?')
            return usage_error("encode: unknown option or missing value in '%s'", argv[optind - 1]);
    }
    int n_text = argc - optind;
    if (!path || (file ? n_text != 0 : n_text != 1))
        return usage_error("encode needs --tokenizer and either one TEXT or --file");
    if (!file)
        return encode_and_print(path, argv[optind], strlen(argv[optind]), allow_special, false);
    size_t len;
    char *text = read_whole(file, &len);
    if (!text) return 1;
    int status = encode_and_print(path, text, len, allow_special, true);
    free(text);
    return status;
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
    static const struct option opts[] = {{"tokenizer", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't') path = optarg;
        if (c == 'h') return help();
        if (c == '?')
            return usage_error("decode: unknown option or missing value in '%s'", argv[optind - 1]);
    }
    if (!path) return usage_error("decode needs --tokenizer");
    int n = argc - optind;
    int *ids = lc_malloc(((size_t)n + 1) * sizeof(int));
    for (int i = 0; i < n; i++) {
        if (!parse_int(argv[optind + i], &ids[i])) {
            free(ids);
            return usage_error("decode: '%s' is not a token id", argv[optind + i]);
        }
    }
    int status = decode_and_print(path, ids, n);
    free(ids);
    return status;
}

// ---- the command -------------------------------------------------------------------------------

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2) return usage_error("which one: train, encode or decode?");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0)
        return help();
    if (strcmp(sub, "train") == 0) return tokenizer_train_main(argc - 1, argv + 1);
    if (strcmp(sub, "encode") == 0) return tokenizer_encode_main(argc - 1, argv + 1);
    if (strcmp(sub, "decode") == 0) return tokenizer_decode_main(argc - 1, argv + 1);
    return usage_error("unknown subcommand '%s'", sub);
}
