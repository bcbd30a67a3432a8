// kernels/vmath.h: elementwise math written so compilers vectorise it (libm's expf and tanhf
// are scalar calls). Shared by backends; pure C, no state.
//
// lc_expf: exp(x) = 2^n * exp(r), n = round(x / ln2), r = x - n ln2 in [-ln2/2, ln2/2] (ln2
// split in two parts so r is exact to float precision), exp(r) by its degree-6 Taylor
// polynomial (truncation < 2e-8 relative on that interval), 2^n built in the exponent bits.
// Max relative error about 2 ulp against expf; inputs are clamped to [-87.3, 88.3] so the
// result is always a finite normal float (or the smallest one): above 88.3, n would reach 128
// and 2^n overflow the exponent. A NaN input gives NaN.
#pragma once
#include <stdint.h>
#include <string.h>

static inline float lc_expf(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    // round to nearest by adding and subtracting 1.5 * 2^23 (|x / ln2| < 2^22 here): no libm
    // call, so the loop around it stays vectorised
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f; // ln2 high part (exact in float)
    r = r - n * -2.12194440e-4f;    // ln2 low part
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    // 2^n from the bits of n + 1.5 * 2^23 (n sits in the low mantissa bits), in unsigned
    // arithmetic: converting a NaN n to an integer would be undefined, and a NaN x must give
    // NaN (p is NaN), so a diverged model stays visible
    float t = x * 1.44269504088896341f + 12582912.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof(tb));
    uint32_t bits = (tb - 0x4B400000u + 127u) << 23; // 0x4B400000: the bits of 1.5 * 2^23
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return p * scale;
}

// tanh(x) = 1 - 2 / (exp(2x) + 1): exact limits +-1 for large |x|, accurate to a few ulp.
static inline float lc_tanhf(float x) {
    return 1.0f - 2.0f / (lc_expf(2.0f * x) + 1.0f);
}
