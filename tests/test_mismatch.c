// tests/test_mismatch.c: the model never reads outside its tables when handed ids of another
// tokenizer: the sampler checks every prompt id, and a forward every input and target id,
// against the vocabulary, and stops with a message naming where the id is (issue 12, item 3).
// Each case is a Check exit test: LC_DIE exits 1 instead of an out-of-bounds read.
#include "model/model.h"
#include "model/sample.h"
#include "tests/testutil.h"
#include <stdlib.h>

static const ModelConfig TINY = GPT2_CONFIG(1, 2, 16, 50, 16);

enum { B = 2, PLEN = 4, NEW = 3 };

static Model *tiny(void) {
    Model *m = model_create(backend_cpu(), TINY, MODEL_HEAD_LM, MODEL_INFER, B, PLEN + NEW);
    model_init_weights(m, 1);
    return m;
}

// Samples from prompts (B, PLEN) with prompt lengths PLEN.
static void sample(int *prompts) {
    Model *m = tiny();
    Sampler *s = sampler_create(m, B, PLEN + NEW, 1);
    SampleParams p = {.temperature = 1.0f, .top_p = 1.0f, .stop_token = -1, .max_new_tokens = NEW};
    int len[B] = {PLEN, PLEN}, out[B * NEW], out_len[B];
    float logp[B * NEW];
    Rng r = rng_init(1);
    sampler_generate(s, prompts, PLEN, len, B, &p, &r, out, logp, out_len);
    sampler_free(s);
    model_free(m);
}

START_TEST(sampler_in_range) {
    int prompts[B * PLEN] = {1, 2, 3, 4, 5, 6, 7, 49};
    sample(prompts); // returns: the last id of the vocabulary is an id
}
END_TEST

START_TEST(sampler_id_past_vocab) {
    int prompts[B * PLEN] = {1, 2, 3, 4, 5, 6, 50000, 8}; // GPT-2's ids on a 50-id model
    sample(prompts);
}
END_TEST

START_TEST(sampler_negative_id) {
    int prompts[B * PLEN] = {-1, 2, 3, 4, 5, 6, 7, 8};
    sample(prompts);
}
END_TEST

// A forward of one row of 4 tokens with the given last token and target.
static void forward(int token, int target) {
    Model *m = tiny();
    int tokens[PLEN] = {1, 2, 3, token}, targets[PLEN] = {2, 3, 4, target};
    Batch b = {.B = 1, .T = PLEN, .tokens = tokens, .targets = targets};
    model_forward(m, &b, 1.0f);
    model_free(m);
}

START_TEST(forward_in_range) {
    forward(49, -1);
}
END_TEST

START_TEST(forward_token_past_vocab) {
    forward(50, -1);
}
END_TEST

START_TEST(forward_target_below_minus_one) {
    forward(4, -100); // an "ignore index" of another toolkit is not a target
}
END_TEST

int main(void) {
    Suite *s = suite_create("mismatch");
    TCase *tc = tcase_create("ids");
    tcase_add_test(tc, sampler_in_range);
    tcase_add_exit_test(tc, sampler_id_past_vocab, 1);
    tcase_add_exit_test(tc, sampler_negative_id, 1);
    tcase_add_test(tc, forward_in_range);
    tcase_add_exit_test(tc, forward_token_past_vocab, 1);
    tcase_add_exit_test(tc, forward_target_below_minus_one, 1);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
