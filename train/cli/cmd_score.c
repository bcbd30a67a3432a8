// train/cli/cmd_score.c: `layercake score CHECKPOINT --data FILE.h5`: a reward model's scores of
// every example of a dataset: prompt + response (sft datasets) or both responses of each pair
// (preference datasets, with the accuracy of chosen over rejected).
#include "common/check.h"
#include "data/loader.h"
#include "model/checkpoint.h"
#include "common/parse.h"
#include "train/cli/commands.h"
#include "train/stages/readouts.h"
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: layercake score CHECKPOINT.h5 --data FILE.h5 [--batch N] [--json]\n"
               "\nPrints a reward model's score of every example: one line per sft example\n"
               "(index, reward) or per preference pair (index, chosen, rejected), then a summary.\n"
               "--json prints one JSON object per line instead.\n");
}

typedef struct {
    const char *ckpt, *data;
    int batch, json;
} ScoreArgs;

static int parse(int argc, char **argv, ScoreArgs *a) {
    *a = (ScoreArgs){.batch = 16};
    static const struct option opts[] = {{"data", 1, 0, 'd'},
                                         {"batch", 1, 0, 'b'},
                                         {"json", 0, 0, 'j'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c, idx = 0, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        switch (c) {
        case 'd':
            a->data = optarg;
            break;
        case 'b':
            bad |= parse_int(optarg, &a->batch);
            break;
        case 'j':
            a->json = 1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "layercake score: --%s: \'%s\' is not a number\n", opts[idx].name,
                    optarg);
            return 2;
        }
    }
    if (optind != argc - 1 || !a->data || a->batch < 1) {
        usage(stderr);
        return 2;
    }
    a->ckpt = argv[optind];
    return 0;
}

// Prints the scores of one batch; accumulates the summary.
static void print_batch(const ScoreArgs *a, Loader *l, const Batch *b, const float *r, int pairs,
                        double *sum, long *n, long *correct) {
    int units = pairs ? b->B / 2 : b->B;
    for (int u = 0; u < units; u++) {
        int row = pairs ? 2 * u : u;
        if (b->len[row] == 0) continue;
        long idx = (long)loader_example_index(l, row, 0);
        if (pairs) {
            float rc = r[row], rr = r[row + 1];
            *correct += rc > rr;
            *sum += rc + rr;
            *n += 2;
            if (a->json)
                printf("{\"index\": %ld, \"chosen\": %.6g, \"rejected\": %.6g}\n", idx, rc, rr);
            else
                printf("%ld\t%.6g\t%.6g\n", idx, rc, rr);
        } else {
            *sum += r[row];
            *n += 1;
            if (a->json)
                printf("{\"index\": %ld, \"reward\": %.6g}\n", idx, r[row]);
            else
                printf("%ld\t%.6g\n", idx, r[row]);
        }
    }
}

static int score(const ScoreArgs *a, GPT2 *rm, DataKind kind) {
    char err[1024];
    int pairs = kind == DATA_PREFERENCE;
    LoaderOptions o = {.batch = a->batch,
                       .T = rm->cfg.max_seq_len,
                       .world = 1,
                       .vocab_size = rm->cfg.vocab_size,
                       .drop_long = 1};
    Loader *l = loader_open(a->data, kind, &o, err, sizeof(err));
    if (!l) {
        fprintf(stderr, "layercake score: %s\n", err);
        return 1;
    }
    int rows = loader_rows(l);
    GPT2 *view = gpt2_create_view(rm, GPT2_INFER, rows, rm->cfg.max_seq_len);
    float *r = lc_calloc((size_t)rows, sizeof(float));
    double sum = 0;
    long n = 0, correct = 0;
    Batch b;
    for (int64_t s = 0; s < loader_steps_per_epoch(l); s++) {
        if (loader_next(l, &b) < 0) {
            fprintf(stderr, "layercake score: %s\n", loader_error(l));
            break;
        }
        reward_scores(view, &b, r);
        print_batch(a, l, &b, r, pairs, &sum, &n, &correct);
    }
    if (!a->json) {
        printf("# %ld scores, mean %.4f", n, n ? sum / (double)n : NAN);
        if (pairs)
            printf(", chosen above rejected in %.2f%% of %ld pairs",
                   100.0 * (double)correct / (double)(n / 2), n / 2);
        if (loader_dropped(l))
            printf(", %lld examples longer than %d tokens left out", (long long)loader_dropped(l),
                   o.T);
        printf("\n");
    }
    free(r);
    gpt2_free(view);
    loader_free(l);
    return 0;
}

int cmd_score(int argc, char **argv) {
    ScoreArgs a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    char err[1024];
    Dataset *d = dataset_open(a.data, DATA_KIND_COUNT, err, sizeof(err));
    if (!d) {
        fprintf(stderr, "layercake score: %s\n", err);
        return 1;
    }
    DataKind kind = d->kind;
    dataset_free(d);
    if (kind != DATA_SFT && kind != DATA_PREFERENCE) {
        fprintf(stderr,
                "layercake score: %s: a %s dataset; scoring needs prompt + response "
                "(sft) or preference data\n",
                a.data, data_kind_name(kind));
        return 1;
    }
    GPT2 *rm = gpt2_load(backend_cpu(), a.ckpt, 0, GPT2_INFER, 1, 1, 0, err, sizeof(err));
    if (!rm) {
        fprintf(stderr, "layercake score: %s\n", err);
        return 1;
    }
    if (!(rm->heads & GPT2_HEAD_SCALAR)) {
        fprintf(stderr, "layercake score: %s has no scalar head: not a reward model\n", a.ckpt);
        gpt2_free(rm);
        return 1;
    }
    rc = score(&a, rm, kind);
    gpt2_free(rm);
    return rc;
}
