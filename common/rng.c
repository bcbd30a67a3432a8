#include "common/rng.h"
#include <math.h>

uint64_t rng_below(Rng *r, uint64_t n) {
    uint64_t threshold = -n % n; // 2^64 mod n
    for (;;) {
        __uint128_t m = (__uint128_t)rng_u64(r) * n;
        if ((uint64_t)m >= threshold) return (uint64_t)(m >> 64);
    }
}

double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

Rng rng_derive(uint64_t seed, uint64_t tag) {
    Rng r = rng_init(seed ^ (tag * 0xD1B54A32D192ED03ull));
    rng_u64(&r);
    return r;
}

void rng_shuffle(Rng *r, int *a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(r, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
