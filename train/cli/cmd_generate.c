// train/cli/cmd_generate.c: `layercake generate CHECKPOINT --prompt TEXT`: samples a continuation
// from any checkpoint (a stage's final.h5 or a periodic one), with the KV-cache sampler.
#include "common/check.h"
#include "data/chat.h"
#include "model/checkpoint.h"
#include "model/sample.h"
#include "common/parse.h"
#include "train/cli/commands.h"
#include "train/run/state.h"
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *checkpoint, *prompt, *tokenizer;
    int max_new, top_k, chat, n;
    float temperature, top_p;
    uint64_t seed;
} GenArgs;

static void usage(FILE *f) {
    fprintf(f,
            "usage: layercake generate CHECKPOINT.h5 --prompt TEXT [--max-new-tokens N]\n"
            "                          [--temperature T] [--top-k K] [--top-p P] [--seed S]\n"
            "                          [--samples N] [--chat] [--tokenizer PATH]\n"
            "\nSamples continuations of TEXT. --chat wraps TEXT as a user turn of the chat\n"
            "template and stops at the end of the assistant's turn. The tokenizer is the one\n"
            "recorded in the checkpoint unless --tokenizer is given. Temperature 0 is greedy.\n");
}

static int parse(int argc, char **argv, GenArgs *a) {
    *a = (GenArgs){.max_new = 64, .temperature = 0.8f, .top_p = 1.0f, .seed = 1, .n = 1};
    static const struct option opts[] = {{"prompt", 1, 0, 'p'},
                                         {"max-new-tokens", 1, 0, 'n'},
                                         {"temperature", 1, 0, 't'},
                                         {"top-k", 1, 0, 'k'},
                                         {"top-p", 1, 0, 'P'},
                                         {"seed", 1, 0, 's'},
                                         {"tokenizer", 1, 0, 'T'},
                                         {"chat", 0, 0, 'c'},
                                         {"samples", 1, 0, 'N'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c, idx = 0, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        switch (c) {
        case 'p':
            a->prompt = optarg;
            break;
        case 'n':
            bad |= parse_int(optarg, &a->max_new);
            break;
        case 't':
            bad |= parse_float(optarg, &a->temperature);
            break;
        case 'k':
            bad |= parse_int(optarg, &a->top_k);
            break;
        case 'P':
            bad |= parse_float(optarg, &a->top_p);
            break;
        case 's':
            bad |= parse_u64(optarg, &a->seed);
            break;
        case 'T':
            a->tokenizer = optarg;
            break;
        case 'c':
            a->chat = 1;
            break;
        case 'N':
            bad |= parse_int(optarg, &a->n);
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "layercake generate: --%s: \'%s\' is not a number\n", opts[idx].name,
                    optarg);
            return 2;
        }
    }
    if (optind != argc - 1 || !a->prompt || a->max_new < 1 || a->n < 1 || a->temperature < 0 ||
        a->top_p <= 0 || a->top_p > 1 || a->top_k < 0) {
        usage(stderr);
        return 2;
    }
    a->checkpoint = argv[optind];
    return 0;
}

static void render(const Tokenizer *tok, const GenArgs *a, TokenBuf *p, int *stop) {
    Chat chat = chat_init(tok);
    if (a->chat) {
        ChatMessage msg = {CHAT_USER, a->prompt, strlen(a->prompt)};
        chat_render(&chat, &msg, 1, p);
        chat_header(&chat, p);
        *stop = chat.end;
    } else {
        int *ids = NULL, n = tokenizer_encode(tok, a->prompt, strlen(a->prompt), 1, &ids);
        tokenbuf_push(p, ids, n, 0);
        free(ids);
        *stop = tokenizer_eot(tok);
    }
    if (p->n == 0) tokenbuf_push(p, stop, 1, 0); // an empty prompt starts from end-of-text
}

static int generate(GPT2 *m, const Tokenizer *tok, const GenArgs *a) {
    TokenBuf p = {0};
    int stop, rc = 0;
    render(tok, a, &p, &stop);
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
    SampleParams sp = {a->temperature, a->top_k, a->top_p, stop, len - (int)p.n};
    int *out = lc_malloc(sizeof(int) * (size_t)sp.max_new_tokens), olen, plen = (int)p.n;
    float *lp = lc_malloc(sizeof(float) * (size_t)sp.max_new_tokens);
    Rng rng = rng_init(a->seed);
    for (int i = 0; i < a->n && !rc; i++) {
        sampler_generate(s, p.ids, plen, &plen, 1, &sp, &rng, out, lp, &olen);
        size_t bytes;
        char *text = tokenizer_decode(tok, out, olen, &bytes);
        if (!text)
            rc = 1;
        else {
            if (a->n > 1) printf("--- sample %d\n", i + 1);
            printf("%s%.*s\n", a->chat ? "" : a->prompt, (int)bytes, text);
        }
        free(text);
    }
    free(out), free(lp);
    sampler_free(s);
    tokenbuf_free(&p);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    GenArgs a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    char err[1024], tokpath[4096];
    if (!a.tokenizer) {
        if (state_tokenizer_path(a.checkpoint, tokpath, sizeof(tokpath)) != 0) {
            fprintf(stderr, "layercake generate: %s records no tokenizer; pass --tokenizer\n",
                    a.checkpoint);
            return 1;
        }
        a.tokenizer = tokpath;
    }
    Tokenizer *tok = tokenizer_load(a.tokenizer, err, sizeof(err));
    if (!tok) {
        fprintf(stderr, "layercake generate: %s\n", err);
        return 1;
    }
    GPT2 *m =
        gpt2_load(backend_cpu(), a.checkpoint, GPT2_HEAD_LM, GPT2_INFER, 1, 1, 0, err, sizeof(err));
    if (!m) {
        fprintf(stderr, "layercake generate: %s\n", err);
        tokenizer_free(tok);
        return 1;
    }
    rc = generate(m, tok, &a);
    gpt2_free(m);
    tokenizer_free(tok);
    return rc;
}
