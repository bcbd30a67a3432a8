// train/cli/cmd_logits.c: `layercake logits MODEL --ids 1,2,3`: one forward pass over a
// sequence and the logits and log-softmax at every position, for comparing a model with
// another implementation (an imported model with transformers or llama2.c).
#include "common/check.h"
#include "common/parse.h"
#include "data/tokenizer.h"
#include "model/hf.h"
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include "train/run/run.h"
#include "train/run/state.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *model, *ids, *text, *tokenizer;
    bool json;
    int top;
} LogitsArgs;

static const char DESCRIPTION[] =
    "Runs MODEL (a layercake checkpoint or a Hugging Face folder) once over a sequence: the\n"
    "ids of --ids (comma-separated), or BOS (when the tokenizer has one) and the tokens of\n"
    "--text under --tokenizer (default: the tokenizer the checkpoint records, or the folder's\n"
    "own). Prints, for every position, the --top "
    "K next tokens\n"
    "with their logit and log-probability (log-softmax over the vocabulary); --json prints\n"
    "{\"ids\": [...], \"logits\": [[...], ...], \"logprobs\": [[...], ...]} with every\n"
    "position's full rows instead.\n";

static int parse(int argc, char **argv, LogitsArgs *a, OptionsCommand *cmd) {
    *a = (LogitsArgs){.top = 5};
    static Option opts[] = {
        {"ids", 0, OPT_STRING, NULL, 0, 0, false, "ID,ID,...", "the token ids"},
        {"text", 0, OPT_STRING, NULL, 0, 0, false, "TEXT", "a text to tokenize instead"},
        {"tokenizer", 0, OPT_STRING, NULL, 0, 0, false, "PATH",
         "the tokenizer of --text, and of the tokens printed"},
        {"json", 0, OPT_FLAG, NULL, 0, 0, false, NULL, "print every logit as JSON"},
        {"top", 'k', OPT_INT, NULL, 1, INFINITY, false, "K", "tokens per position (default 5)"},
        {0}};
    void *where[] = {&a->ids, &a->text, &a->tokenizer, &a->json, &a->top};
    for (int i = 0; opts[i].name; i++) opts[i].value = where[i];
    *cmd = (OptionsCommand){.name = "logits",
                            .synopsis = "MODEL (--ids ID,ID,... | --text TEXT) [options]",
                            .summary = "print a model's logits over a sequence",
                            .description = DESCRIPTION,
                            .options = opts,
                            .args = "MODEL",
                            .min_args = 1,
                            .max_args = 1};
    OptionArgs args;
    int rc = options_parse(cmd, argc, argv, &args);
    if (rc != OPTIONS_CONTINUE) return rc;
    a->model = args.v[0];
    if (!a->ids == !a->text) return options_usage_error(cmd, "give one of --ids and --text");
    return OPTIONS_CONTINUE;
}

// Parses "1,2,3" into a malloc'd array; returns the count, or -1 after a usage error.
static int parse_ids(const OptionsCommand *cmd, const char *s, int **out) {
    int n = 1, k = 0;
    for (const char *p = s; *p; p++) n += *p == ',';
    int *ids = lc_malloc(sizeof(int) * (size_t)n);
    char buf[64];
    for (const char *p = s;; k++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(buf, sizeof(buf), "%.*s", (int)(len < sizeof(buf) ? len : sizeof(buf) - 1), p);
        if (len >= sizeof(buf) || parse_int(buf, &ids[k]) != 0 || ids[k] < 0) {
            options_usage_error(cmd, "--ids: '%.*s' is not a token id", (int)len, p);
            free(ids);
            return -1;
        }
        if (!end) break;
        p = end + 1;
    }
    *out = ids;
    return n;
}

// The tokenizer: --tokenizer, or the one a checkpoint records (checked against it); NULL when
// neither is there (with a message when one should have been).
static Tokenizer *tokenizer_for(LogitsArgs *a, bool needed, char *path, size_t len) {
    char err[2048];
    needed = needed || a->tokenizer; // one given on the command line must load
    bool folder = hf_is_folder(a->model);
    if (!a->tokenizer) { // a folder's own tokenizer files, or the one a checkpoint records
        if (folder) {
            snprintf(path, len, "%s", a->model);
        } else if (state_tokenizer_path(a->model, path, len) != 0) {
            if (needed)
                fprintf(stderr, "layercake logits: %s records no tokenizer; pass --tokenizer\n",
                        a->model);
            return NULL;
        }
        a->tokenizer = path;
    }
    Tokenizer *tok = tokenizer_load(a->tokenizer, err, sizeof(err));
    CheckpointInfo ci;
    if (tok && !folder &&
        (run_checkpoint_info(a->model, &ci, err, sizeof(err)) != 0 ||
         run_check_tokenizer(a->model, &ci, a->tokenizer, tok, err, sizeof(err)) != 0)) {
        tokenizer_free(tok);
        tok = NULL;
    }
    if (!tok && needed) fprintf(stderr, "layercake logits: %s\n", err);
    return tok;
}

// The ids of text: [BOS,] its tokens, as generate and the importers start a plain prompt
// (docs/datasets.md) and as Llama-family models were trained.
static int text_ids(const Tokenizer *tok, const char *text, int **out) {
    int *ids = NULL, n = tokenizer_encode(tok, text, strlen(text), 1, &ids);
    int bos = tokenizer_bos(tok);
    if (n == 0 || bos < 0) {
        *out = ids;
        return n;
    }
    *out = lc_malloc(sizeof(int) * (size_t)(n + 1));
    (*out)[0] = bos;
    memcpy(*out + 1, ids, sizeof(int) * (size_t)n);
    free(ids);
    return n + 1;
}

// A token's bytes as a quoted string with escapes.
static void print_token(const Tokenizer *tok, int id) {
    size_t len;
    const char *s = tok ? tokenizer_token(tok, id, &len) : NULL;
    if (!s) return;
    printf("  \"");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch == '\n')
            printf("\\n");
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\x%02x", ch);
        else
            putchar(ch);
    }
    printf("\"");
}

// log-sum-exp of z (V) in double.
static double lse(const float *z, int V) {
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)z[v] - mx);
    return mx + log(s);
}

static void print_json(const int *ids, int n, const float *logits, int V, int Vp) {
    printf("{\"ids\": [");
    for (int t = 0; t < n; t++) printf(t ? ", %d" : "%d", ids[t]);
    for (int pass = 0; pass < 2; pass++) {
        printf("], \"%s\": [", pass ? "logprobs" : "logits");
        for (int t = 0; t < n; t++) {
            const float *z = logits + (size_t)t * Vp;
            double l = pass ? lse(z, V) : 0.0;
            printf(t ? ", [" : "[");
            for (int v = 0; v < V; v++)
                printf(v ? ", %.9g" : "%.9g", pass ? (double)z[v] - l : (double)z[v]);
            printf("]");
        }
    }
    printf("]}\n");
}

static void print_top(const int *ids, int n, const float *logits, int V, int Vp, int K,
                      const Tokenizer *tok) {
    int *best = lc_malloc(sizeof(int) * (size_t)K);
    if (K > V) K = V;
    for (int t = 0; t < n; t++) {
        const float *z = logits + (size_t)t * Vp;
        double l = lse(z, V);
        int k = 0;
        for (int v = 0; v < V; v++) { // insertion into the K best so far; ties keep the lower id
            if (k == K && !(z[v] > z[best[K - 1]])) continue;
            int at = k < K ? k++ : K - 1;
            while (at > 0 && z[v] > z[best[at - 1]]) best[at] = best[at - 1], at--;
            best[at] = v;
        }
        printf("position %d, id %d", t, ids[t]);
        print_token(tok, ids[t]);
        printf("\n");
        for (int i = 0; i < k; i++) {
            printf("  %8d  logit %12.6f  logprob %12.6f", best[i], (double)z[best[i]],
                   (double)z[best[i]] - l);
            print_token(tok, best[i]);
            printf("\n");
        }
    }
    free(best);
}

int cmd_logits(int argc, char **argv) {
    LogitsArgs a;
    OptionsCommand cmd;
    int rc = parse(argc, argv, &a, &cmd);
    if (rc != OPTIONS_CONTINUE) return rc;
    int *ids = NULL, n = 0;
    if (a.ids && (n = parse_ids(&cmd, a.ids, &ids)) < 0) return 2;
    char err[2048], tokpath[4096];
    bool needed = a.text || a.tokenizer;
    Tokenizer *tok = tokenizer_for(&a, a.text != NULL, tokpath, sizeof(tokpath));
    if (needed && !tok) {
        free(ids);
        return 1;
    }
    if (a.text) n = text_ids(tok, a.text, &ids);
    if (n == 0) {
        tokenizer_free(tok);
        free(ids);
        return options_usage_error(&cmd, "--text: '%s' has no tokens", a.text);
    }
    Model *m = hf_model_load_any(backend_cpu(), a.model, MODEL_HEAD_LM, MODEL_INFER, 1, n, 0, err,
                                 sizeof(err));
    if (!m) {
        fprintf(stderr, "layercake logits: %s\n", err);
        rc = 1;
    } else if (n > m->cfg.max_seq_len) {
        rc = options_usage_error(&cmd, "%d tokens are more than the model's context of %d", n,
                                 m->cfg.max_seq_len);
    } else {
        rc = 0;
        for (int t = 0; t < n && !rc; t++)
            if (ids[t] >= m->cfg.vocab_size)
                rc = options_usage_error(&cmd,
                                         "token id %d (position %d) is outside the model's "
                                         "vocabulary [0, %d)",
                                         ids[t], t, m->cfg.vocab_size);
    }
    if (m && rc == 0) {
        Batch b = {.B = 1, .T = n, .tokens = ids};
        model_forward(m, &b, 1.0f);
        float *logits = lc_malloc(sizeof(float) * (size_t)n * m->Vp);
        model_logits_to_host(m, logits, (size_t)n);
        if (a.json)
            print_json(ids, n, logits, m->cfg.vocab_size, m->Vp);
        else
            print_top(ids, n, logits, m->cfg.vocab_size, m->Vp, a.top, tok);
        free(logits);
    }
    model_free(m);
    tokenizer_free(tok);
    free(ids);
    return rc;
}
