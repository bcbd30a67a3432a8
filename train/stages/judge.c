// train/stages/judge.c: the judges behind train/stages/judge.h, one file for every kind
// (docs/judges.md): gold, reward_model, match, command and model.
#include "train/stages/judge.h"
#include "common/check.h"
#include "data/synth.h"
#include "train/stages/judge-impl.h"
#include "train/stages/readouts.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- gold ---------------------------------------------------------------------------------------

static int gold_open(Judge *j) {
    const char *name = j->sr->stage->gold_reward;
    j->task = synth_task_find(name);
    if (!j->task) {
        judge_report(j->sr, "gold_reward", "'%s' is not a task; the tasks are: %s", name,
                     synth_task_names());
        return -1;
    }
    snprintf(j->name, sizeof(j->name), "gold %s", synth_task_name(j->task));
    return 0;
}

// The task's reward on the response as generated: decoded from its ids, the end token included
// when it ended one (data/synth.h), else the text as given.
static int gold_score(Judge *j, const JudgeItem *items, int n, double *scores, double *correct) {
    for (int i = 0; i < n; i++) {
        const JudgeItem *it = &items[i];
        size_t rn = it->response ? strlen(it->response) : 0, pn = strlen(it->prompt);
        char *decoded = NULL;
        const char *resp = it->response ? it->response : "";
        if (it->response_ids) {
            decoded = tokenizer_decode(j->sr->run->tok, it->response_ids, it->response_len, &rn);
            LC_ASSERT(decoded); // ids the model drew: of the tokenizer's vocabulary
            resp = decoded;
        }
        scores[i] = synth_gold_reward(j->task, it->prompt, pn, resp, rn);
        if (correct) correct[i] = synth_correct(j->task, it->prompt, pn, resp, rn) ? 1.0 : 0.0;
        free(decoded);
    }
    return 0;
}

// ---- reward model -------------------------------------------------------------------------------

// The tokens a response can end with: the end of turn of the prompts' chat template, and
// end-of-text (what chat_stop_token returns for a prompt).
static void stops_init(Judge *j) {
    const Run *run = j->sr->run;
    const char *prompts = j->sr->stage->data.prompts;
    Chat c = *prompts ? run_dataset_chat(run, prompts) : chat_init(run->tok);
    j->stop[0] = c.end;
    j->stop[1] = tokenizer_eot(run->tok);
}

static bool item_ended(const Judge *j, const JudgeItem *it) {
    if (it->response_len <= 0) return false;
    int last = it->response_ids[it->response_len - 1];
    return last == j->stop[0] || last == j->stop[1];
}

// Loads a frozen model for the judge: on the LoRA policy's trunk when the options give one
// (stage_model_on_trunk), else whole; heads 0: the file's own.
static Model *load_model(Judge *j, const char *key, const char *ref, int heads) {
    StageRun *sr = j->sr;
    Model *m = j->trunk ? stage_model_on_trunk(sr, ref, j->trunk, heads, j->rows, j->seq_len)
                        : stage_model(sr, ref, heads, MODEL_INFER, j->rows, j->seq_len);
    if (m && m->max_T < j->seq_len) {
        judge_report(sr, key, "'%s' has a context of %d tokens; seq_len is %d", ref,
                     m->cfg.max_seq_len, j->seq_len);
        model_free(m);
        return NULL;
    }
    return m;
}

static void batch_alloc(Judge *j) {
    size_t rows = (size_t)j->rows, T = (size_t)j->seq_len;
    j->b.tokens = lc_calloc(rows * T, sizeof(int));
    j->b.targets = lc_calloc(rows * T, sizeof(int));
    j->b.mask = lc_calloc(rows * T, sizeof(float));
    j->b.len = lc_calloc(rows, sizeof(int));
    j->fscores = lc_calloc(rows, sizeof(float));
}

static int rm_open(Judge *j) {
    const char *ref = j->sr->stage->reward_model;
    j->model = load_model(j, "reward_model", ref, 0);
    if (!j->model) return -1;
    if (!(j->model->heads & MODEL_HEAD_SCALAR)) {
        judge_report(j->sr, "reward_model", "'%s' has no scalar head: not a reward model", ref);
        return -1;
    }
    stops_init(j);
    batch_alloc(j);
    snprintf(j->name, sizeof(j->name), "reward_model %s", ref);
    return 0;
}

// Reward-model rows: prompt + response without a final end token (train/stages/readouts.h),
// right-padded with 0 to seq_len; the score is the scalar head where the response ends.
static int rm_score(Judge *j, const JudgeItem *items, int n, double *scores, double *correct) {
    Batch *b = &j->b;
    b->B = n, b->T = j->seq_len;
    memset(b->tokens, 0, sizeof(int) * (size_t)n * (size_t)b->T);
    for (int i = 0; i < n; i++) {
        const JudgeItem *it = &items[i];
        int rn = it->response_len - (item_ended(j, it) ? 1 : 0);
        LC_ASSERT(it->prompt_ids && it->prompt_len + rn <= b->T);
        int *row = b->tokens + (size_t)i * b->T;
        memcpy(row, it->prompt_ids, sizeof(int) * (size_t)it->prompt_len);
        if (rn > 0) memcpy(row + it->prompt_len, it->response_ids, sizeof(int) * (size_t)rn);
        b->len[i] = it->prompt_len + rn;
    }
    Batch in = {.B = n, .T = b->T, .tokens = b->tokens, .len = b->len};
    reward_scores(j->model, &in, j->fscores);
    for (int i = 0; i < n; i++) {
        scores[i] = j->fscores[i];
        if (correct) correct[i] = NAN;
    }
    return 0;
}

// ---- the interface ------------------------------------------------------------------------------

// Which judge the stage's keys give, under the options' choice; JUDGE_GOLD_KIND.. or -1 for none.
static int pick_kind(const Stage *st, JudgeWhich which) {
    bool gold = st->gold_reward[0] != '\0';
    if (which == JUDGE_ONLY_GOLD) return gold ? JK_GOLD : -1;
    if (st->judge.kind == JUDGE_KIND_MATCH) return JK_MATCH;
    if (st->judge.kind == JUDGE_KIND_COMMAND) return JK_COMMAND;
    if (st->judge.kind == JUDGE_KIND_MODEL) return JK_MODEL;
    if (st->reward_model[0]) return JK_RM;
    return which == JUDGE_ANY && gold ? JK_GOLD : -1;
}

Judge *judge_open_with(StageRun *sr, int rows, int seq_len, const JudgeOptions *o) {
    JudgeOptions none = {0};
    if (!o) o = &none;
    int kind = pick_kind(sr->stage, o->which);
    if (kind < 0) return NULL;
    Judge *j = lc_calloc(1, sizeof(*j));
    *j = (Judge){.kind = kind, .sr = sr, .rows = rows, .seq_len = seq_len, .trunk = o->trunk};
    j->cmd.pid = -1, j->cmd.in = j->cmd.out = -1;
    int rc = 0;
    switch (kind) {
    case JK_GOLD:
        rc = gold_open(j);
        break;
    case JK_RM:
        rc = rm_open(j);
        break;
    case JK_MATCH:
        rc = judge_match_open(j);
        break;
    case JK_COMMAND:
        rc = judge_command_open(j);
        break;
    case JK_MODEL:
        rc = judge_model_open(j);
        break;
    }
    if (rc) {
        judge_close(j);
        return NULL;
    }
    return j;
}

Judge *judge_open(StageRun *sr, int rows, int seq_len) {
    return judge_open_with(sr, rows, seq_len, NULL);
}

void judge_close(Judge *j) {
    if (!j) return;
    judge_match_close(j);
    judge_command_close(j);
    judge_model_close(j);
    model_free(j->model);
    free(j->b.tokens), free(j->b.targets), free(j->b.mask), free(j->b.len), free(j->fscores);
    free(j);
}

int judge_score(Judge *j, const JudgeItem *items, int n, int group, double *scores,
                double *correct) {
    LC_ASSERT(n <= j->rows && group >= 1 && n % group == 0);
    switch (j->kind) {
    case JK_GOLD:
        return gold_score(j, items, n, scores, correct);
    case JK_RM:
        return rm_score(j, items, n, scores, correct);
    case JK_MATCH:
        return judge_match_score(j, items, n, scores, correct);
    case JK_COMMAND:
        return judge_command_score(j, items, n, scores, correct);
    default:
        return judge_model_score(j, items, n, group, scores, correct);
    }
}

int judge_prefer(Judge *j, const JudgeItem *a, const JudgeItem *b, double *p_a) {
    if (j->kind == JK_MODEL && j->sr->stage->judge.pairwise)
        return judge_model_prefer(j, a, b, p_a);
    double s[2];
    if (judge_score(j, a, 1, 1, &s[0], NULL) || judge_score(j, b, 1, 1, &s[1], NULL)) return -1;
    *p_a = s[0] > s[1] ? 1.0 : s[0] < s[1] ? 0.0 : 0.5;
    return 0;
}

const char *judge_name(const Judge *j) {
    return j->name;
}

bool judge_knows_correct(const Judge *j) {
    return j->kind == JK_GOLD || j->kind == JK_MATCH;
}

const Model *judge_model(const Judge *j) {
    return j ? j->model : NULL;
}
