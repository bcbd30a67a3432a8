// common/rng.h: the one random number generator of layercake. SplitMix64 (Steele, Lea, Flood
// 2014): a 64-bit state advanced by a Weyl increment and mixed; passes BigCrush, is trivially
// checkpointed (the state is one integer) and gives the same stream on every platform.
#pragma once
#include <stdint.h>

typedef struct {
    uint64_t state;
} Rng;

static inline Rng rng_init(uint64_t seed) {
    return (Rng){seed};
}

static inline uint64_t rng_u64(Rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits.
static inline double rng_uniform(Rng *r) {
    return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

// Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method).
uint64_t rng_below(Rng *r, uint64_t n);

// Standard normal (Box-Muller; one value per call, deterministic).
double rng_normal(Rng *r);

// A child stream for an independent purpose (e.g. one per data-loader epoch), derived from a
// seed and a tag so that adding a consumer never shifts the others' streams.
Rng rng_derive(uint64_t seed, uint64_t tag);

// Fisher-Yates shuffle of n ints.
void rng_shuffle(Rng *r, int *a, int n);
