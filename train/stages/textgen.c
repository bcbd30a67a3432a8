// train/stages/textgen.c: batched continuation of token contexts, and the completion mark.
#include "train/stages/textgen.h"
#include "train/stages/stageio.h"
#include "common/check.h"
#include "common/fs.h"
#include "model/sample.h"
#include "train/run/state.h"
#include <stdlib.h>
#include <string.h>

int textgen_open(TextGen *g, StageRun *sr, const char *purpose) {
    const Stage *st = sr->stage;
    *g = (TextGen){.sr = sr,
                   .rows = st->rollout.batch,
                   .max_new = st->rollout.max_new_tokens,
                   .max_ctx = st->seq_len - st->rollout.max_new_tokens};
    g->model = stage_model(sr, st->init, MODEL_HEAD_LM, MODEL_INFER, 1, 1);
    if (!g->model) return -1;
    if (g->model->cfg.max_seq_len < st->seq_len) {
        fprintf(stderr, "layercake: stage '%s': '%s' has a context of %d tokens; seq_len is %d\n",
                st->name, stage_start_name(sr, st->init), g->model->cfg.max_seq_len, st->seq_len);
        return -1;
    }
    g->sampler = sampler_create(g->model, g->rows, st->seq_len, 1);
    g->ctx = lc_calloc((size_t)g->rows * (size_t)g->max_ctx, sizeof(int));
    g->ctx_len = lc_calloc((size_t)g->rows, sizeof(int));
    g->out = lc_calloc((size_t)g->rows * (size_t)g->max_new, sizeof(int));
    g->logp = lc_calloc((size_t)g->rows * (size_t)g->max_new, sizeof(float));
    g->out_len = lc_calloc((size_t)g->rows, sizeof(int));
    g->rng = rng_init(stage_seed(sr, purpose));
    return 0;
}

void textgen_close(TextGen *g) {
    sampler_free(g->sampler);
    model_free(g->model);
    free(g->ctx), free(g->ctx_len), free(g->out), free(g->logp), free(g->out_len);
    *g = (TextGen){0};
}

// One sampler call over contexts [first, first + b).
static void generate_call(TextGen *g, const TokenBuf *ctx, int first, int b, const SampleParams *sp,
                          TokenBuf *ids, char **text) {
    for (int r = 0; r < b; r++) {
        const TokenBuf *c = &ctx[first + r];
        LC_ASSERT(c->n >= 1 && c->n <= g->max_ctx);
        memcpy(g->ctx + (size_t)r * g->max_ctx, c->ids, (size_t)c->n * sizeof(int));
        g->ctx_len[r] = (int)c->n;
    }
    g->tokens += sampler_generate(g->sampler, g->ctx, g->max_ctx, g->ctx_len, b, sp, &g->rng,
                                  g->out, g->logp, g->out_len);
    for (int r = 0; r < b; r++) {
        const int *o = g->out + (size_t)r * g->max_new;
        int n = g->out_len[r];
        if (n > 0 && o[n - 1] == sp->stop_token) n--;
        size_t len;
        char *raw = tokenizer_decode(g->sr->run->tok, o, n, &len);
        LC_ASSERT(raw);
        text[first + r] = stageio_clean_text(raw, len);
        free(raw);
        if (ids) tokenbuf_push(&ids[first + r], o, n, 0);
    }
}

void textgen_generate(TextGen *g, const TokenBuf *ctx, int n, int stop, TokenBuf *ids,
                      char **text) {
    SampleParams sp = rollout_sample_params(&g->sr->stage->rollout, stop);
    for (int first = 0; first < n; first += g->rows)
        generate_call(g, ctx, first, n - first < g->rows ? n - first : g->rows, &sp, ids, text);
}
