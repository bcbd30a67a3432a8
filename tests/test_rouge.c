// tests/test_rouge.c: ROUGE-L against values computed by hand (written out below with how they
// were obtained), and the model-free parts of self_instruct: every filter's drop reason on a
// hand-made pool, survivors joining the pool, the stop rule, the rounds stopping when their
// yield falls below min_yield, the choice of in-context tasks, the parsing of continuations,
// and the UTF-8 cleaning of generated text.
#include "tests/testutil.h"
#include "train/objectives/rouge.h"
#include "train/stages/selfgen.h"
#include "train/stages/stageio.h"
#include <stdlib.h>
#include <string.h>

#define TOL 1e-12

START_TEST(test_rouge_tokens) {
    // lowercased; every character but an ASCII letter or digit separates: "Don't" is "don" "t",
    // "café" is "caf"
    RougeTokens t;
    rouge_tokenize("Don't STOP-2 café!", &t);
    ck_assert_int_eq(t.n, 5);
    ck_assert_str_eq(t.word[0], "don");
    ck_assert_str_eq(t.word[1], "t");
    ck_assert_str_eq(t.word[2], "stop");
    ck_assert_str_eq(t.word[3], "2");
    ck_assert_str_eq(t.word[4], "caf");
    rouge_tokens_free(&t);
    rouge_tokenize(" ...!! ", &t);
    ck_assert_int_eq(t.n, 0);
    rouge_tokens_free(&t);
}
END_TEST

START_TEST(test_rouge_by_hand) {
    // empty: no tokens on one side (punctuation alone makes none) -> 0
    ck_assert_double_eq_tol(rouge_l("", "the cat"), 0.0, TOL);
    ck_assert_double_eq_tol(rouge_l("the cat", "?!"), 0.0, TOL);
    // identical after tokenising: [the cat sat] both, LCS 3, P = R = 1 -> F = 1
    ck_assert_double_eq_tol(rouge_l("The cat sat.", "the CAT sat"), 1.0, TOL);
    ck_assert_double_eq_tol(rouge_l("Don't stop!", "don t STOP"), 1.0, TOL);
    // disjoint: LCS 0 -> 0
    ck_assert_double_eq_tol(rouge_l("red blue", "green yellow"), 0.0, TOL);
    // repeated words: candidate [the cat the dog] (4), reference [the dog the cat the] (5); the
    // LCS is "the cat the" (3; "the cat the dog" is not in the reference in order), so P = 3/4,
    // R = 3/5, F = 2 (0.75)(0.6) / 1.35 = 2/3
    ck_assert_double_eq_tol(rouge_l("the cat the dog", "the dog the cat the"), 2.0 / 3.0, TOL);
    ck_assert_double_eq_tol(rouge_l("the dog the cat the", "the cat the dog"), 2.0 / 3.0, TOL);
    // partial: [a b c d e] against [a x c y e z]: LCS "a c e" = 3, P = 3/5, R = 3/6,
    // F = 2 (0.6)(0.5) / 1.1 = 6/11
    ck_assert_double_eq_tol(rouge_l("a b c d e", "a x c y e z"), 6.0 / 11.0, TOL);
    // [a a a] against [a]: LCS 1, P = 1/3, R = 1, F = 2 (1/3) / (4/3) = 1/2
    ck_assert_double_eq_tol(rouge_l("a a a", "a"), 0.5, TOL);
}
END_TEST

START_TEST(test_rouge_max) {
    const char *texts[] = {"red blue", "the dog the cat the", "the cat the dog"};
    RougeTokens pool[3], cand;
    for (int i = 0; i < 3; i++) rouge_tokenize(texts[i], &pool[i]);
    rouge_tokenize("The cat, the dog!", &cand);
    int best = 99;
    ck_assert_double_eq_tol(rouge_l_max(&cand, pool, 3, &best), 1.0, TOL);
    ck_assert_int_eq(best, 2);
    ck_assert_double_eq_tol(rouge_l_max(&cand, pool, 2, &best), 2.0 / 3.0, TOL); // as above
    ck_assert_int_eq(best, 1);
    ck_assert_double_eq_tol(rouge_l_max(&cand, pool, 0, &best), 0.0, TOL);
    ck_assert_int_eq(best, -1);
    for (int i = 0; i < 3; i++) rouge_tokens_free(&pool[i]);
    rouge_tokens_free(&cand);
}
END_TEST

// ---- self_instruct's filter ---------------------------------------------------------------------

static char *BLOCK[] = {"image", "go to"};

static SelfgenFilter filter(void) {
    return (SelfgenFilter){
        .min_words = 3, .max_words = 8, .blocklist = BLOCK, .n_blocklist = 2, .threshold = 0.7};
}

static SelfgenPool seeds(void) {
    SelfgenPool p = {0};
    selfgen_pool_add(&p, "Give an antonym of the word.");
    selfgen_pool_add(&p, "Say hello to the user.");
    return p;
}

// The verdict on inst, which must leave the pool's size at n_after.
static SelfgenVerdict judge(SelfgenPool *p, const char *inst, int n_after, double *rouge,
                            int *best) {
    SelfgenFilter f = filter();
    SelfgenVerdict v = selfgen_filter(&f, p, inst, rouge, best);
    ck_assert_int_eq(p->n, n_after);
    return v;
}

START_TEST(test_filter_reasons) {
    SelfgenPool p = seeds();
    double r;
    int b;
    ck_assert_int_eq(judge(&p, "", 2, &r, &b), SELFGEN_EMPTY);
    ck_assert_double_eq_tol(r, 0.0, TOL);
    ck_assert_int_eq(b, -1);
    // two words (fewer than 3): too short, though "image" is blocked (order: length first)
    ck_assert_int_eq(judge(&p, "Say image", 2, &r, &b), SELFGEN_TOO_SHORT);
    ck_assert_int_eq(judge(&p, "one two three four five six seven eight nine", 2, &r, &b),
                     SELFGEN_TOO_LONG);
    ck_assert_int_eq(judge(&p, "Describe the IMAGE in detail", 2, &r, &b), SELFGEN_BLOCKLIST);
    ck_assert_int_eq(judge(&p, "Tell me how to Go To school", 2, &r, &b), SELFGEN_BLOCKLIST);
    ck_assert_int_eq(judge(&p, "- list three fruits please", 2, &r, &b), SELFGEN_BAD_START);
    ck_assert_int_eq(judge(&p, "\xc3\xa9lan is a word to define", 2, &r, &b), SELFGEN_BAD_START);
    // [give an antonym of this word] against [give an antonym of the word]: LCS 5 of 6 and 6,
    // F = 5/6 > 0.7
    ck_assert_int_eq(judge(&p, "Give an antonym of this word.", 2, &r, &b), SELFGEN_SIMILAR);
    ck_assert_double_eq_tol(r, 5.0 / 6.0, TOL);
    ck_assert_int_eq(b, 0);
    // whole words only: "images" and "go toward" are not "image" and "go to"; kept, joining the
    // pool. [describe the images in detail] against [say hello to the user]: LCS "the" = 1,
    // F = 2 (1/5)(1/5) / (2/5) = 1/5; against the first seed (6 tokens) 2 (1/30) / (11/30) = 2/11
    ck_assert_int_eq(judge(&p, "Describe the images in detail", 3, &r, &b), SELFGEN_KEPT);
    ck_assert_double_eq_tol(r, 0.2, TOL);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(judge(&p, "Go toward the light now", 4, &r, &b), SELFGEN_KEPT);
    ck_assert_str_eq(p.text[3], "Go toward the light now");
    // survivors are compared too: [describe the images in detail please] (6) against the kept
    // [describe the images in detail] (5): LCS 5, P = 5/6, R = 1, F = (10/6) / (11/6) = 10/11
    ck_assert_int_eq(judge(&p, "Describe the images in detail please", 4, &r, &b), SELFGEN_SIMILAR);
    ck_assert_double_eq_tol(r, 10.0 / 11.0, TOL);
    ck_assert_int_eq(b, 2);
    // exactly at the threshold is not above it: an identical text has F = 1, kept at 1
    SelfgenFilter f = filter();
    f.threshold = 1.0;
    ck_assert_int_eq(selfgen_filter(&f, &p, "GO toward the light, now", &r, &b), SELFGEN_KEPT);
    ck_assert_double_eq_tol(r, 1.0, TOL);
    ck_assert_int_eq(b, 3);
    selfgen_pool_free(&p);
    for (int v = 0; v < SELFGEN_VERDICT_COUNT; v++)
        ck_assert_str_ne(selfgen_verdict_name((SelfgenVerdict)v), "?");
    ck_assert_str_eq(selfgen_verdict_name(SELFGEN_TOO_SHORT), "too_short");
}
END_TEST

START_TEST(test_phrases_and_words) {
    ck_assert(selfgen_has_phrase("Draw a MAP.", "map"));
    ck_assert(!selfgen_has_phrase("a mapping", "map"));
    ck_assert(!selfgen_has_phrase("bitmap", "map"));
    ck_assert(selfgen_has_phrase("go to bed", "go to"));
    ck_assert(!selfgen_has_phrase("ago to", "go to"));
    ck_assert(!selfgen_has_phrase("anything", ""));
    ck_assert_int_eq(selfgen_words("  one\ttwo\nthree  "), 3);
    ck_assert_int_eq(selfgen_words(""), 0);
}
END_TEST

// ---- rounds -------------------------------------------------------------------------------------

START_TEST(test_stop_rule) {
    // yield 1/20 = 0.05 < 0.1 stops; 2/20 = 0.1 does not
    ck_assert_int_eq(selfgen_stop(5, 10, 1, 5, 1, 20, 0.1), SELFGEN_STOP_YIELD);
    ck_assert_int_eq(selfgen_stop(5, 10, 1, 5, 2, 20, 0.1), SELFGEN_GO_ON);
    ck_assert_int_eq(selfgen_stop(10, 10, 1, 5, 1, 20, 0.1), SELFGEN_STOP_TARGET); // target first
    ck_assert_int_eq(selfgen_stop(5, 10, 5, 5, 2, 20, 0.1), SELFGEN_STOP_ROUNDS);
    ck_assert_int_eq(selfgen_stop(5, 10, 1, 5, 0, 0, 0.1), SELFGEN_GO_ON);  // nothing proposed
    ck_assert_int_eq(selfgen_stop(5, 10, 1, 5, 0, 20, 0.0), SELFGEN_GO_ON); // min_yield 0: never
    ck_assert_str_eq(selfgen_stop_name(SELFGEN_STOP_YIELD), "yield");
}
END_TEST

// The round loop of self_instruct on scripted proposals: the first round's are new, the
// second's repeat them (similar), so its yield 1/3 < min_yield 0.5 ends the rounds there.
START_TEST(test_rounds_stop_on_yield) {
    const char *proposals[3][3] = {
        {"alpha beta gamma", "delta epsilon zeta", "eta theta iota"},
        {"alpha beta gamma", "delta epsilon zeta", "kappa lambda mu nu"},
        {"xi omicron pi", "rho sigma tau", "upsilon phi chi"},
    };
    SelfgenPool p = seeds();
    SelfgenFilter f = filter();
    int rounds = 0, kept_per_round[3] = {0};
    SelfgenStop stop = SELFGEN_GO_ON;
    while (stop == SELFGEN_GO_ON) {
        int kept = 0;
        for (int i = 0; i < 3; i++) {
            double r;
            int b;
            kept += selfgen_filter(&f, &p, proposals[rounds][i], &r, &b) == SELFGEN_KEPT;
        }
        kept_per_round[rounds++] = kept;
        stop = selfgen_stop(p.n - 2, 100, rounds, 3, kept, 3, 0.5);
    }
    ck_assert_int_eq(rounds, 2);
    ck_assert_int_eq(stop, SELFGEN_STOP_YIELD);
    ck_assert_int_eq(kept_per_round[0], 3);
    ck_assert_int_eq(kept_per_round[1], 1);
    ck_assert_int_eq(p.n, 2 + 4);
    selfgen_pool_free(&p);
}
END_TEST

START_TEST(test_pick) {
    Rng rng = rng_init(42);
    int out[8];
    // k 8: 8 / 4 = 2 generated (pool indices 5..7), the other 6 from 5 seeds: all 5
    int n = selfgen_pick(&rng, 5, 3, 8, out);
    ck_assert_int_eq(n, 7);
    int gen = 0, seen[8] = {0};
    for (int i = 0; i < n; i++) {
        ck_assert(out[i] >= 0 && out[i] < 8);
        ck_assert_int_eq(seen[out[i]]++, 0); // no repeats
        gen += out[i] >= 5;
    }
    ck_assert_int_eq(gen, 2);
    // nothing generated yet: every task a seed
    n = selfgen_pick(&rng, 10, 0, 4, out);
    ck_assert_int_eq(n, 4);
    for (int i = 0; i < n; i++) ck_assert(out[i] < 10);
    // one generated: at most that one
    n = selfgen_pick(&rng, 10, 1, 8, out);
    ck_assert_int_eq(n, 8);
    gen = 0;
    for (int i = 0; i < n; i++) gen += out[i] == 10;
    ck_assert_int_eq(gen, 1);
}
END_TEST

START_TEST(test_parse) {
    char *s = selfgen_parse_instruction(" Write a poem.\nTask 5: more");
    ck_assert_str_eq(s, "Write a poem.");
    free(s);
    s = selfgen_parse_instruction("  Sort the numbers Task 6: x");
    ck_assert_str_eq(s, "Sort the numbers");
    free(s);
    s = selfgen_parse_instruction("\nnothing on the line");
    ck_assert_str_eq(s, "");
    free(s);
    char *in, *out;
    ck_assert_int_eq(selfgen_parse_instance(" hot\nOutput: cold\nTask: next", &in, &out), 0);
    ck_assert_str_eq(in, "hot");
    ck_assert_str_eq(out, "cold");
    free(in), free(out);
    ck_assert_int_eq(selfgen_parse_instance(" \nOutput: Hello!\nInput: x", &in, &out), 0);
    ck_assert_str_eq(in, "");
    ck_assert_str_eq(out, "Hello!");
    free(in), free(out);
    ck_assert_int_eq(selfgen_parse_instance(" hot\nOutput:  \n", &in, &out), -1);
    ck_assert_int_eq(selfgen_parse_instance(" no output here", &in, &out), -1);
}
END_TEST

START_TEST(test_clean) {
    // an invalid byte, a NUL and a lone continuation byte become U+FFFD; valid UTF-8 stays
    const char raw[] = "a\xff"
                       "b\0c\x80 \xc3\xa9";
    char *s = stageio_clean_text(raw, sizeof(raw) - 1);
    ck_assert_str_eq(s, "a\xef\xbf\xbd"
                        "b\xef\xbf\xbd"
                        "c\xef\xbf\xbd \xc3\xa9");
    free(s);
    s = stageio_clean_text("\xed\xa0\x80", 3); // a UTF-16 surrogate is not UTF-8: three bad bytes
    ck_assert_str_eq(s, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
}
END_TEST

int main(void) {
    Suite *s = suite_create("rouge");
    TCase *tc = tcase_create("rouge");
    tcase_add_test(tc, test_rouge_tokens);
    tcase_add_test(tc, test_rouge_by_hand);
    tcase_add_test(tc, test_rouge_max);
    suite_add_tcase(s, tc);
    tc = tcase_create("self_instruct");
    tcase_add_test(tc, test_filter_reasons);
    tcase_add_test(tc, test_phrases_and_words);
    tcase_add_test(tc, test_stop_rule);
    tcase_add_test(tc, test_rounds_stop_on_yield);
    tcase_add_test(tc, test_pick);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_clean);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
