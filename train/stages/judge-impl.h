// train/stages/judge-impl.h: the judge's state, shared by the files of its kinds (judge.c: the
// interface, gold and reward_model; judge_match.c; judge_command.c; judge_model.c).
#pragma once
#include "train/stages/judge.h"
#include <sys/types.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

typedef enum { JK_GOLD, JK_RM, JK_MATCH, JK_COMMAND, JK_MODEL } JudgeImplKind;

// A running judge.command (judge_command.c).
typedef struct {
    pid_t pid;     // the child, -1 when none runs
    int in, out;   // pipe ends: its stdin (we write), its stdout (we read); -1 when closed
    char *buf;     // (cap) bytes read and not yet consumed
    size_t len;    // bytes held in buf
    size_t cap;    // bytes allocated
    char *command; // the command line as the recipe gives it
} JudgeCommand;

struct Judge {
    JudgeImplKind kind;
    StageRun *sr;
    int rows, seq_len;  // the most items of one call; the longest prompt + response in tokens
    const Model *trunk; // JudgeOptions.trunk
    char name[512];     // judge_name
    // gold
    const struct SynthTask *task;
    // reward_model and model
    Model *model;   // frozen, (rows, seq_len) in inference mode
    Batch b;        // (rows, seq_len) rows of one forward
    float *fscores; // (rows) the reward model's scores
    int stop[2];    // the tokens a response ends with: the chat's end of turn, end-of-text
    // match
    pcre2_code *re;       // judge.regex compiled, or NULL for the whole response
    pcre2_match_data *md; // its match data
    int match_group;      // the group that is the answer: 1 when the pattern has one, else 0
    // command
    JudgeCommand cmd;
    // model
    int verdict[2]; // the two verdict tokens
    Model *view;    // a view of model with its whole context, (max_B, ctx)
    int ctx;        // the judge model's context in tokens
};

// Prints "layercake: <where key was set>: <stage>.<key>: <message>".
void judge_report(const StageRun *sr, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// s (n bytes) as match compares it with judge.normalize: a malloc'd string, lowercased,
// trimmed, whitespace runs collapsed to one space, trailing . , ! ? stripped.
char *judge_normalize(const char *s, size_t n);
int judge_match_open(Judge *j);
void judge_match_close(Judge *j);
int judge_match_score(Judge *j, const JudgeItem *items, int n, double *scores, double *correct);

int judge_command_open(Judge *j);
void judge_command_close(Judge *j);
int judge_command_score(Judge *j, const JudgeItem *items, int n, double *scores, double *correct);

int judge_model_open(Judge *j);
void judge_model_close(Judge *j);
int judge_model_score(Judge *j, const JudgeItem *items, int n, int group, double *scores,
                      double *correct);
int judge_model_prefer(Judge *j, const JudgeItem *a, const JudgeItem *b, double *p_a);
