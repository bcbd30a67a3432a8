// train/stages/iterdpo.c: the iterative_dpo stage: online DPO (Xiong et al. 2024, Guo et al.
// 2024). Each of iterative.rounds rounds labels samples of the current policy (round 0: init)
// with the stage's judge, on its own slice of the prompts, then trains `steps` DPO steps from
// that policy on the pairs; the next round starts from the result. Every round lives in
// <stage>/round-<r>/ (pref.h5, pref-val.h5, labels.jsonl, label.json, then the dpo stage's
// metrics.jsonl, checkpoints and final.h5), so a rerun skips finished rounds and finished
// labelling and resumes the round in progress from its newest checkpoint. At the end
// <stage>/rounds.jsonl holds one line per round and <stage>/final.h5 is the last round's.
#include "common/check.h"
#include "common/fs.h"
#include "train/run/state.h"
#include "train/stages/dpo.h"
#include "train/stages/pairs.h"
#include "train/stages/stages.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Where round r keeps its files.
typedef struct {
    char name[300];     // "<stage>/round-<r>": the round's messages and random streams
    char dir[4000];     // <stage>/round-<r>
    char final[4300];   // its final.h5
    char pref[2][4300]; // its pairs: training, validation
    char labels[4300];  // labels.jsonl
    char summary[4300]; // label.json
} Round;

static void round_init(const StageRun *sr, int r, Round *rd) {
    snprintf(rd->name, sizeof(rd->name), "%s/round-%d", sr->stage->name, r);
    if (snprintf(rd->dir, sizeof(rd->dir), "%s/round-%d", sr->dir, r) >= (int)sizeof(rd->dir))
        LC_DIE("the run directory's path is too long: %s", sr->dir);
    snprintf(rd->final, sizeof(rd->final), "%s/final.h5", rd->dir);
    snprintf(rd->pref[0], sizeof(rd->pref[0]), "%s/pref.h5", rd->dir);
    snprintf(rd->pref[1], sizeof(rd->pref[1]), "%s/pref-val.h5", rd->dir);
    snprintf(rd->labels, sizeof(rd->labels), "%s/labels.jsonl", rd->dir);
    snprintf(rd->summary, sizeof(rd->summary), "%s/label.json", rd->dir);
}

// Labels the round's prompts with samples of `start` (rank 0; skipped when done).
static int round_label(StageRun *sr, StageRun *child, const Round *rd, int r, const char *start,
                       LabelStats *st) {
    LabelJob job = {.model = start,
                    .pref = {rd->pref[0], rd->pref[1]},
                    .labels = rd->labels,
                    .summary = rd->summary,
                    .seed = stage_seed(child, "label"),
                    .per_round = sr->stage->iterative.prompts_per_round,
                    .round = r,
                    .order_seed = stage_seed(sr, "prompt order")};
    int rc = sr->run->rank == 0 ? label_sample(child, &job, st) : 0;
    if (!rc && sr->run->rank == 0 && st->pairs[0] == 0) {
        fprintf(stderr,
                "layercake: stage '%s': round %d: the labelling gave no training pair (%ld "
                "prompts, %ld left out: no correct sample, or all scored alike); see %s "
                "(hint: more prompts, a larger rollout.group_size, or a stronger init)\n",
                sr->stage->name, r, st->prompts, st->left_out, rd->labels);
        rc = 1;
    }
    if (run_agree(sr->run, rc)) return 1;
    // every process learns whether there is a validation split
    double val = (double)st->pairs[1];
    sr->run->comm->broadcast_host(sr->run->comm, &val, sizeof(val), 0);
    st->pairs[1] = (long)val;
    return 0;
}

// Runs round r from the policy `start` (a stage name or checkpoint); its final.h5 then lies in
// rd->final. 0, or 1 after printing.
static int run_round(StageRun *sr, int r, const char *start, const Round *rd) {
    const Stage *st = sr->stage;
    Stage cs = *st; // the round is a dpo stage of its own folder
    cs.kind = STAGE_DPO;
    cs.name = (char *)rd->name;
    cs.init = (char *)start;
    StageRun child = {.run = sr->run, .stage = &cs, .index = sr->index};
    snprintf(child.dir, sizeof(child.dir), "%s", rd->dir);
    if (state_is_complete(rd->final) == 1) {
        printf("[%s] round %d already complete (%s); skipping\n", st->name, r, rd->final);
        return 0;
    }
    int made = sr->run->rank == 0 && fs_mkdirs(rd->dir) != 0;
    if (made) fprintf(stderr, "layercake: cannot create %s\n", rd->dir);
    if (run_agree(sr->run, made)) return 1;
    printf("[%s] round %d (of %d): labelling samples of %s\n", st->name, r, st->iterative.rounds,
           stage_start_name(sr, start));
    LabelStats ls = {0};
    if (round_label(sr, &child, rd, r, start, &ls)) return 1;
    cs.data.prompts = (char *)"";
    cs.data.train = (char *)rd->pref[0];
    cs.data.val = ls.pairs[1] > 0 ? (char *)rd->pref[1] : (char *)"";
    const char *reference = st->iterative.reference == ITERATIVE_REFERENCE_INIT ? st->init : NULL;
    return dpo_train(&child, reference);
}

// ---- rounds.jsonl and final.h5 ------------------------------------------------------------------

// The last training row of a round's metrics.jsonl (loss, reward accuracy), or NULL.
static json_t *last_train_row(const Round *rd) {
    char path[4400], line[65536];
    snprintf(path, sizeof(path), "%s/metrics.jsonl", rd->dir);
    FILE *f = fopen(path, "r");
    json_t *last = NULL;
    while (f && fgets(line, sizeof(line), f)) {
        json_t *row = json_loads(line, 0, NULL);
        if (row && json_object_get(row, "loss") && !json_object_get(row, "split"))
            json_decref(last), last = row;
        else
            json_decref(row);
    }
    if (f) fclose(f);
    return last;
}

static json_t *number_or_null(const json_t *row, const char *key) {
    const json_t *v = row ? json_object_get(row, key) : NULL;
    return json_is_number(v) ? json_real(json_number_value(v)) : json_null();
}

// One line of rounds.jsonl.
static json_t *round_row(const Round *rd, int r) {
    LabelStats s = {0};
    label_read_summary(rd->summary, &s);
    json_t *m = last_train_row(rd);
    json_t *row = json_pack(
        "{s:i, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o}", "round", r, "prompts",
        (json_int_t)s.prompts, "pairs", (json_int_t)s.pairs[0], "val_pairs", (json_int_t)s.pairs[1],
        "left_out", (json_int_t)s.left_out, "mean_score",
        s.responses ? json_real(s.score_sum / (double)s.responses) : json_null(), "accuracy",
        s.known ? json_real((double)s.correct / (double)s.known) : json_null(), "dpo_loss",
        number_or_null(m, "loss"), "dpo_reward_accuracy", number_or_null(m, "rewards/accuracies"));
    json_decref(m);
    return row;
}

static int write_rounds(const StageRun *sr) {
    size_t cap = 4096, n = 0;
    char *text = malloc(cap), path[4200], err[1024];
    for (int r = 0; text && r < sr->stage->iterative.rounds; r++) {
        Round rd;
        round_init(sr, r, &rd);
        json_t *row = round_row(&rd, r);
        char *line = row ? json_dumps(row, JSON_COMPACT) : NULL;
        json_decref(row);
        size_t len = line ? strlen(line) : 0;
        char *grown = line && n + len + 2 > cap ? realloc(text, cap = 2 * (n + len + 2)) : text;
        if (!line || !grown) {
            free(line), free(grown == text ? NULL : grown), free(text);
            text = NULL;
            break;
        }
        text = grown;
        memcpy(text + n, line, len);
        n += len, text[n++] = '\n';
        free(line);
    }
    snprintf(path, sizeof(path), "%s/rounds.jsonl", sr->dir);
    int rc = text ? fs_write_atomic(path, text, n, err, sizeof(err)) : -1;
    if (rc) fprintf(stderr, "layercake: stage '%s': cannot write %s\n", sr->stage->name, path);
    free(text);
    return rc ? 1 : 0;
}

// <stage>/final.h5 = the last round's, put in place atomically (a hard link, else a copy).
static int publish_final(const StageRun *sr, const char *last) {
    char path[4200], tmp[4300], err[1024];
    snprintf(path, sizeof(path), "%s/final.h5", sr->dir);
    snprintf(tmp, sizeof(tmp), "%s.partial", path);
    unlink(tmp);
    if (link(last, tmp) == 0 && rename(tmp, path) == 0) return 0;
    FILE *f = fopen(last, "rb");
    char *buf = NULL;
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)size);
        if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) size = -1;
    }
    if (f) fclose(f);
    int rc = buf && size > 0 ? fs_write_atomic(path, buf, (size_t)size, err, sizeof(err)) : -1;
    free(buf);
    if (rc) fprintf(stderr, "layercake: stage '%s': cannot write %s\n", sr->stage->name, path);
    return rc ? 1 : 0;
}

int stage_iterative_dpo(StageRun *sr) {
    const Stage *st = sr->stage;
    Round rd;
    char start[4300];
    snprintf(start, sizeof(start), "%s", st->init);
    for (int r = 0; r < st->iterative.rounds; r++) {
        round_init(sr, r, &rd);
        if (run_round(sr, r, start, &rd)) return 1;
        snprintf(start, sizeof(start), "%s", rd.final);
    }
    int rc = sr->run->rank == 0 ? write_rounds(sr) || publish_final(sr, rd.final) : 0;
    if (run_agree(sr->run, rc)) return 1;
    printf("[%s] done: %d rounds, %s/rounds.jsonl, %s/final.h5\n", st->name, st->iterative.rounds,
           sr->dir, sr->dir);
    return 0;
}
