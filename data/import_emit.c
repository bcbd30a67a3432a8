// data/import_emit.c: the importer's output side: an example held in Importer.p cut to the
// wanted kind (sft, preference, prompt) or an lm document, split between the training and
// validation files by a hash, and written (or dropped as too long and counted). The input
// side (import.c for files, import_json.c for JSONL lines) calls in here; nothing here calls
// back, so the importer's files depend on each other one way.
#include "common/check.h"
#include "data/import-impl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull; // FNV-1a 64
    return h;
}

// 0: training file, 1: validation file. The hash covers every token array but an unpaired
// example's completion: the examples of one prompt (a pair's two halves) stay on one side.
static int split_side(const Importer *im, const Example *ex) {
    if (im->o->val_fraction <= 0.0) return 0;
    uint64_t h = hash_bytes(0xcbf29ce484222325ull, &im->o->seed, sizeof(im->o->seed));
    const int *arrays[4] = {ex->tokens, ex->chosen, ex->rejected, ex->reference};
    const int64_t lens[4] = {ex->n_tokens, ex->n_chosen, ex->n_rejected, ex->n_reference};
    for (int i = 0; i < 4; i++) {
        h = hash_bytes(h, &lens[i], sizeof(lens[i]));
        if (lens[i]) h = hash_bytes(h, arrays[i], (size_t)lens[i] * sizeof(int));
    }
    h ^= h >> 33; // FNV's low bits mix poorly: finish with MurmurHash3's fmix64
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < im->o->val_fraction;
}

static int write_example(Importer *im, const Example *ex) {
    int side = split_side(im, ex);
    char err[512];
    if (dataset_append(im->w[side], ex, err, sizeof(err)) < 0) {
        snprintf(im->why, sizeof(im->why), "%s", err);
        return LINE_FATAL;
    }
    im->st->examples[side]++;
    im->st->tokens[side] +=
        ex->n_tokens + ex->n_chosen + ex->n_rejected + ex->n_reference + ex->n_completion;
    return LINE_OK;
}

int import_document(Importer *im, const char *text, size_t len) {
    TokenBuf *d = &im->seq;
    int *ids, eot = tokenizer_eot(im->o->tok), bos = tokenizer_bos(im->o->tok);
    int n = tokenizer_encode(im->o->tok, text, len, 0, &ids);
    d->n = 0;
    if (bos >= 0) tokenbuf_push(d, &bos, 1, 0); // documents start as the model saw them
    tokenbuf_push(d, ids, n, 0);
    tokenbuf_push(d, &eot, 1, 0);
    free(ids);
    im->st->documents++;
    if (d->n > im->o->max_len) im->st->split++;
    for (int64_t at = 0; at < d->n; at += im->o->max_len) {
        int64_t k = d->n - at < im->o->max_len ? d->n - at : im->o->max_len;
        Example ex = {.tokens = d->ids + at, .n_tokens = k};
        int rc = write_example(im, &ex);
        if (rc != LINE_OK) return rc;
    }
    return LINE_OK;
}

static int emit_sft(Importer *im) {
    const Parsed *p = &im->p;
    if (p->n_resp == 0) {
        snprintf(im->why, sizeof(im->why),
                 "the last message is not the assistant's: an sft example needs a reply");
        return LINE_BAD;
    }
    TokenBuf *s = &im->seq;
    s->n = 0;
    tokenbuf_append(s, &p->ctx); // earlier assistant turns keep their mask of 1
    tokenbuf_append(s, &p->resp[0]);
    if (s->n > im->o->max_len) {
        im->st->dropped++;
        return LINE_OK;
    }
    Example ex = {.tokens = s->ids, .n_tokens = s->n, .loss_mask = s->mask};
    return write_example(im, &ex);
}

static int emit_preference(Importer *im) {
    const Parsed *p = &im->p;
    LC_ASSERT(p->n_resp == 2);
    int64_t longer = p->resp[0].n > p->resp[1].n ? p->resp[0].n : p->resp[1].n;
    if (p->ctx.n + longer > im->o->max_len) {
        im->st->dropped++;
        return LINE_OK;
    }
    Example ex = {.tokens = p->ctx.ids,
                  .n_tokens = p->ctx.n,
                  .chosen = p->resp[0].ids,
                  .n_chosen = p->resp[0].n,
                  .rejected = p->resp[1].ids,
                  .n_rejected = p->resp[1].n};
    return write_example(im, &ex);
}

// One unpaired example per response: a prompt/completion/label line gives one with its label,
// a preference pair two (chosen desirable, rejected undesirable). Each is dropped on its own
// when prompt + completion is longer than max_len.
static int emit_unpaired(Importer *im) {
    const Parsed *p = &im->p;
    for (int k = 0; k < p->n_resp; k++) {
        if (p->ctx.n + p->resp[k].n > im->o->max_len) {
            im->st->dropped++;
            continue;
        }
        Example ex = {.tokens = p->ctx.ids,
                      .n_tokens = p->ctx.n,
                      .completion = p->resp[k].ids,
                      .n_completion = p->resp[k].n,
                      .label = (uint8_t)(p->format == FMT_UNPAIRED ? p->label : k == 0)};
        int rc = write_example(im, &ex);
        if (rc != LINE_OK) return rc;
    }
    return LINE_OK;
}

// A prompt keeps its reference answer when the line had exactly one response (pairs give
// prompts only).
static int emit_prompt(Importer *im) {
    const Parsed *p = &im->p;
    if (p->ctx.n > im->o->max_len) {
        im->st->dropped++;
        return LINE_OK;
    }
    Example ex = {.tokens = p->ctx.ids, .n_tokens = p->ctx.n};
    if (p->n_resp == 1) {
        ex.reference = p->resp[0].ids;
        ex.n_reference = p->resp[0].n;
        ex.reference_text = p->ref;
        ex.n_reference_text = (int64_t)p->ref_len;
    }
    return write_example(im, &ex);
}

int import_emit(Importer *im) {
    switch (im->o->kind) {
    case DATA_SFT:
        return emit_sft(im);
    case DATA_PREFERENCE:
        return emit_preference(im);
    case DATA_PROMPT:
        return emit_prompt(im);
    case DATA_UNPAIRED:
        return emit_unpaired(im);
    default:
        LC_ASSERT(0 && "lm examples are documents");
        return LINE_FATAL;
    }
}

// ---- inputs --------------------------------------------------------------------------------
