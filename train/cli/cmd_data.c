// train/cli/cmd_data.c: `layercake data`: import text and JSONL into HDF5 datasets, summarise a
// dataset (info), print one example decoded with its loss mask visible (show), and generate a
// built-in task world (synth, train/cli/cmd_synth.c).
#include "common/check.h"
#include "data/import.h"
#include "data/info.h"
#include "data/tokenizer.h"
#include "train/cli/commands.h"
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: layercake data import --kind KIND --tokenizer PATH --out FILE.h5 [options] INPUT...\n"
    "       layercake data info FILE.h5 [--json]\n"
    "       layercake data show FILE.h5 --index I --tokenizer PATH [--color WHEN]\n"
    "       layercake data synth --task NAME --out DIR [options]\n"
    "\n"
    "  import   tokenize INPUT files into a dataset of KIND (lm, sft, preference, prompt).\n"
    "           *.jsonl, *.json and *.ndjson inputs are JSONL, one example per line, in any of\n"
    "           the formats of docs/datasets.md; other files are plain text (lm only).\n"
    "           --max-len N        longest example in tokens (default 1024): longer sft,\n"
    "                              preference and prompt examples are dropped, longer lm\n"
    "                              documents are cut into pieces\n"
    "           --val-fraction F   send a share F of the examples, chosen by a hash of their\n"
    "                              tokens, to FILE-val.h5 (default 0: no validation file)\n"
    "           --seed S           mixed into that hash (default 0)\n"
    "           --skip-bad         skip malformed JSONL lines and count them, instead of\n"
    "                              stopping at the first\n"
    "           --split-blank N    plain text: N or more blank lines end a document (default\n"
    "                              0: each file is one document)\n"
    "  info     print kind, examples, tokens, length percentiles and tokenizer fingerprint\n"
    "           (--json: one JSON object)\n"
    "  show     print example I decoded; trained tokens (those the loss sees) are normal and\n"
    "           the others dim on a terminal, or trained ones are wrapped in [[ ]] otherwise\n"
    "           (--color auto, always or never; default auto)\n"
    "  synth    generate a built-in task world with an exact gold reward: its tokenizer and\n"
    "           every dataset a recipe needs (layercake data synth --help)\n"
    "\n"
    "PATH is a trained tokenizer file or a folder with GPT-2's encoder.json and vocab.bpe.\n";

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "layercake data: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", USAGE);
    return 2;
}

static int help(void) {
    printf("%s", USAGE);
    return 0;
}

static bool parse_i64(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < 0) return false;
    *out = v;
    return true;
}

static bool parse_fraction(const char *s, double *out) {
    char *end;
    *out = strtod(s, &end);
    return end != s && *end == '\0';
}

static Tokenizer *tokenizer_or_report(const char *path) {
    char err[1024];
    Tokenizer *tok = tokenizer_load(path, err, sizeof(err));
    if (!tok) fprintf(stderr, "layercake data: %s\n", err);
    return tok;
}

// ---- import --------------------------------------------------------------------------------

static void import_report(const ImportOptions *o, const ImportStats *st) {
    char val[4096];
    import_val_path(o->out, val, sizeof(val));
    printf("wrote %s: %lld examples, %lld tokens (%s)\n", o->out, (long long)st->examples[0],
           (long long)st->tokens[0], data_kind_name(o->kind));
    if (o->val_fraction > 0)
        printf("wrote %s: %lld examples, %lld tokens\n", val, (long long)st->examples[1],
               (long long)st->tokens[1]);
    double s = st->seconds > 0 ? st->seconds : 1e-9;
    printf("read %.2f MB in %.2f s: %.1f MB/s, %.2f M tokens/s\n", (double)st->bytes / 1e6,
           st->seconds, (double)st->bytes / 1e6 / s,
           (double)(st->tokens[0] + st->tokens[1]) / 1e6 / s);
    printf("%lld JSONL lines, %lld documents; skipped %lld malformed lines; dropped %lld "
           "examples and split %lld documents longer than %lld tokens\n",
           (long long)st->lines, (long long)st->documents, (long long)st->skipped,
           (long long)st->dropped, (long long)st->split, (long long)o->max_len);
    if (st->skipped) printf("first skipped: %s\n", st->first_skip);
}

static int import_main(int argc, char **argv) {
    static const struct option opts[] = {{"kind", required_argument, NULL, 'k'},
                                         {"tokenizer", required_argument, NULL, 't'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"max-len", required_argument, NULL, 'm'},
                                         {"val-fraction", required_argument, NULL, 'v'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"skip-bad", no_argument, NULL, 'b'},
                                         {"split-blank", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    ImportOptions o = {.kind = DATA_KIND_COUNT, .max_len = 1024};
    const char *tok_path = NULL;
    int64_t seed = 0, split = 0;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'k' && data_kind_parse(optarg, &o.kind) < 0)
            return usage_error("import: --kind is lm, sft, preference or prompt, not '%s'", optarg);
        if (c == 't') tok_path = optarg;
        if (c == 'o') o.out = optarg;
        if (c == 'm' && !parse_i64(optarg, &o.max_len))
            return usage_error("import: --max-len needs a number, not '%s'", optarg);
        if (c == 'v' && !parse_fraction(optarg, &o.val_fraction))
            return usage_error("import: --val-fraction needs a number, not '%s'", optarg);
        if (c == 's' && !parse_i64(optarg, &seed))
            return usage_error("import: --seed needs a number, not '%s'", optarg);
        if (c == 'b') o.skip_bad = 1;
        if (c == 'p' && (!parse_i64(optarg, &split) || split > 1000000))
            return usage_error("import: --split-blank needs a number, not '%s'", optarg);
        if (c == 'h') return help();
        if (c == '?')
            return usage_error("import: unknown option or missing value in '%s'", argv[optind - 1]);
    }
    if (o.kind == DATA_KIND_COUNT || !tok_path || !o.out || optind >= argc)
        return usage_error("import needs --kind, --tokenizer, --out and an input file%s", "");
    o.seed = (uint64_t)seed;
    o.split_blank = (int)split;
    Tokenizer *tok = tokenizer_or_report(tok_path);
    if (!tok) return 1;
    o.tok = tok;
    ImportStats st;
    char err[1024];
    int rc =
        import_run(&o, (const char *const *)argv + optind, argc - optind, &st, err, sizeof(err));
    if (rc == 0)
        import_report(&o, &st);
    else
        fprintf(stderr, "layercake data import: %s\n", err);
    tokenizer_free(tok);
    return rc == 0 ? 0 : 1;
}

// ---- info ----------------------------------------------------------------------------------

static int info_main(int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') json = true;
        if (c == 'h') return help();
        if (c == '?')
            return usage_error("info: unknown option or missing value in '%s'", argv[optind - 1]);
    }
    if (optind != argc - 1) return usage_error("info needs one dataset file%s", "");
    const char *path = argv[optind];
    DatasetInfo info;
    char err[1024];
    if (dataset_info(path, &info, err, sizeof(err)) < 0) {
        fprintf(stderr, "layercake data info: %s\n", err);
        return 1;
    }
    if (json) {
        char *s = dataset_info_json(path, &info);
        printf("%s\n", s);
        free(s);
    } else {
        dataset_info_print(stdout, path, &info);
    }
    return 0;
}

// ---- show ----------------------------------------------------------------------------------

// Prints ids[0..n) decoded, and a newline.
static void print_text(const Tokenizer *tok, const int *ids, int64_t n) {
    size_t len;
    char *text = tokenizer_decode(tok, ids, (int)n, &len);
    LC_ASSERT(text != NULL); // ids were checked against the vocabulary on load
    fwrite(text, 1, len, stdout);
    putchar('\n');
    free(text);
}

// Prints ids[0..n) decoded, a run of equal mask values at a time (m NULL: all value m0), with
// trained runs marked.
static void print_masked(const Tokenizer *tok, const int *ids, const uint8_t *m, uint8_t m0,
                         int64_t n, bool color) {
    for (int64_t i = 0; i < n;) {
        uint8_t v = m ? m[i] : m0;
        int64_t j = i;
        while (j < n && (m ? m[j] : m0) == v) j++;
        size_t len;
        char *text = tokenizer_decode(tok, ids + i, (int)(j - i), &len);
        LC_ASSERT(text != NULL); // ids were checked against the vocabulary on load
        const char *open = v ? (color ? "" : "[[") : (color ? "\033[2m" : "");
        const char *close = v ? (color ? "" : "]]") : (color ? "\033[0m" : "");
        fputs(open, stdout);
        fwrite(text, 1, len, stdout);
        fputs(close, stdout);
        free(text);
        i = j;
    }
}

static void show_example(const Dataset *ds, const Tokenizer *tok, int64_t i, bool color) {
    Example ex = dataset_example(ds, i);
    printf("example %lld of %lld (%s)\n", (long long)i, (long long)ds->n, data_kind_name(ds->kind));
    if (ds->kind == DATA_LM) {
        print_text(tok, ex.tokens, ex.n_tokens);
    } else if (ds->kind == DATA_SFT) {
        print_masked(tok, ex.tokens, ex.loss_mask, 0, ex.n_tokens, color);
        putchar('\n');
    } else if (ds->kind == DATA_PREFERENCE) {
        const char *names[2] = {"chosen", "rejected"};
        const int *resp[2] = {ex.chosen, ex.rejected};
        int64_t n[2] = {ex.n_chosen, ex.n_rejected};
        for (int k = 0; k < 2; k++) {
            printf("=== %s\n", names[k]);
            print_masked(tok, ex.tokens, NULL, 0, ex.n_tokens, color);
            print_masked(tok, resp[k], NULL, 1, n[k], color);
            putchar('\n');
        }
    } else {
        printf("=== prompt\n");
        print_text(tok, ex.tokens, ex.n_tokens);
        printf("=== reference\n");
        if (ex.n_reference_text)
            printf("%.*s\n", (int)ex.n_reference_text, ex.reference_text);
        else
            print_text(tok, ex.reference, ex.n_reference);
    }
}

static int show_checked(const char *path, int64_t index, const char *tok_path, bool color) {
    char err[1024];
    Dataset *ds = dataset_open(path, DATA_KIND_COUNT, err, sizeof(err));
    Tokenizer *tok = ds ? tokenizer_or_report(tok_path) : NULL;
    int rc = 1;
    if (!ds || !tok) {
        if (!ds) fprintf(stderr, "layercake data show: %s\n", err);
    } else if (dataset_check_fingerprint(ds, tokenizer_fingerprint(tok), err, sizeof(err)) < 0 ||
               dataset_load(ds, tokenizer_vocab_size(tok), err, sizeof(err)) < 0) {
        fprintf(stderr, "layercake data show: %s\n", err);
    } else if (index >= ds->n) {
        fprintf(stderr, "layercake data show: %s: --index %lld is out of range (%lld examples)\n",
                path, (long long)index, (long long)ds->n);
    } else {
        show_example(ds, tok, index, color);
        rc = 0;
    }
    tokenizer_free(tok);
    dataset_free(ds);
    return rc;
}

static int show_main(int argc, char **argv) {
    static const struct option opts[] = {{"index", required_argument, NULL, 'i'},
                                         {"tokenizer", required_argument, NULL, 't'},
                                         {"color", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *tok_path = NULL, *when = "auto";
    int64_t index = -1;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'i' && !parse_i64(optarg, &index))
            return usage_error("show: --index needs a number, not '%s'", optarg);
        if (c == 't') tok_path = optarg;
        if (c == 'c') when = optarg;
        if (c == 'h') return help();
        if (c == '?')
            return usage_error("show: unknown option or missing value in '%s'", argv[optind - 1]);
    }
    if (optind != argc - 1 || index < 0 || !tok_path)
        return usage_error("show needs one dataset file, --index and --tokenizer%s", "");
    if (strcmp(when, "auto") != 0 && strcmp(when, "always") != 0 && strcmp(when, "never") != 0)
        return usage_error("show: --color is auto, always or never, not '%s'", when);
    bool color = strcmp(when, "always") == 0 || (strcmp(when, "auto") == 0 && isatty(1));
    return show_checked(argv[optind], index, tok_path, color);
}

// ---- the command ---------------------------------------------------------------------------

int cmd_data(int argc, char **argv) {
    if (argc < 2) return usage_error("which one: import, info, show or synth?%s", "");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0)
        return help();
    if (strcmp(sub, "import") == 0) return import_main(argc - 1, argv + 1);
    if (strcmp(sub, "info") == 0) return info_main(argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0) return show_main(argc - 1, argv + 1);
    if (strcmp(sub, "synth") == 0) return cmd_synth(argc - 1, argv + 1);
    return usage_error("unknown subcommand '%s'", sub);
}
