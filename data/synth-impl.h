// data/synth-impl.h: what a task world implements, the table behind SynthTask. The generic
// generator (data/synth.c) asks a task for problems, plausible mistakes and scores, and builds
// every dataset from them; a task lives in one file, data/task_<name>.c, and is listed in
// synth.c's table. Not part of the public API.
#pragma once
#include "common/rng.h"
#include "data/synth.h"

#define SYNTH_END      "<|endoftext|>" // how a response's end token decodes
#define SYNTH_TEXT_MAX 64              // room for a task's prompt or answer, NUL included

typedef struct {
    char prompt[SYNTH_TEXT_MAX]; // the question, ending where the answer starts ("37+485=")
    char answer[SYNTH_TEXT_MAX]; // the correct response before its end token (" 522")
} SynthProblem;

struct SynthTask {
    const char *name;
    int default_difficulty, max_difficulty;
    // One line saying what the task is at a difficulty.
    void (*describe)(int difficulty, char *buf, size_t len);
    // Draws a problem from the task's distribution at a difficulty.
    void (*sample)(Rng *rng, int difficulty, SynthProblem *p);
    // Writes a plausible wrong answer to p (never p->answer) into out[SYNTH_TEXT_MAX].
    void (*mistake)(Rng *rng, const SynthProblem *p, char *out);
    // The reference answer to a prompt, as synth_answer.
    int (*answer)(const char *prompt, size_t prompt_len, char *buf, size_t len);
    // The gold reward and exactness of a response to a problem with this reference answer.
    // body is the response before its end token; stopped says the end token came right after
    // it (a response cut off by the token limit, or with text after its end, did not stop).
    double (*reward)(const char *answer, const char *body, size_t body_len, bool stopped);
    bool (*correct)(const char *answer, const char *body, size_t body_len, bool stopped);
};

extern const SynthTask synth_task_arithmetic; // data/task_arithmetic.c
