// train/cli/cmd_data.c: `layercake data`: import text and JSONL into HDF5 datasets, summarise a
// dataset (info), print one example decoded with its loss mask visible (show), and generate a
// built-in task world (synth, train/cli/cmd_synth.c). Each subcommand has its option table.
#include "common/check.h"
#include "data/chat.h"
#include "data/import.h"
#include "data/info.h"
#include "data/tokenizer.h"
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char TOKENIZER_HELP[] =
    "a trained tokenizer file or a folder with GPT-2's encoder.json and vocab.bpe";

static const OptionsCommand IMPORT = {
    .name = "data import",
    .synopsis = "--kind KIND --tokenizer PATH --out FILE.h5 [options] INPUT...",
    .summary = "tokenize text and JSONL files into a dataset of KIND (lm, sft, preference, prompt, "
               "unpaired)",
    .description =
        "Tokenizes INPUT files into a dataset. *.jsonl, *.json and *.ndjson inputs are JSONL,\n"
        "one example per line, in any of the formats of docs/datasets.md; other files are plain\n"
        "text (lm only). Longer sft, preference, prompt and unpaired examples than --max-len are\n"
        "dropped, longer lm documents are cut into pieces. --val-fraction sends a share of the\n"
        "examples, chosen by a hash of their tokens (and --seed; unpaired: of the prompt), to\n"
        "FILE-val.h5. --chat-template picks how the chat formats (messages, HH-RLHF\n"
        "transcripts, Self-Instruct) are rendered (docs/chat-templates.md); the dataset\n"
        "records it.\n",
    .args = "INPUT",
    .min_args = 1,
    .max_args = -1};
static const OptionsCommand INFO = {
    .name = "data info",
    .synopsis = "FILE.h5 [--json]",
    .summary = "print kind, examples, tokens, length percentiles and tokenizer fingerprint",
    .args = "FILE.h5",
    .min_args = 1,
    .max_args = 1};
static const OptionsCommand SHOW = {
    .name = "data show",
    .synopsis = "FILE.h5 --index I --tokenizer PATH [--color WHEN]",
    .summary = "print example I decoded, with the tokens the loss sees marked",
    .description =
        "Prints example I decoded; trained tokens (those the loss sees) are normal and the others\n"
        "dim on a terminal, or trained ones are wrapped in [[ ]] otherwise.\n",
    .args = "FILE.h5",
    .min_args = 1,
    .max_args = 1};

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

// Returns OPTIONS_CONTINUE or the exit status (0 after --help, 2 for a bad command line).
static int import_parse(int argc, char **argv, ImportOptions *o, const char **tok_path,
                        OptionArgs *args) {
    const char *kind = NULL;
    bool skip_bad = false;
    const Option opts[] = {
        {"kind", 0, OPT_STRING, &kind, 0, 0, true, "KIND",
         "lm, sft, preference, prompt or unpaired"},
        {"tokenizer", 0, OPT_STRING, tok_path, 0, 0, true, "PATH", TOKENIZER_HELP},
        {"out", 0, OPT_STRING, &o->out, 0, 0, true, "FILE.h5", "the dataset to write"},
        {"max-len", 0, OPT_INT64, &o->max_len, 1, INFINITY, false, "N",
         "longest example in tokens (default 1024)"},
        {"val-fraction", 0, OPT_DOUBLE, &o->val_fraction, 0, 1, false, "F",
         "share of examples for FILE-val.h5 (default 0: none)"},
        {"seed", 0, OPT_U64, &o->seed, 0, 0, false, "S", "mixed into that hash (default 0)"},
        {"skip-bad", 0, OPT_FLAG, &skip_bad, 0, 0, false, NULL,
         "skip malformed JSONL lines and count them, instead of stopping"},
        {"split-blank", 0, OPT_INT, &o->split_blank, 0, 1000000, false, "N",
         "plain text: N or more blank lines end a document (default 0: a file is one)"},
        {"chat-template", 0, OPT_STRING, &o->chat_template, 0, 0, false, "NAME",
         "chat formats: auto, chatml, llama3, llama2, zephyr, hh, plain or roles (default auto)"},
        {0}};
    OptionsCommand cmd = IMPORT;
    cmd.options = opts;
    int rc = options_parse(&cmd, argc, argv, args);
    o->skip_bad = skip_bad;
    char err[1024];
    ChatTemplate t;
    if (rc == OPTIONS_CONTINUE && data_kind_parse(kind, &o->kind) < 0)
        rc = options_usage_error(
            &cmd, "--kind: '%s' is not lm, sft, preference, prompt or unpaired", kind);
    else if (rc == OPTIONS_CONTINUE && chat_template_parse(o->chat_template, &t, err, sizeof(err)))
        rc = options_usage_error(&cmd, "--chat-template: %s", err);
    else if (rc == OPTIONS_CONTINUE &&
             import_check_outputs(o, (const char *const *)args->v, args->n, err, sizeof(err)) < 0)
        rc = options_usage_error(&cmd, "%s", err);
    return rc;
}

static int import_main(int argc, char **argv) {
    ImportOptions o = {.kind = DATA_KIND_COUNT, .max_len = 1024};
    const char *tok_path = NULL;
    OptionArgs args;
    int rc = import_parse(argc, argv, &o, &tok_path, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    Tokenizer *tok = tokenizer_or_report(tok_path);
    if (!tok) return 1;
    o.tok = tok;
    o.model_chat_template = tokenizer_chat_template(tok); // the model's own, for auto
    ImportStats st;
    char err[1024];
    rc = import_run(&o, (const char *const *)args.v, args.n, &st, err, sizeof(err));
    tokenizer_free(tok);
    if (rc == 0)
        import_report(&o, &st);
    else
        fprintf(stderr, "layercake data import: %s\n", err);
    return rc == 0 ? 0 : rc == IMPORT_ERR_USAGE ? 2 : 1;
}

// ---- info ----------------------------------------------------------------------------------

static int info_main(int argc, char **argv) {
    bool json = false;
    const Option opts[] = {{"json", 0, OPT_FLAG, &json, 0, 0, false, NULL, "print one JSON object"},
                           {0}};
    OptionsCommand cmd = INFO;
    cmd.options = opts;
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    const char *path = args.v[0];
    DatasetInfo info;
    char err[1024];
    if (dataset_info(path, &info, err, sizeof(err)) < 0) {
        fprintf(stderr, "layercake data info: %s\n", err);
        return 1;
    }
    if (json) {
        char *text = dataset_info_json(path, &info);
        printf("%s\n", text);
        free(text);
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
    } else if (ds->kind == DATA_UNPAIRED) {
        printf("=== %s\n", ex.label ? "desirable" : "undesirable");
        print_masked(tok, ex.tokens, NULL, 0, ex.n_tokens, color);
        print_masked(tok, ex.completion, NULL, 1, ex.n_completion, color);
        putchar('\n');
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
    const char *tok_path = NULL, *when = "auto";
    int64_t index = -1;
    const Option opts[] = {
        {"index", 0, OPT_INT64, &index, 0, INFINITY, true, "I", "the example, from 0"},
        {"tokenizer", 0, OPT_STRING, &tok_path, 0, 0, true, "PATH", TOKENIZER_HELP},
        {"color", 0, OPT_STRING, &when, 0, 0, false, "WHEN",
         "auto, always or never (default auto)"},
        {0}};
    OptionsCommand cmd = SHOW;
    cmd.options = opts;
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    if (strcmp(when, "auto") != 0 && strcmp(when, "always") != 0 && strcmp(when, "never") != 0)
        return options_usage_error(&cmd, "--color: '%s' is not auto, always or never", when);
    bool color = strcmp(when, "always") == 0 || (strcmp(when, "auto") == 0 && isatty(1));
    return show_checked(args.v[0], index, tok_path, color);
}

// ---- the command ---------------------------------------------------------------------------

int cmd_data(int argc, char **argv) {
    static const OptionsCommand *const SUBS[] = {&IMPORT, &INFO, &SHOW, &CMD_SYNTH};
    static const OptionsMain RUN[] = {import_main, info_main, show_main, cmd_synth};
    return options_dispatch("data", SUBS, RUN, 4, argc, argv);
}
