// train/cli/cmd_generate.c: `layercake generate CHECKPOINT --prompt TEXT`: samples a continuation
// from any checkpoint (a stage's final.h5 or a periodic one), with the KV-cache sampler.
#include "common/check.h"
#include "data/chat.h"
#include "model/checkpoint.h"
#include "model/sample.h"
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
    const char *checkpoint, *prompt, *tokenizer;
    const char *chat_template; // --chat-template NAME (NULL: auto)
    int max_new, top_k, n;     // tokens to generate, top-k (0: off), samples
    bool chat, show_prompt;
    float temperature, top_p;
    uint64_t seed;
} GenArgs;

static const char DESCRIPTION[] =
    "Samples continuations of TEXT. --chat wraps TEXT as a user turn of the chat template\n"
    "followed by the assistant header, and stops at the end of the assistant's turn;\n"
    "--chat-template names the template (docs/chat-templates.md; default auto: roles when the\n"
    "tokenizer has role tokens, else hh). The tokenizer is the one recorded in the checkpoint\n"
    "unless --tokenizer is given. Temperature 0 is greedy.\n";

// Returns OPTIONS_CONTINUE or the exit status (0 after --help, 2 for a bad command line).
static int parse(int argc, char **argv, GenArgs *a) {
    *a = (GenArgs){.max_new = 64, .temperature = 0.8f, .top_p = 1.0f, .seed = 1, .n = 1};
    const Option opts[] = {
        {"prompt", 'p', OPT_STRING, &a->prompt, 0, 0, true, "TEXT", "the text to continue"},
        {"max-new-tokens", 'n', OPT_INT, &a->max_new, 1, INFINITY, false, "N",
         "tokens to generate at most (default 64)"},
        {"temperature", 't', OPT_FLOAT, &a->temperature, 0, INFINITY, false, "T",
         "sampling temperature; 0 is greedy (default 0.8)"},
        {"top-k", 'k', OPT_INT, &a->top_k, 0, INFINITY, false, "K",
         "sample among the K likeliest tokens; 0: all (default 0)"},
        {"top-p", 0, OPT_FLOAT, &a->top_p, 0, 1, false, "P",
         "sample among the likeliest tokens of mass P (default 1)"},
        {"seed", 's', OPT_U64, &a->seed, 0, 0, false, "S", "random seed (default 1)"},
        {"samples", 0, OPT_INT, &a->n, 1, INFINITY, false, "N", "samples to draw (default 1)"},
        {"chat", 0, OPT_FLAG, &a->chat, 0, 0, false, NULL,
         "wrap TEXT as a user turn of the chat template"},
        {"chat-template", 0, OPT_STRING, &a->chat_template, 0, 0, false, "NAME",
         "with --chat: auto, chatml, llama3, llama2, zephyr, hh, plain or roles (default auto)"},
        {"show-prompt", 0, OPT_FLAG, &a->show_prompt, 0, 0, false, NULL,
         "print the prompt as the model gets it (decoded) before the samples"},
        {"tokenizer", 0, OPT_STRING, &a->tokenizer, 0, 0, false, "PATH",
         "the tokenizer (default: the one the checkpoint records)"},
        {0}};
    const OptionsCommand cmd = {.name = "generate",
                                .synopsis = "CHECKPOINT.h5 --prompt TEXT [options]",
                                .summary = "sample from a checkpoint",
                                .description = DESCRIPTION,
                                .options = opts,
                                .args = "CHECKPOINT.h5",
                                .min_args = 1,
                                .max_args = 1};
    OptionArgs args;
    int rc = options_parse(&cmd, argc, argv, &args);
    char err[512];
    ChatTemplate t;
    if (rc == OPTIONS_CONTINUE && a->top_p <= 0)
        rc = options_usage_error(&cmd, "--top-p: %g is out of range: it must be above 0", a->top_p);
    else if (rc == OPTIONS_CONTINUE && a->chat_template && !a->chat)
        rc = options_usage_error(&cmd, "--chat-template needs --chat");
    else if (rc == OPTIONS_CONTINUE && chat_template_parse(a->chat_template, &t, err, sizeof(err)))
        rc = options_usage_error(&cmd, "--chat-template: %s", err);
    if (rc == OPTIONS_CONTINUE) a->checkpoint = args.v[0];
    return rc;
}

// The prompt's ids and the token generation stops at.
static void render(const Tokenizer *tok, const GenArgs *a, TokenBuf *p, int *stop) {
    if (a->chat) {
        // auto: the model's own template (tokenizer_config.json's chat_template) when known;
        // the name was checked when the command line was read
        Chat chat = chat_init_named(tok, a->chat_template, tokenizer_chat_template(tok), NULL, 0);
        LC_ASSERT(chat.tok != NULL);
        chat_prompt(&chat, a->prompt, strlen(a->prompt), p);
        *stop = chat.end;
    } else {
        int *ids = NULL, n = tokenizer_encode(tok, a->prompt, strlen(a->prompt), 1, &ids);
        int bos = tokenizer_bos(tok); // as the importers start prompts (docs/datasets.md)
        if (bos >= 0 && n > 0) tokenbuf_push(p, &bos, 1, 0);
        tokenbuf_push(p, ids, n, 0);
        free(ids);
        *stop = tokenizer_eot(tok);
    }
    // an empty prompt starts from BOS, or end-of-text for tokenizers without one (GPT-2)
    int start = tokenizer_bos(tok) >= 0 ? tokenizer_bos(tok) : tokenizer_eot(tok);
    if (p->n == 0 && start >= 0) tokenbuf_push(p, &start, 1, 0);
}

static int generate(Model *m, const Tokenizer *tok, const GenArgs *a) {
    TokenBuf p = {0};
    int stop, rc = 0;
    render(tok, a, &p, &stop);
    if (p.n == 0) {
        fprintf(stderr, "layercake generate: an empty prompt needs a tokenizer with a BOS or an "
                        "end-of-text token to start from; give --prompt\n");
        return 2;
    }
    if (a->show_prompt) {
        size_t bytes;
        char *text = tokenizer_decode(tok, p.ids, (int)p.n, &bytes);
        LC_ASSERT(text != NULL); // the tokenizer made the ids
        printf("--- prompt\n%.*s\n", (int)bytes, text);
        free(text);
    }
    int maxT = m->cfg.max_seq_len, len = (int)p.n + a->max_new;
    if (len > maxT) len = maxT;
    if (p.n >= len) {
        fprintf(stderr,
                "layercake generate: the prompt has %lld tokens; the model's context is "
                "%d\n",
                (long long)p.n, maxT);
        tokenbuf_free(&p);
        return 1;
    }
    Sampler *s = sampler_create(m, 1, len, 1);
    SampleParams sp = {.temperature = a->temperature,
                       .top_k = a->top_k,
                       .top_p = a->top_p,
                       .stop_token = stop,
                       .max_new_tokens = len - (int)p.n};
    int *out = lc_malloc(sizeof(int) * (size_t)sp.max_new_tokens), olen, plen = (int)p.n;
    float *lp = lc_malloc(sizeof(float) * (size_t)sp.max_new_tokens);
    Rng rng = rng_init(a->seed);
    for (int i = 0; i < a->n && !rc; i++) {
        sampler_generate(s, p.ids, plen, &plen, 1, &sp, &rng, out, lp, &olen);
        size_t bytes;
        char *text = tokenizer_decode(tok, out, olen, &bytes);
        if (!text) { // the model's vocabulary is larger than the tokenizer's
            fprintf(stderr,
                    "layercake generate: sample %d holds an id the tokenizer %s cannot decode "
                    "(it has %d ids; the model %d)\n",
                    i + 1, a->tokenizer, tokenizer_vocab_size(tok), m->cfg.vocab_size);
            rc = 1;
        } else {
            if (a->n > 1 || a->show_prompt) printf("--- sample %d\n", i + 1);
            printf("%s%.*s\n", a->chat ? "" : a->prompt, (int)bytes, text);
        }
        free(text);
    }
    free(out), free(lp);
    sampler_free(s);
    tokenbuf_free(&p);
    return rc;
}

// The tokenizer: --tokenizer, or the one the checkpoint records; checked against the model.
static Tokenizer *tokenizer_for(GenArgs *a, const CheckpointInfo *ci, char *path, size_t len) {
    char err[2048];
    if (!a->tokenizer) {
        if (state_tokenizer_path(a->checkpoint, path, len) != 0) {
            fprintf(stderr,
                    "layercake generate: %s records no tokenizer (a weights-only checkpoint); "
                    "pass --tokenizer\n",
                    a->checkpoint);
            return NULL;
        }
        a->tokenizer = path;
    }
    Tokenizer *tok = tokenizer_load(a->tokenizer, err, sizeof(err));
    if (tok && run_check_tokenizer(a->checkpoint, ci, a->tokenizer, tok, err, sizeof(err))) {
        tokenizer_free(tok);
        tok = NULL;
    }
    if (!tok) fprintf(stderr, "layercake generate: %s\n", err);
    return tok;
}

int cmd_generate(int argc, char **argv) {
    GenArgs a;
    int rc = parse(argc, argv, &a);
    if (rc != OPTIONS_CONTINUE) return rc;
    char err[2048], tokpath[4096];
    CheckpointInfo ci;
    if (run_checkpoint_info(a.checkpoint, &ci, err, sizeof(err)) != 0) {
        fprintf(stderr, "layercake generate: %s\n", err);
        return 1;
    }
    Tokenizer *tok = tokenizer_for(&a, &ci, tokpath, sizeof(tokpath));
    if (!tok) return 1;
    Model *m = model_load(backend_cpu(), a.checkpoint, MODEL_HEAD_LM, MODEL_INFER, 1, 1, 0, err,
                          sizeof(err));
    if (!m) {
        fprintf(stderr, "layercake generate: %s\n", err);
        tokenizer_free(tok);
        return 1;
    }
    rc = generate(m, tok, &a);
    model_free(m);
    tokenizer_free(tok);
    return rc;
}
