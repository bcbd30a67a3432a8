// train/stages/judge.h: the judge, what scores a response to a prompt, behind one interface for
// every stage that scores text (ppo, grpo, rloo, eval, label, iterative_dpo, and dpo and reward
// given prompts to sample pairs from). A stage's judge comes from its keys (docs/judges.md):
//
//   gold_reward: <task>      gold   a built-in task's exact reward (data/synth.h)
//   reward_model: <stage>    reward_model  the scalar head of a reward-model checkpoint
//   judge.kind: match        match  the answer a regex extracts from the response, exactly or
//                                   after normalisation, against the prompt's reference answer
//   judge.kind: command      command  an external program started once per stage: JSONL
//                                   {"prompt", "response"} lines on its stdin, one score per
//                                   line on its stdout, under a timeout
//   judge.kind: model        model  an LLM judge: a checkpoint prompted with a rubric template,
//                                   scored by the log-probabilities of the verdict tokens,
//                                   pointwise, or pairwise in both orders to cancel position bias
//
// A stage has at most one judge that trains it; eval scores with its gold task (the arena's
// judge) and, alongside, with its judge or reward model.
#pragma once
#include "train/run/run.h"
#include <stdbool.h>

typedef struct Judge Judge;

// One response to score. Text for the text kinds, ids for the reward model.
typedef struct {
    const char *prompt;      // the prompt as decoded (chat template included), NUL-terminated
    const char *response;    // the response as decoded, without its end token
    const int *prompt_ids;   // (prompt_len) the prompt's tokens
    int prompt_len;          // ()
    const int *response_ids; // (response_len) the response's tokens, its end token included
    int response_len;        // () when it ended one
    const char *reference;   // the prompt's reference answer (prompt datasets), or NULL
} JudgeItem;

// Which of a stage's judges judge_open_with opens.
typedef enum {
    JUDGE_ANY,       // judge.kind when set, else reward_model, else gold_reward (judge_open)
    JUDGE_ONLY_GOLD, // gold_reward only (eval: the arena's judge)
    JUDGE_NOT_GOLD,  // judge.kind or reward_model only (eval: the judge beside gold)
} JudgeWhich;

typedef struct {
    JudgeWhich which;   // JUDGE_ANY by default
    const Model *trunk; // a LoRA stage's policy: a judge checkpoint of adapters over its base
                        // weights loads as a view on it (stage_model_on_trunk); NULL: whole
} JudgeOptions;

// Opens the judge of stage sr: its judge.kind when set, else its reward_model, else its
// gold_reward. rows: the most items one judge_score call scores; seq_len: the longest
// prompt + response in tokens (a reward model's rows). NULL after printing why (a message
// naming the recipe key), or when the stage has no judge.
Judge *judge_open(StageRun *sr, int rows, int seq_len);
// judge_open with options (NULL: the defaults).
Judge *judge_open_with(StageRun *sr, int rows, int seq_len, const JudgeOptions *o);
void judge_close(Judge *j);

// Scores items (n <= rows) into scores (n): items come in groups of `group` consecutive
// responses to one prompt (group 1: no grouping). A pointwise judge scores each alone; a
// pairwise one scores each response by its mean probability of being preferred over the
// others of its group, each pair judged in both orders. correct (n, may be NULL): 1 or 0
// where the judge knows exact correctness (gold, match), NAN elsewhere. Returns 0, or -1 after
// printing why (a command that timed out, exited non-zero or printed a bad line); nothing is
// half-written by the caller then.
int judge_score(Judge *j, const JudgeItem *items, int n, int group, double *scores,
                double *correct);

// The probability (0..1) that response a is better than b to the same prompt, from a pairwise
// LLM judge averaged over both orders, else from the two scores (1, 0.5 on a tie, 0). Returns
// 0, or -1 after printing.
int judge_prefer(Judge *j, const JudgeItem *a, const JudgeItem *b, double *p_a);

// What judges, for messages and results: "gold arithmetic", "reward_model reward",
// "match", "command ./score.sh", "model judge (pairwise)".
const char *judge_name(const Judge *j);
// Whether judge_score fills correct.
bool judge_knows_correct(const Judge *j);
// The model a reward_model or model judge holds (memory reports; a LoRA PPO critic's trunk), or
// NULL (also for a NULL judge).
const Model *judge_model(const Judge *j);
