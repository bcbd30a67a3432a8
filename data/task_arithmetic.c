// data/task_arithmetic.c: the arithmetic task world: addition of two non-negative integers of
// 1 to D digits each, D the difficulty ("37+485=" -> " 522"). Mistakes are the ones people
// and small models make (a digit off by one, a dropped carry, a wrong digit, a digit dropped
// or repeated). The gold reward gives full marks to the exact answer that stops, partial
// credit per correct digit by place value, and penalties for not stopping and for spacing;
// docs/tasks.md has the formula and worked examples.
#include "common/check.h"
#include "data/synth-impl.h"
#include <stdio.h>
#include <string.h>

#define MAX_DIGITS      9   // operands up to 999,999,999: sums fit any int64 arithmetic
#define PARTIAL_WEIGHT  0.5 // a wrong number earns at most this much: any exact one beats it
#define NO_STOP_PENALTY 0.5 // the number is not followed by the end token (extra text or none)
#define SPACING_PENALTY 0.1 // not exactly one space before the number, or spaces after it

static int64_t pow10_i64(int k) {
    int64_t p = 1;
    while (k-- > 0) p *= 10;
    return p;
}

// A number of 1..difficulty digits: the digit count uniform, then the number uniform among
// those with that many digits (0-9 for one digit).
static int64_t draw_operand(Rng *rng, int difficulty) {
    int digits = 1 + (int)rng_below(rng, (uint64_t)difficulty);
    if (digits == 1) return (int64_t)rng_below(rng, 10);
    int64_t lo = pow10_i64(digits - 1);
    return lo + (int64_t)rng_below(rng, (uint64_t)(9 * lo));
}

static void arith_sample(Rng *rng, int difficulty, SynthProblem *p) {
    int64_t a = draw_operand(rng, difficulty), b = draw_operand(rng, difficulty);
    snprintf(p->prompt, sizeof(p->prompt), "%lld+%lld=", (long long)a, (long long)b);
    snprintf(p->answer, sizeof(p->answer), " %lld", (long long)(a + b));
}

static void arith_describe(int difficulty, char *buf, size_t len) {
    snprintf(buf, len,
             "arithmetic: addition of two numbers of 1 to %d digits (\"37+485=\" -> \" 522\"); "
             "gold reward in [-1, 1] with partial credit per correct digit",
             difficulty);
}

// Reads 1..MAX_DIGITS decimal digits at s[*i] into *v.
static bool parse_number(const char *s, size_t len, size_t *i, int64_t *v) {
    size_t start = *i;
    *v = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9' && *i - start < MAX_DIGITS)
        *v = *v * 10 + (s[(*i)++] - '0');
    return *i > start && !(*i < len && s[*i] >= '0' && s[*i] <= '9');
}

// Parses a prompt "A+B=" (nothing before or after).
static bool parse_prompt(const char *s, size_t len, int64_t *a, int64_t *b) {
    size_t i = 0;
    if (!parse_number(s, len, &i, a) || i >= len || s[i++] != '+') return false;
    if (!parse_number(s, len, &i, b) || i >= len || s[i++] != '=') return false;
    return i == len;
}

static int arith_answer(const char *prompt, size_t prompt_len, char *buf, size_t len) {
    int64_t a, b;
    if (!parse_prompt(prompt, prompt_len, &a, &b)) return -1;
    int n = snprintf(buf, len, " %lld", (long long)(a + b));
    return n >= 0 && (size_t)n < len ? n : -1;
}

// ---- mistakes ------------------------------------------------------------------------------

enum { OFF_BY_ONE, DROPPED_CARRY, WRONG_DIGIT, WRONG_LENGTH, N_MISTAKES };

// a + b with one carry forgotten: the carry out of a column where one happens is not added to
// the next, so the sum is 10^(column + 1) short. Returns false when no column carries.
static bool dropped_carry(Rng *rng, int64_t a, int64_t b, int64_t *out) {
    int64_t lost[MAX_DIGITS + 1]; // 10^(column + 1) for each carrying column
    int n = 0, carry = 0;
    for (int64_t x = a, y = b, p = 10; x > 0 || y > 0; x /= 10, y /= 10, p *= 10) {
        carry = x % 10 + y % 10 + carry >= 10;
        if (carry) lost[n++] = p;
    }
    if (n == 0) return false;
    *out = a + b - lost[rng_below(rng, (uint64_t)n)];
    return true;
}

// Changes the digit string d (n digits, room for n + 2) in place by one digit-level mistake;
// returns its new length.
static int digit_mistake(Rng *rng, int kind, char *d, int n) {
    int j = (int)rng_below(rng, (uint64_t)n);
    if (kind == OFF_BY_ONE) {
        int step = rng_below(rng, 2) ? 1 : -1, v = d[j] - '0' + step;
        d[j] = (char)('0' + (v < 0 || v > 9 ? v - 2 * step : v));
    } else if (kind == WRONG_DIGIT) {
        d[j] = (char)('0' + rng_below(rng, 10));
    } else if (n > 1 && rng_below(rng, 2)) { // WRONG_LENGTH: drop digit j
        memmove(d + j, d + j + 1, (size_t)(n - j));
        return n - 1;
    } else { // WRONG_LENGTH: write digit j twice
        memmove(d + j + 1, d + j, (size_t)(n - j + 1));
        return n + 1;
    }
    return n;
}

// Draws mistakes until one is a different, well-formed number (no leading zero).
static void arith_mistake(Rng *rng, const SynthProblem *p, char *out) {
    int64_t a, b, wrong;
    LC_ASSERT(parse_prompt(p->prompt, strlen(p->prompt), &a, &b)); // p came from arith_sample
    char want[MAX_DIGITS + 2], d[MAX_DIGITS + 4];
    snprintf(want, sizeof(want), "%lld", (long long)(a + b));
    for (bool done = false; !done;) {
        int kind = (int)rng_below(rng, N_MISTAKES), n = (int)strlen(want);
        if (kind == DROPPED_CARRY) {
            if (!dropped_carry(rng, a, b, &wrong)) continue;
            n = snprintf(d, sizeof(d), "%lld", (long long)wrong);
        } else {
            memcpy(d, want, (size_t)n + 1);
            n = digit_mistake(rng, kind, d, n);
        }
        done = strcmp(d, want) != 0 && (d[0] != '0' || n == 1);
    }
    snprintf(out, SYNTH_TEXT_MAX, " %s", d);
}

// ---- gold reward ---------------------------------------------------------------------------

// A response body as: spaces, a run of digits, spaces, then whatever remains.
typedef struct {
    size_t lead;     // spaces before the number
    const char *num; // the digits
    size_t n_num;    // how many (0: the response states no number)
    size_t trail;    // spaces after the number
    size_t rest;     // bytes after those
} Stated;

static Stated parse_stated(const char *s, size_t len) {
    Stated st = {0};
    size_t i = 0;
    while (i < len && s[i] == ' ') i++;
    st.lead = i;
    st.num = s + i;
    while (i < len && s[i] >= '0' && s[i] <= '9') i++;
    st.n_num = i - st.lead;
    while (i < len && s[i] == ' ') i++;
    st.trail = i - st.lead - st.n_num;
    st.rest = len - i;
    return st;
}

// Digits of got that equal want's digit of the same place value (units with units, ...).
static size_t place_matches(const char *got, size_t n_got, const char *want, size_t n_want) {
    size_t m = 0;
    for (size_t k = 1; k <= n_got && k <= n_want; k++) m += got[n_got - k] == want[n_want - k];
    return m;
}

static bool same_number(Stated got, Stated want) {
    return got.n_num == want.n_num && memcmp(got.num, want.num, got.n_num) == 0;
}

static double arith_reward(const char *answer, const char *body, size_t body_len, bool stopped) {
    Stated got = parse_stated(body, body_len), want = parse_stated(answer, strlen(answer));
    if (got.n_num == 0) return SYNTH_REWARD_MIN;
    size_t longer = got.n_num > want.n_num ? got.n_num : want.n_num;
    double r = same_number(got, want)
                   ? 1.0
                   : PARTIAL_WEIGHT *
                         (double)place_matches(got.num, got.n_num, want.num, want.n_num) /
                         (double)longer;
    if (!stopped || got.rest > 0) r -= NO_STOP_PENALTY;
    if (got.lead != 1 || got.trail > 0) r -= SPACING_PENALTY;
    return r;
}

static bool arith_correct(const char *answer, const char *body, size_t body_len, bool stopped) {
    Stated got = parse_stated(body, body_len), want = parse_stated(answer, strlen(answer));
    return stopped && got.rest == 0 && got.n_num > 0 && same_number(got, want);
}

const SynthTask synth_task_arithmetic = {
    .name = "arithmetic",
    .default_difficulty = 2,
    .max_difficulty = MAX_DIGITS,
    .describe = arith_describe,
    .sample = arith_sample,
    .mistake = arith_mistake,
    .answer = arith_answer,
    .reward = arith_reward,
    .correct = arith_correct,
};
