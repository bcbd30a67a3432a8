// train/stages/pairs.c: the labeller: preference pairs and best-of-n sft examples from a
// model's own samples, scored by the stage's judge (see train/stages/pairs.h).
#include "train/stages/pairs.h"
#include "train/stages/stageio.h"
#include "common/check.h"
#include "common/fs.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "model/sample.h"
#include "train/stages/judge.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// ---- choosing pairs -----------------------------------------------------------------------------

// Whether response i may be a chosen one: right, or of unknown correctness.
static bool may_choose(const double *correct, int i, bool require_correct) {
    return !require_correct || !correct || isnan(correct[i]) || correct[i] > 0.5;
}

int pairs_best(const double *score, const double *correct, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (score[i] > score[best]) best = i;
    return may_choose(correct, best, true) ? best : -1;
}

int pairs_select(const double *score, const double *correct, int n, LabelPairs how,
                 bool require_correct, Rng *rng, PairPick *out) {
    int best = 0, worst = 0, count = 0;
    for (int i = 1; i < n; i++) {
        if (score[i] > score[best]) best = i;
        if (score[i] < score[worst]) worst = i;
    }
    if (how == LABEL_ALL_PAIRS) {
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) {
                if (score[i] == score[j]) continue;
                int c = score[i] > score[j] ? i : j, r = c == i ? j : i;
                if (may_choose(correct, c, require_correct))
                    out[count++] = (PairPick){c, r, score[c] - score[r]};
            }
        return count;
    }
    if (score[best] == score[worst] || !may_choose(correct, best, require_correct)) return 0;
    int rejected = worst;
    if (how == LABEL_BEST_RANDOM) {
        int lower = 0;
        for (int i = 0; i < n; i++) lower += score[i] < score[best];
        int k = (int)rng_below(rng, (uint64_t)lower);
        for (int i = 0; i < n; i++)
            if (score[i] < score[best] && k-- == 0) rejected = i;
    }
    out[0] = (PairPick){best, rejected, score[best] - score[rejected]};
    return 1;
}

// ---- the labeller -------------------------------------------------------------------------------

typedef struct {
    StageRun *sr;
    const LabelJob *job;
    Judge *judge;
    Model *model; // the policy whose samples are labelled
    Loader *prompts;
    Chat chat;             // the template the prompts were rendered with (run_dataset_chat)
    Sampler *sampler;      // a view of model
    DatasetWriter *out[2]; // pairs: train, val
    DatasetWriter *sft;    // best-of-n examples, or NULL
    FILE *labels;          // labels.jsonl.partial, or NULL
    char labels_tmp[4400];
    unsigned char *take; // (prompts in the file) 1 for those labelled; NULL = all
    int P, G, maxnew, max_prompt, pending;
    int stop;         // the end token of the responses
    int64_t *example; // (P) dataset index of each pending prompt
    int *rows;        // (P*G, max_prompt) prompts, each repeated G times
    int *plen;        // (P*G)
    int *resp;        // (P*G, maxnew) sampled responses
    float *logp;      // (P*G, maxnew)
    int *rlen;        // (P*G)
    double *score;    // (P*G) the judge's score of each response
    double *correct;  // (P*G) 1, 0, or NAN when the judge does not know
    char **text;      // (P*G) decoded responses; (P) decoded prompts in ptext
    char **ptext;     // (P)
    JudgeItem *items; // (P*G)
    PairPick *picks;  // (G*(G-1)/2)
    bool *swapped;    // (G*(G-1)/2) whether label noise swapped each pick
    int *seq;         // (max_prompt + maxnew) an sft example's tokens
    uint8_t *mask;    // (max_prompt + maxnew) its loss mask
    char **refs;      // (P) the prompts' reference answers, or NULL
    Rng rng;          // sampling, best_random draws and label noise
    LabelStats st;
} Labeller;

// Whether response r ended with its end token (it is whole).
static bool ended(const Labeller *lb, int r) {
    return lb->rlen[r] > 0 && lb->resp[(size_t)r * lb->maxnew + lb->rlen[r] - 1] == lb->stop;
}

// Decodes the pending prompts and their responses into judge items.
static void make_items(Labeller *lb, int n) {
    Tokenizer *tok = lb->sr->run->tok;
    const Dataset *ds = loader_dataset(lb->prompts);
    size_t bytes;
    for (int p = 0; p < n; p++) {
        int r0 = p * lb->G;
        free(lb->ptext[p]), free(lb->refs[p]);
        lb->ptext[p] =
            tokenizer_decode(tok, lb->rows + (size_t)r0 * lb->max_prompt, lb->plen[r0], &bytes);
        Example ex = dataset_example(ds, lb->example[p]);
        lb->refs[p] = NULL;
        if (ex.n_reference_text > 0) {
            lb->refs[p] = lc_malloc((size_t)ex.n_reference_text + 1);
            memcpy(lb->refs[p], ex.reference_text, (size_t)ex.n_reference_text);
            lb->refs[p][ex.n_reference_text] = '\0';
        }
        LC_ASSERT(lb->ptext[p]);
        for (int g = 0; g < lb->G; g++) {
            int r = r0 + g;
            const int *ids = lb->resp + (size_t)r * lb->maxnew;
            int len = lb->rlen[r] - (ended(lb, r) ? 1 : 0);
            free(lb->text[r]);
            lb->text[r] = tokenizer_decode(tok, ids, len, &bytes);
            LC_ASSERT(lb->text[r]);
            lb->items[r] = (JudgeItem){.prompt = lb->ptext[p],
                                       .response = lb->text[r],
                                       .prompt_ids = lb->rows + (size_t)r * lb->max_prompt,
                                       .prompt_len = lb->plen[r],
                                       .response_ids = ids,
                                       .response_len = lb->rlen[r],
                                       .reference = lb->refs[p]};
        }
    }
}

// The best-of-n sft example of prompt p: its prompt (mask 0), then its best response with
// the end token (mask 1), as data/synth.c lays out sft data. Returns the response index, or
// -1 when none is kept (the best is wrong, or was cut off before its end token).
static int write_sft(Labeller *lb, int p, char *err, size_t errlen, int *rc) {
    int r0 = p * lb->G, best = pairs_best(lb->score + r0, lb->correct + r0, lb->G);
    *rc = 0;
    if (!lb->sft || best < 0 || !ended(lb, r0 + best)) return -1;
    int r = r0 + best, n = lb->plen[r], m = lb->rlen[r];
    memcpy(lb->seq, lb->rows + (size_t)r * lb->max_prompt, sizeof(int) * (size_t)n);
    memcpy(lb->seq + n, lb->resp + (size_t)r * lb->maxnew, sizeof(int) * (size_t)m);
    memset(lb->mask, 0, (size_t)n);
    memset(lb->mask + n, 1, (size_t)m);
    Example ex = {.tokens = lb->seq, .n_tokens = n + m, .loss_mask = lb->mask};
    *rc = dataset_append(lb->sft, &ex, err, errlen);
    lb->st.sft++;
    return best;
}

// The labels.jsonl line of prompt p.
static int write_line(Labeller *lb, int p, int split, int npicks, const bool *swapped,
                      int sft_best) {
    if (!lb->labels) return 0;
    int r0 = p * lb->G;
    json_t *resp = json_array(), *scores = json_array(), *correct = json_array(),
           *pairs = json_array();
    for (int g = 0; g < lb->G; g++) {
        double c = lb->correct[r0 + g];
        json_array_append_new(resp, stageio_json_text(lb->text[r0 + g], strlen(lb->text[r0 + g])));
        json_array_append_new(scores, json_real(lb->score[r0 + g]));
        json_array_append_new(correct, isnan(c) ? json_null() : json_boolean(c > 0.5));
    }
    for (int k = 0; k < npicks; k++)
        json_array_append_new(pairs,
                              json_pack("{s:i, s:i, s:f, s:b}", "chosen", lb->picks[k].chosen,
                                        "rejected", lb->picks[k].rejected, "margin",
                                        lb->picks[k].margin, "swapped", swapped[k]));
    json_t *row = json_pack(
        "{s:I, s:o, s:s, s:o, s:o, s:o, s:o, s:o}", "prompt_index", (json_int_t)lb->example[p],
        "prompt", stageio_json_text(lb->ptext[p], strlen(lb->ptext[p])), "split",
        split ? "val" : "train", "responses", resp, "scores", scores, "correct", correct, "pairs",
        pairs, "sft", sft_best >= 0 ? json_integer(sft_best) : json_null());
    int rc = !row || json_dumpf(row, lb->labels, JSON_COMPACT) || fputc('\n', lb->labels) == EOF;
    json_decref(row);
    return rc ? -1 : 0;
}

// Prompt p's pairs, sft example and labels line. 0, or -1 with err.
static int label_prompt(Labeller *lb, int p, char *err, size_t errlen) {
    const Stage *st = lb->sr->stage;
    int r0 = p * lb->G;
    lb->st.prompts++;
    for (int g = 0; g < lb->G; g++) {
        double c = lb->correct[r0 + g];
        lb->st.responses++, lb->st.score_sum += lb->score[r0 + g];
        if (!isnan(c)) lb->st.known++, lb->st.correct += c > 0.5;
    }
    int n = pairs_select(lb->score + r0, lb->correct + r0, lb->G, st->label.pairs,
                         st->label.require_correct, &lb->rng, lb->picks);
    uint64_t h = (uint64_t)lb->example[p] * 0x9E3779B97F4A7C15ull;
    int split = (h >> 60) % 10 == 0; // a tenth of the prompts for validation
    bool *swapped = lb->swapped;
    if (n == 0) lb->st.left_out++;
    for (int k = 0; k < n; k++) {
        PairPick *pk = &lb->picks[k];
        swapped[k] = rng_uniform(&lb->rng) < st->label_noise;
        if (swapped[k]) {
            int t = pk->chosen;
            pk->chosen = pk->rejected, pk->rejected = t, pk->margin = -pk->margin;
            lb->st.swapped++;
        }
        int c = r0 + pk->chosen, r = r0 + pk->rejected;
        Example ex = {.tokens = lb->rows + (size_t)c * lb->max_prompt,
                      .n_tokens = lb->plen[c],
                      .chosen = lb->resp + (size_t)c * lb->maxnew,
                      .n_chosen = lb->rlen[c],
                      .rejected = lb->resp + (size_t)r * lb->maxnew,
                      .n_rejected = lb->rlen[r]};
        lb->st.pairs[split]++;
        if (dataset_append(lb->out[split], &ex, err, errlen) != 0) return -1;
    }
    int rc, best = write_sft(lb, p, err, errlen, &rc);
    if (rc) return -1;
    if (write_line(lb, p, split, n, swapped, best) == 0) return 0;
    snprintf(err, errlen, "%s: cannot write (disk full?)", lb->job->labels);
    return -1;
}

// Samples and judges the pending prompts, then labels each.
static int flush(Labeller *lb, char *err, size_t errlen) {
    int n = lb->pending;
    lb->pending = 0;
    if (n == 0) return 0;
    SampleParams sp = rollout_sample_params(&lb->sr->stage->rollout,
                                            chat_stop_token(&lb->chat, lb->rows, lb->plen[0]));
    lb->stop = sp.stop_token;
    sampler_generate(lb->sampler, lb->rows, lb->max_prompt, lb->plen, n * lb->G, &sp, &lb->rng,
                     lb->resp, lb->logp, lb->rlen);
    make_items(lb, n);
    if (judge_score(lb->judge, lb->items, n * lb->G, lb->G, lb->score, lb->correct) != 0) {
        snprintf(err, errlen, "the judge (%s) failed", judge_name(lb->judge));
        return -1;
    }
    for (int p = 0; p < n; p++)
        if (label_prompt(lb, p, err, errlen) != 0) return -1;
    return 0;
}

// One loader batch: its prompts this job labels join the pending ones, sampled P at a time.
static int read_batch(Labeller *lb, char *err, size_t errlen) {
    Batch b;
    if (loader_next(lb->prompts, &b) < 0) {
        snprintf(err, errlen, "%s", loader_error(lb->prompts));
        return -1;
    }
    for (int p = 0; p < b.B; p++) {
        int64_t e = loader_example_index(lb->prompts, p, 0);
        if (b.len[p] == 0 || e < 0 || (lb->take && !lb->take[e])) continue;
        lb->example[lb->pending] = e;
        for (int g = 0; g < lb->G; g++) {
            int r = lb->pending * lb->G + g;
            memcpy(lb->rows + (size_t)r * lb->max_prompt, b.tokens + (size_t)p * b.T,
                   sizeof(int) * (size_t)b.len[p]);
            lb->plen[r] = b.len[p];
        }
        if (++lb->pending == lb->P && flush(lb, err, errlen) != 0) return -1;
    }
    return 0;
}

// The prompts of the job's slice: job->per_round of a seeded shuffle, from round x per_round.
static void choose_prompts(Labeller *lb) {
    const LabelJob *job = lb->job;
    int64_t n = loader_dataset(lb->prompts)->n;
    if (job->per_round <= 0 || n <= 0) return;
    int *order = lc_malloc(sizeof(int) * (size_t)n);
    for (int64_t i = 0; i < n; i++) order[i] = (int)i;
    Rng r = rng_init(job->order_seed);
    rng_shuffle(&r, order, (int)n);
    lb->take = lc_calloc((size_t)n, 1);
    int64_t k = job->per_round < n ? job->per_round : n;
    for (int64_t i = 0; i < k; i++) lb->take[order[((int64_t)job->round * k + i) % n]] = 1;
    free(order);
}

// The host arrays of P prompts x G samples.
static void alloc_buffers(Labeller *lb) {
    size_t R = (size_t)lb->P * lb->G, pairs = (size_t)lb->G * (lb->G - 1) / 2 + 1;
    lb->example = lc_calloc((size_t)lb->P, sizeof(int64_t));
    lb->rows = lc_calloc(R * (size_t)lb->max_prompt, sizeof(int));
    lb->plen = lc_calloc(R, sizeof(int));
    lb->resp = lc_calloc(R * (size_t)lb->maxnew, sizeof(int));
    lb->logp = lc_calloc(R * (size_t)lb->maxnew, sizeof(float));
    lb->rlen = lc_calloc(R, sizeof(int));
    lb->score = lc_calloc(R, sizeof(double));
    lb->correct = lc_calloc(R, sizeof(double));
    lb->text = lc_calloc(R, sizeof(char *));
    lb->ptext = lc_calloc((size_t)lb->P, sizeof(char *));
    lb->refs = lc_calloc((size_t)lb->P, sizeof(char *));
    lb->items = lc_calloc(R, sizeof(JudgeItem));
    lb->picks = lc_calloc(pairs, sizeof(PairPick));
    lb->swapped = lc_calloc(pairs, sizeof(bool));
    lb->seq = lc_calloc((size_t)(lb->max_prompt + lb->maxnew), sizeof(int));
    lb->mask = lc_calloc((size_t)(lb->max_prompt + lb->maxnew), 1);
}

static int open_outputs(Labeller *lb, char *err, size_t errlen) {
    const LabelJob *job = lb->job;
    uint64_t fp = lb->sr->run->fingerprint;
    for (int k = 0; k < 2; k++) {
        lb->out[k] = dataset_create(job->pref[k], DATA_PREFERENCE, fp, err, errlen);
        if (!lb->out[k]) return -1;
    }
    if (job->sft && !(lb->sft = dataset_create(job->sft, DATA_SFT, fp, err, errlen))) return -1;
    if (!job->labels) return 0;
    snprintf(lb->labels_tmp, sizeof(lb->labels_tmp), "%s.partial", job->labels);
    lb->labels = fopen(lb->labels_tmp, "w");
    if (lb->labels) return 0;
    snprintf(err, errlen, "cannot create %.900s", lb->labels_tmp);
    return -1;
}

static int open_all(Labeller *lb, char *err, size_t errlen) {
    StageRun *sr = lb->sr;
    const Stage *st = sr->stage;
    int T = st->seq_len;
    lb->G = st->rollout.group_size, lb->P = st->rollout.batch;
    lb->maxnew = st->rollout.max_new_tokens, lb->max_prompt = T - lb->maxnew;
    lb->judge = judge_open(sr, lb->P * lb->G, T);
    if (!lb->judge) return snprintf(err, errlen, "no judge"), -1;
    lb->model = stage_model(sr, lb->job->model, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    if (!lb->model) return snprintf(err, errlen, "cannot load the model '%s'", lb->job->model), -1;
    LoaderOptions o = {.batch = lb->P,
                       .T = lb->max_prompt,
                       .world = 1,
                       .vocab_size = lb->model->cfg.vocab_size,
                       .fingerprint = sr->run->fingerprint,
                       .drop_long = 1};
    lb->prompts = loader_open(st->data.prompts, DATA_PROMPT, &o, err, errlen);
    if (!lb->prompts) return -1;
    lb->chat = run_dataset_chat(sr->run, st->data.prompts);
    lb->sampler = sampler_create(lb->model, lb->P * lb->G, T, 1);
    alloc_buffers(lb);
    choose_prompts(lb);
    lb->rng = rng_init(lb->job->seed);
    return open_outputs(lb, err, errlen);
}

static void close_all(Labeller *lb) {
    for (int k = 0; k < 2; k++)
        if (lb->out[k]) dataset_abort(lb->out[k]);
    if (lb->sft) dataset_abort(lb->sft);
    if (lb->labels) fclose(lb->labels), unlink(lb->labels_tmp);
    if (lb->judge) judge_close(lb->judge);
    sampler_free(lb->sampler);
    loader_free(lb->prompts);
    model_free(lb->model);
    size_t R = (size_t)lb->P * lb->G;
    for (size_t r = 0; lb->text && r < R; r++) free(lb->text[r]);
    for (int p = 0; lb->ptext && p < lb->P; p++) free(lb->ptext[p]), free(lb->refs[p]);
    free(lb->example), free(lb->rows), free(lb->plen), free(lb->resp), free(lb->logp);
    free(lb->rlen), free(lb->score), free(lb->correct), free(lb->text), free(lb->ptext);
    free(lb->refs), free(lb->items), free(lb->picks), free(lb->swapped), free(lb->seq),
        free(lb->mask);
    free(lb->take);
}

// ---- the summary --------------------------------------------------------------------------------

static int write_summary(const char *path, const LabelStats *s, char *err, size_t errlen) {
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I}", "prompts",
                          (json_int_t)s->prompts, "pairs", (json_int_t)s->pairs[0], "val_pairs",
                          (json_int_t)s->pairs[1], "left_out", (json_int_t)s->left_out, "swapped",
                          (json_int_t)s->swapped, "sft", (json_int_t)s->sft, "responses",
                          (json_int_t)s->responses, "score_sum", s->score_sum, "known",
                          (json_int_t)s->known, "correct", (json_int_t)s->correct);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) return snprintf(err, errlen, "%s: cannot render the summary", path), -1;
    int rc = fs_write_atomic(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

int label_read_summary(const char *path, LabelStats *s) {
    json_t *o = json_load_file(path, 0, NULL);
    json_int_t v[9] = {0};
    double sum = 0.0;
    int rc = !o || json_unpack(o, "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:F, s:I, s:I}", "prompts",
                               &v[0], "pairs", &v[1], "val_pairs", &v[2], "left_out", &v[3],
                               "swapped", &v[4], "sft", &v[5], "responses", &v[6], "score_sum",
                               &sum, "known", &v[7], "correct", &v[8]) != 0;
    json_decref(o);
    if (rc) return -1;
    *s = (LabelStats){.prompts = (long)v[0],
                      .pairs = {(long)v[1], (long)v[2]},
                      .left_out = (long)v[3],
                      .swapped = (long)v[4],
                      .sft = (long)v[5],
                      .responses = (long)v[6],
                      .score_sum = sum,
                      .known = (long)v[7],
                      .correct = (long)v[8]};
    return 0;
}

static void print_stats(const StageRun *sr, const LabelJob *job, const char *judge,
                        const LabelStats *s) {
    printf("[%s] %d responses to each of %ld prompts from '%s', judged by %s: mean score %.4f",
           sr->stage->name, sr->stage->rollout.group_size, s->prompts, job->model, judge,
           s->responses ? s->score_sum / (double)s->responses : 0.0);
    if (s->known) printf(", accuracy %.4f", (double)s->correct / (double)s->known);
    printf("; %ld pairs (%ld for validation), %ld prompts left out (no correct sample, or all "
           "scored alike), %ld labels swapped",
           s->pairs[0] + s->pairs[1], s->pairs[1], s->left_out, s->swapped);
    if (job->sft) printf("; %ld best-of-%d sft examples", s->sft, sr->stage->rollout.group_size);
    printf("\n");
}

// Whether every file job writes exists (a finished labelling).
static bool job_done(const LabelJob *job) {
    const char *paths[] = {job->pref[0], job->pref[1], job->sft, job->labels, job->summary};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (paths[i] && access(paths[i], R_OK) != 0) return false;
    return true;
}

// Closes every output into place, the summary last. 0, or -1 with err.
static int finish(Labeller *lb, char *err, size_t errlen) {
    for (int k = 0; k < 2; k++) {
        int rc = dataset_close(lb->out[k], err, errlen);
        lb->out[k] = NULL;
        if (rc) return -1;
    }
    if (lb->sft) {
        int rc = dataset_close(lb->sft, err, errlen);
        lb->sft = NULL;
        if (rc) return -1;
    }
    if (lb->labels) {
        int bad = fflush(lb->labels) != 0 || fsync(fileno(lb->labels)) != 0;
        bad |= fclose(lb->labels) != 0;
        lb->labels = NULL;
        if (bad || rename(lb->labels_tmp, lb->job->labels) != 0)
            return snprintf(err, errlen, "cannot write %s (disk full?)", lb->job->labels), -1;
    }
    return lb->job->summary ? write_summary(lb->job->summary, &lb->st, err, errlen) : 0;
}

int label_sample(StageRun *sr, const LabelJob *job, LabelStats *stats) {
    const char *name = sr->stage->name;
    *stats = (LabelStats){0};
    if (job_done(job)) {
        if (job->summary) label_read_summary(job->summary, stats);
        printf("[%s] labelled samples from %s\n", name, job->pref[0]);
        return 0;
    }
    Labeller lb = {.sr = sr, .job = job};
    char err[1024];
    int rc = open_all(&lb, err, sizeof(err));
    for (int64_t s = 0; !rc && s < loader_steps_per_epoch(lb.prompts); s++)
        rc = read_batch(&lb, err, sizeof(err));
    if (!rc) rc = flush(&lb, err, sizeof(err));
    if (!rc) rc = finish(&lb, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "layercake: stage '%s': labelling samples of '%s': %s\n", name, job->model,
                err);
        close_all(&lb);
        return 1;
    }
    *stats = lb.st;
    print_stats(sr, job, judge_name(lb.judge), stats);
    close_all(&lb);
    return 0;
}

// ---- reward and dpo given data.prompts ----------------------------------------------------------

// Sampled pairs, reused when both files exist.
static int sample_pairs(StageRun *sr, const char *train_path, const char *val_path) {
    LabelJob job = {
        .model = sr->stage->init, .pref = {train_path, val_path}, .seed = stage_seed(sr, "pairs")};
    LabelStats st;
    return label_sample(sr, &job, &st);
}

// Whether a dataset holds no example (a validation split the hash left empty).
static bool dataset_empty(const char *path) {
    char err[1024];
    Dataset *d = dataset_open(path, DATA_PREFERENCE, err, sizeof(err));
    bool empty = d && d->n == 0;
    dataset_free(d);
    return empty;
}

int pairs_sample(StageRun *sr, char *train_path, char *val_path, size_t len) {
    snprintf(train_path, len, "%s/pairs.h5", sr->dir);
    snprintf(val_path, len, "%s/pairs-val.h5", sr->dir);
    // one process writes the files, every process of a data-parallel run then loads its share
    int rc = sr->run->rank == 0 ? sample_pairs(sr, train_path, val_path) : 0;
    rc = run_agree(sr->run, rc);
    if (!rc && dataset_empty(val_path)) val_path[0] = '\0';
    return rc;
}
