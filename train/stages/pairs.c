// train/stages/pairs.c: preference pairs from a model's own samples, labelled by a gold reward.
#include "train/stages/pairs.h"
#include "common/check.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/synth.h"
#include "model/sample.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    StageRun *sr;
    const SynthTask *gold;
    Model *model; // the stage's start model, sampled from
    Loader *prompts;
    Chat chat;             // the template the prompts were rendered with (run_dataset_chat)
    Sampler *sampler;      // a view of model
    DatasetWriter *out[2]; // train, val
    int P, G, maxnew, max_prompt;
    int *rows;     // (P*G, max_prompt) prompts, each repeated G times
    int *plen;     // (P*G)
    int *resp;     // (P*G, maxnew) sampled responses
    float *logp;   // (P*G, maxnew)
    int *rlen;     // (P*G)
    double *score; // (P*G) gold reward of each response
    int *correct;  // (P*G) the response is exactly right
    Rng rng;
    long pairs[2], tied, swapped;
} Pairs;

// Scores response r with the gold reward and its correctness.
static void judge(Pairs *ps, int r) {
    Tokenizer *tok = ps->sr->run->tok;
    size_t pn, rn;
    char *p = tokenizer_decode(tok, ps->rows + (size_t)r * ps->max_prompt, ps->plen[r], &pn);
    char *s = tokenizer_decode(tok, ps->resp + (size_t)r * ps->maxnew, ps->rlen[r], &rn);
    LC_ASSERT(p && s);
    ps->score[r] = synth_gold_reward(ps->gold, p, pn, s, rn);
    ps->correct[r] = synth_correct(ps->gold, p, pn, s, rn);
    free(p), free(s);
}

// The pair of prompt p: its best and worst samples; 0 if written, 1 if left out (no sample is
// correct, or all score alike), -1 on error. A pair needs a correct chosen answer: between two
// wrong answers, partial credit would teach a nearer wrong answer.
static int write_pair(Pairs *ps, int p, int64_t example, char *err, size_t errlen) {
    int best = p * ps->G, worst = best;
    for (int g = 1; g < ps->G; g++) {
        int r = p * ps->G + g;
        if (ps->score[r] > ps->score[best]) best = r;
        if (ps->score[r] < ps->score[worst]) worst = r;
    }
    if (ps->score[best] == ps->score[worst] || !ps->correct[best]) return 1;
    if (rng_uniform(&ps->rng) < ps->sr->stage->label_noise) {
        int t = best;
        best = worst, worst = t;
        ps->swapped++;
    }
    uint64_t h = (uint64_t)example * 0x9E3779B97F4A7C15ull;
    int split = (h >> 60) % 10 == 0; // a tenth of the prompts for validation
    Example ex = {.tokens = ps->rows + (size_t)best * ps->max_prompt,
                  .n_tokens = ps->plen[best],
                  .chosen = ps->resp + (size_t)best * ps->maxnew,
                  .n_chosen = ps->rlen[best],
                  .rejected = ps->resp + (size_t)worst * ps->maxnew,
                  .n_rejected = ps->rlen[worst]};
    ps->pairs[split]++;
    return dataset_append(ps->out[split], &ex, err, errlen) == 0 ? 0 : -1;
}

// One batch of prompts: sample, score, write pairs.
static int sample_batch(Pairs *ps, char *err, size_t errlen) {
    const RolloutConfig *ro = &ps->sr->stage->rollout;
    Batch b;
    if (loader_next(ps->prompts, &b) < 0) {
        snprintf(err, errlen, "%s", loader_error(ps->prompts));
        return -1;
    }
    int n = 0;
    for (int p = 0; p < b.B; p++) n += b.len[p] > 0;
    for (int p = 0; p < n; p++)
        for (int g = 0; g < ps->G; g++) {
            int r = p * ps->G + g;
            memcpy(ps->rows + (size_t)r * ps->max_prompt, b.tokens + (size_t)p * b.T,
                   sizeof(int) * (size_t)b.len[p]);
            ps->plen[r] = b.len[p];
        }
    SampleParams sp = rollout_sample_params(ro, chat_stop_token(&ps->chat, ps->rows, ps->plen[0]));
    sampler_generate(ps->sampler, ps->rows, ps->max_prompt, ps->plen, n * ps->G, &sp, &ps->rng,
                     ps->resp, ps->logp, ps->rlen);
    for (int r = 0; r < n * ps->G; r++) judge(ps, r);
    for (int p = 0; p < n; p++) {
        int rc = write_pair(ps, p, loader_example_index(ps->prompts, p, 0), err, errlen);
        if (rc < 0) return -1;
        ps->tied += rc;
    }
    return 0;
}

// The host arrays of one round of P prompts x G samples.
static void alloc_buffers(Pairs *ps) {
    size_t R = (size_t)ps->P * ps->G;
    ps->rows = lc_calloc(R * (size_t)ps->max_prompt, sizeof(int));
    ps->plen = lc_calloc(R, sizeof(int));
    ps->resp = lc_calloc(R * (size_t)ps->maxnew, sizeof(int));
    ps->logp = lc_calloc(R * (size_t)ps->maxnew, sizeof(float));
    ps->rlen = lc_calloc(R, sizeof(int));
    ps->score = lc_calloc(R, sizeof(double));
    ps->correct = lc_calloc(R, sizeof(int));
}

static int open_all(Pairs *ps, const char *paths[2], char *err, size_t errlen) {
    StageRun *sr = ps->sr;
    const Stage *st = sr->stage;
    int T = st->seq_len;
    ps->G = st->rollout.group_size, ps->P = st->rollout.batch;
    ps->maxnew = st->rollout.max_new_tokens, ps->max_prompt = T - ps->maxnew;
    ps->gold = synth_task_find(st->gold_reward);
    if (!ps->gold) {
        snprintf(err, errlen, "gold_reward '%s' is not a built-in task (tasks: %s)",
                 st->gold_reward, synth_task_names());
        return -1;
    }
    ps->model = stage_model(sr, st->init, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    if (!ps->model) {
        snprintf(err, errlen, "cannot load the start model '%s'", st->init);
        return -1;
    }
    LoaderOptions o = {.batch = ps->P,
                       .T = ps->max_prompt,
                       .world = 1,
                       .vocab_size = ps->model->cfg.vocab_size,
                       .fingerprint = sr->run->fingerprint,
                       .drop_long = 1};
    ps->prompts = loader_open(st->data.prompts, DATA_PROMPT, &o, err, errlen);
    if (!ps->prompts) return -1;
    ps->chat = run_dataset_chat(sr->run, st->data.prompts);
    ps->sampler = sampler_create(ps->model, ps->P * ps->G, T, 1);
    alloc_buffers(ps);
    ps->rng = rng_init(stage_seed(sr, "pairs"));
    for (int k = 0; k < 2; k++) {
        ps->out[k] = dataset_create(paths[k], DATA_PREFERENCE, sr->run->fingerprint, err, errlen);
        if (!ps->out[k]) return -1;
    }
    return 0;
}

static void close_all(Pairs *ps) {
    for (int k = 0; k < 2; k++)
        if (ps->out[k]) dataset_abort(ps->out[k]);
    sampler_free(ps->sampler);
    loader_free(ps->prompts);
    model_free(ps->model);
    free(ps->rows), free(ps->plen), free(ps->resp), free(ps->logp), free(ps->rlen), free(ps->score);
    free(ps->correct);
}

// Samples, judges and writes both pair files (rank 0's work).
static int sample_pairs(StageRun *sr, const char *train_path, const char *val_path) {
    const char *name = sr->stage->name;
    if (access(train_path, R_OK) == 0 && access(val_path, R_OK) == 0) {
        printf("[%s] preference pairs from %s\n", name, train_path);
        return 0;
    }
    Pairs ps = {.sr = sr};
    const char *paths[2] = {train_path, val_path};
    char err[1024];
    int rc = open_all(&ps, paths, err, sizeof(err));
    for (int64_t s = 0; !rc && s < loader_steps_per_epoch(ps.prompts); s++)
        rc = sample_batch(&ps, err, sizeof(err));
    for (int k = 0; k < 2 && !rc; k++) {
        rc = dataset_close(ps.out[k], err, sizeof(err));
        ps.out[k] = NULL;
    }
    if (rc) {
        fprintf(stderr, "layercake: stage '%s': sampling preference pairs: %s\n", name, err);
        close_all(&ps);
        return 1;
    }
    printf("[%s] sampled %d responses per prompt from '%s', labelled by '%s': %ld pairs (%ld "
           "for validation), %ld prompts left out (no correct sample, or all scored alike), %ld "
           "labels "
           "swapped\n",
           name, ps.G, sr->stage->init, sr->stage->gold_reward, ps.pairs[0] + ps.pairs[1],
           ps.pairs[1], ps.tied, ps.swapped);
    close_all(&ps);
    return 0;
}

int pairs_sample(StageRun *sr, char *train_path, char *val_path, size_t len) {
    snprintf(train_path, len, "%s/pairs.h5", sr->dir);
    snprintf(val_path, len, "%s/pairs-val.h5", sr->dir);
    // one process writes the files, every process of a data-parallel run then loads its share
    int rc = sr->run->rank == 0 ? sample_pairs(sr, train_path, val_path) : 0;
    return run_agree(sr->run, rc);
}
