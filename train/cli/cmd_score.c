// train/cli/cmd_score.c: `layercake score CHECKPOINT --data FILE.h5`: a reward model's scores of
// every example of a dataset: prompt + response (sft datasets) or both responses of each pair
// (preference datasets, with the accuracy of chosen over rejected).
//
// Examples longer than the model's context are counted and reported as skipped, or, with
// --truncate, scored by their last T input tokens: the reward is read at the last token, so the
// end of the response is what must stay. The loader (data/loader.h) can only leave such
// examples out, so this command builds its rows from the dataset itself, in dataset order.
// A sequence s[0..n) gives the row's inputs s[0..n-1), as the loader's rows do
// (train/stages/readouts.h: the score sits on the response's last token).
#include "common/check.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "train/cli/commands.h"
#include "train/cli/options.h"
#include "train/run/run.h"
#include "train/stages/readouts.h"
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *ckpt, *data;
    int batch;
    bool json, truncate;
} ScoreArgs;

// The rows of one batch and the running summary.
typedef struct {
    const ScoreArgs *a;
    const Dataset *ds;
    Model *view;        // the reward model with activations for (rows, T)
    int T, rows, pairs; // context, rows per batch, 1 for preference data (2 rows a unit)
    int units;          // units (examples) in the current batch
    int *tokens, *len;  // (rows, T) right-padded inputs, (rows) their lengths
    int64_t *example;   // (rows) dataset index of each unit of the batch
    float *r;           // (rows) scores of the batch
    double sum;         // of every score
    long n, correct;    // scores; pairs with chosen above rejected
    int64_t scored, skipped, truncated; // examples
} Scorer;

static const char DESCRIPTION[] =
    "Prints a reward model's score of every example: one line per sft example (index, reward)\n"
    "or per preference pair (index, chosen, rejected), then a summary with the examples scored\n"
    "and those skipped for being longer than the model's context. --json prints one JSON\n"
    "object per line instead, the summary last. --truncate scores an over-long example by its\n"
    "last tokens (the reward is read at the last one) instead of skipping it.\n";

static int parse(int argc, char **argv, ScoreArgs *a) {
    *a = (ScoreArgs){.batch = 16};
    const Option opts[] = {
        {"data", 'd', OPT_STRING, &a->data, 0, 0, true, "FILE.h5", "sft or preference dataset"},
        {"batch", 'b', OPT_INT, &a->batch, 1, INFINITY, false, "N", "rows per forward (16)"},
        {"json", 0, OPT_FLAG, &a->json, 0, 0, false, NULL, "print JSON lines"},
        {"truncate", 0, OPT_FLAG, &a->truncate, 0, 0, false, NULL,
         "keep the last tokens of over-long examples instead of skipping them"},
        {0}};
    const OptionsCommand cmd = {.name = "score",
                                .synopsis = "CHECKPOINT.h5 --data FILE.h5 [options]",
                                .summary = "score a dataset's responses with a reward model",
                                .description = DESCRIPTION,
                                .options = opts,
                                .args = "CHECKPOINT.h5",
                                .min_args = 1,
                                .max_args = 1};
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    if (rc == OPTIONS_CONTINUE) a->ckpt = args.v[0];
    return rc;
}

// ---- rows ----------------------------------------------------------------------------------

// Input positions example e needs: a sequence of n tokens takes n-1 (as data/loader.c counts).
static int64_t example_need(const Example *ex, int pairs) {
    int64_t resp = ex->n_chosen > ex->n_rejected ? ex->n_chosen : ex->n_rejected;
    return pairs ? ex->n_tokens + resp - 1 : ex->n_tokens - 1;
}

// Row row = the inputs of the sequence a[0..na) ++ b[0..nb), cut to its last T inputs.
static void row_put(Scorer *s, int row, const int *a, int64_t na, const int *b, int64_t nb) {
    int64_t n = na + nb - 1; // inputs: the sequence without its last token
    int64_t from = n > s->T ? n - s->T : 0;
    int *dst = s->tokens + (size_t)row * s->T;
    for (int64_t t = from; t < n; t++) dst[t - from] = t < na ? a[t] : b[t - na];
    s->len[row] = n > 0 ? (int)(n - from) : 0;
}

// Adds example e to the batch, or counts it as skipped.
static void unit_add(Scorer *s, int64_t e) {
    Example ex = dataset_example(s->ds, e);
    bool long_ = example_need(&ex, s->pairs) > s->T;
    if (long_ && !s->a->truncate) {
        s->skipped++;
        return;
    }
    s->truncated += long_;
    int u = s->units++;
    s->example[u] = e;
    if (s->pairs) {
        row_put(s, 2 * u, ex.tokens, ex.n_tokens, ex.chosen, ex.n_chosen);
        row_put(s, 2 * u + 1, ex.tokens, ex.n_tokens, ex.rejected, ex.n_rejected);
    } else {
        row_put(s, u, ex.tokens, ex.n_tokens, NULL, 0);
    }
}

// ---- output --------------------------------------------------------------------------------

// Prints unit u of the scored batch and adds it to the summary.
static void unit_print(Scorer *s, int u) {
    long idx = (long)s->example[u];
    const float *r = s->r;
    s->scored++;
    if (s->pairs) {
        float rc = r[2 * u], rr = r[2 * u + 1];
        s->correct += rc > rr;
        s->sum += rc + rr;
        s->n += 2;
        if (s->a->json)
            printf("{\"index\": %ld, \"chosen\": %.6g, \"rejected\": %.6g}\n", idx, rc, rr);
        else
            printf("%ld\t%.6g\t%.6g\n", idx, rc, rr);
    } else {
        s->sum += r[u];
        s->n += 1;
        if (s->a->json)
            printf("{\"index\": %ld, \"reward\": %.6g}\n", idx, r[u]);
        else
            printf("%ld\t%.6g\n", idx, r[u]);
    }
}

// Scores the batch's rows (one forward) and prints its units; empties the batch.
static void batch_flush(Scorer *s) {
    if (s->units == 0) return;
    Batch b = {.B = s->rows, .T = s->T, .tokens = s->tokens, .len = s->len};
    reward_scores(s->view, &b, s->r);
    for (int u = 0; u < s->units; u++) unit_print(s, u);
    memset(s->tokens, 0, sizeof(int) * (size_t)s->rows * s->T);
    memset(s->len, 0, sizeof(int) * (size_t)s->rows);
    s->units = 0;
}

static void summary_json(const Scorer *s) {
    double mean = s->n ? s->sum / (double)s->n : NAN;
    printf("{\"scored\": %lld, \"skipped\": %lld, \"truncated\": %lld, \"context\": %d, ",
           (long long)s->scored, (long long)s->skipped, (long long)s->truncated, s->T);
    printf(isnan(mean) ? "\"mean\": null" : "\"mean\": %.6g", mean);
    if (s->pairs && s->scored)
        printf(", \"accuracy\": %.6g", (double)s->correct / (double)s->scored);
    printf("}\n");
}

static void summary_text(const Scorer *s) {
    printf("# %ld scores, mean %.4f", s->n, s->n ? s->sum / (double)s->n : NAN);
    if (s->pairs)
        printf(", chosen above rejected in %.2f%% of %lld pairs",
               100.0 * (double)s->correct / (double)s->scored, (long long)s->scored);
    printf("\n# %lld examples scored (%lld of them cut to their last %d tokens), %lld skipped "
           "for being longer than %d tokens%s\n",
           (long long)s->scored, (long long)s->truncated, s->T, (long long)s->skipped, s->T,
           s->skipped ? " (--truncate scores them)" : "");
}

// ---- the command ---------------------------------------------------------------------------

static void scorer_init(Scorer *s, const ScoreArgs *a, const Dataset *ds, Model *rm) {
    *s = (Scorer){.a = a, .ds = ds, .T = rm->cfg.max_seq_len, .pairs = ds->kind == DATA_PREFERENCE};
    s->rows = s->pairs ? 2 * a->batch : a->batch;
    s->view = model_create_view(rm, MODEL_INFER, s->rows, s->T);
    s->tokens = lc_calloc((size_t)s->rows * s->T, sizeof(int));
    s->len = lc_calloc((size_t)s->rows, sizeof(int));
    s->example = lc_calloc((size_t)s->rows, sizeof(int64_t));
    s->r = lc_calloc((size_t)s->rows, sizeof(float));
}

static void scorer_free(Scorer *s) {
    model_free(s->view);
    free(s->tokens), free(s->len), free(s->example), free(s->r);
}

static int score(const ScoreArgs *a, Model *rm, Dataset *ds) {
    char err[1024];
    if (dataset_load(ds, rm->cfg.vocab_size, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake score: %s\n", err);
        return 1;
    }
    Scorer s;
    scorer_init(&s, a, ds, rm);
    for (int64_t e = 0; e < ds->n; e++) {
        unit_add(&s, e);
        if (s.units == a->batch) batch_flush(&s);
    }
    batch_flush(&s);
    if (a->json)
        summary_json(&s);
    else
        summary_text(&s);
    scorer_free(&s);
    return 0;
}

// The dataset, if it is one a reward model can score; NULL with a message otherwise.
static Dataset *dataset_for_scores(const char *path) {
    char err[1024];
    Dataset *d = dataset_open(path, DATA_KIND_COUNT, err, sizeof(err));
    if (!d) {
        fprintf(stderr, "layercake score: %s\n", err);
    } else if (d->kind != DATA_SFT && d->kind != DATA_PREFERENCE) {
        fprintf(stderr,
                "layercake score: %s: a %s dataset; scoring needs prompt + response (sft) or "
                "preference data\n",
                path, data_kind_name(d->kind));
        dataset_free(d);
        d = NULL;
    }
    return d;
}

// The reward model, if the checkpoint has a scalar head and was trained with the tokenizer
// that made ds; NULL with a message otherwise.
static Model *reward_model_load(const char *path, const Dataset *ds) {
    char err[2048];
    CheckpointInfo ci;
    Model *rm = NULL;
    if (run_checkpoint_info(path, &ci, err, sizeof(err)) == 0 &&
        run_check_dataset(path, &ci, ds->path, ds->fingerprint, err, sizeof(err)) == 0)
        rm = model_load(backend_cpu(), path, 0, MODEL_INFER, 1, 1, 0, err, sizeof(err));
    if (!rm) {
        fprintf(stderr, "layercake score: %s\n", err);
    } else if (!(rm->heads & MODEL_HEAD_SCALAR)) {
        fprintf(stderr, "layercake score: %s has no scalar head: not a reward model\n", path);
        model_free(rm);
        rm = NULL;
    }
    return rm;
}

int cmd_score(int argc, char **argv) {
    ScoreArgs a;
    int rc = parse(argc, argv, &a);
    if (rc != OPTIONS_CONTINUE) return rc;
    Dataset *ds = dataset_for_scores(a.data);
    Model *rm = ds ? reward_model_load(a.ckpt, ds) : NULL;
    rc = rm ? score(&a, rm, ds) : 1;
    model_free(rm);
    dataset_free(ds);
    return rc;
}
