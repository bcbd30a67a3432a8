// kernels/cuda/sample.cuh: the next token of each row, chosen on the device (kernels/kernels.h:
// sample_tokens, which states the rule; the reference is kernels/cpu/sample.c), so a rollout
// step copies back B tokens and B log-probs instead of the (B,Vp) logits.
//
// One block per row, its threads striding over the columns. No sort: the candidates' order is
// logit descending, id ascending, so a token's place in it is fixed by its key (the logit's float
// bits mapped to an unsigned that orders like the float) and its id. The kept set is then "key
// above a threshold t, or key == t and id below a cut":
//   - top-p: t is the largest key whose tokens at or above it hold at least top_p of the mass,
//     found by bisection over the 32 key bits (one block sum of masses per bit); the tokens
//     equal to t that the prefix needs follow from their common probability;
//   - top-k (or top-p's count when shorter): t is the k-th largest key, by bisection over the
//     key bits with block counts; among equal keys the lowest ids are kept, the cut found by a
//     bisection over the id when only some of them are.
// The draw is an inverse CDF over the kept tokens in id order: every thread sums the kept mass of
// a contiguous slice of ids, a block exclusive scan gives each slice its start, and the smallest
// id whose cumulative mass exceeds u * (kept mass) wins (a block minimum). Every reduction is in
// a fixed order (lc_block_sum's butterflies, a fixed scan), so a row gives the same token and
// log-prob on every run; there are no atomics.
#pragma once
#include "kernels/cuda/common.cuh"
#include <climits>

// The sampling order's key of a logit: larger key = larger logit; -0 and +0 share one key.
static __device__ __forceinline__ unsigned lc_sample_key(float z) {
    z += 0.0f; // -0 + 0 = +0
    unsigned b;
    memcpy(&b, &z, sizeof b);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// The logit of a key (the inverse of lc_sample_key).
static __device__ __forceinline__ float lc_sample_logit(unsigned k) {
    unsigned b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float z;
    memcpy(&z, &b, sizeof z);
    return z;
}

// The smallest of v over a one-dimensional block, on every thread (as lc_block_sum).
static __device__ int lc_sample_block_min(int v) {
    __shared__ int partial[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    for (int off = 16; off > 0; off >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, off));
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < nwarps ? partial[lane] : INT_MAX;
    for (int off = 16; off > 0; off >>= 1) v = min(v, __shfl_xor_sync(0xffffffffu, v, off));
    __syncthreads();
    return v;
}

// The sum of v over the threads before this one (0 on thread 0): a warp scan by shuffles, then
// the totals of the earlier warps added in warp order. Every thread must call it.
static __device__ float lc_sample_block_exclusive_sum(float v) {
    __shared__ float total[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    float inc = v;
    for (int off = 1; off < 32; off <<= 1) {
        float o = __shfl_up_sync(0xffffffffu, inc, off);
        if (lane >= off) inc += o;
    }
    float exc = __shfl_up_sync(0xffffffffu, inc, 1);
    if (lane == 0) exc = 0.0f;
    if (lane == 31) total[warp] = inc;
    __syncthreads();
    float before = 0.0f;
    for (int w = 0; w < warp; w++) before += total[w];
    __syncthreads();
    return before + exc;
}

// The statistics of one row that every step needs: its logits z (V real columns), their
// maximum m, the temperature and the softmax normaliser s = sum exp((z - m) / temp). The logits
// are of T (float or __nv_bfloat16), read as fp32 by at().
template <class T> struct LcSampleRow {
    const T *z;
    int V;
    float m, temp, s;
    __device__ float at(int v) const {
        return lc_to_float(z[v]);
    }
    __device__ float prob(float zv) const {
        return expf((zv - m) / temp) / s;
    }
};

// Tokens with key >= t, over the block.
template <class T> static __device__ int lc_sample_count_from(const LcSampleRow<T> &r, unsigned t) {
    int c = 0;
    for (int v = threadIdx.x; v < r.V; v += blockDim.x) c += lc_sample_key(r.at(v)) >= t;
    return lc_block_sum(c);
}

// Their probability mass, over the block.
template <class T>
static __device__ float lc_sample_mass_from(const LcSampleRow<T> &r, unsigned t) {
    float w = 0.0f;
    for (int v = threadIdx.x; v < r.V; v += blockDim.x) {
        float zv = r.at(v);
        if (lc_sample_key(zv) >= t) w += r.prob(zv);
    }
    return lc_block_sum(w);
}

// The kept set: key > t, or key == t and id < cut.
struct LcSampleKept {
    unsigned t;
    int cut;
    __device__ bool has(unsigned key, int v) const {
        return key > t || (key == t && v < cut);
    }
};

// The kept set of the keys above t and the `need` lowest ids of the `equal` tokens with key t.
template <class T>
static __device__ LcSampleKept lc_sample_cut(const LcSampleRow<T> &r, unsigned t, int need,
                                             int equal) {
    LcSampleKept k = {t, r.V};
    if (need < equal) { // the smallest x with `need` tokens equal to t at ids <= x
        int lo = 0, hi = r.V - 1;
        while (lo < hi) {
            int mid = lo + (hi - lo) / 2, c = 0;
            for (int v = threadIdx.x; v <= mid; v += blockDim.x) c += lc_sample_key(r.at(v)) == t;
            if (lc_block_sum(c) >= need)
                hi = mid;
            else
                lo = mid + 1;
        }
        k.cut = lo + 1;
    }
    return k;
}

// The first n (1 <= n < V) tokens of the sampling order: t is the n-th largest key (the largest
// t with at least n keys >= t), then the lowest ids among those equal to t.
template <class T> static __device__ LcSampleKept lc_sample_first(const LcSampleRow<T> &r, int n) {
    unsigned t = 0;
    for (int bit = 31; bit >= 0; bit--) {
        unsigned c = t | (1u << bit);
        if (lc_sample_count_from(r, c) >= n) t = c;
    }
    int from = lc_sample_count_from(r, t);
    int above = t == 0xffffffffu ? 0 : lc_sample_count_from(r, t + 1);
    return lc_sample_cut(r, t, n - above, from - above); // 1 <= n - above <= from - above
}

// The nucleus: the length n of the shortest prefix of the sampling order holding top_p of the
// mass (V when rounding leaves the whole row short of it), and that prefix as a kept set.
struct LcSampleNucleus {
    int n;
    unsigned t;
    int need, equal; // the prefix: keys above t, then `need` of the `equal` tokens with key t
                     // (equal 0 when not found here: lc_sample_first finds the set)
};
template <class T>
static __device__ LcSampleNucleus lc_sample_nucleus(const LcSampleRow<T> &r, float top_p) {
    LcSampleNucleus nu = {r.V, 0u, 0, 0};
    if (lc_sample_mass_from(r, 0) < top_p) return nu;
    unsigned t = 0; // the largest key whose tokens at or above it hold top_p
    for (int bit = 31; bit >= 0; bit--) {
        unsigned c = t | (1u << bit);
        if (lc_sample_mass_from(r, c) >= top_p) t = c;
    }
    int from = lc_sample_count_from(r, t), above = 0;
    float mass_above = 0.0f;
    if (t != 0xffffffffu) {
        above = lc_sample_count_from(r, t + 1);
        mass_above = lc_sample_mass_from(r, t + 1);
    }
    int equal = from - above;
    if (equal <= 0) { // top_p <= 0 (no key is 0xffffffff): only the first token
        nu.n = 1;
        return nu;
    }
    // the tokens equal to t share one probability: as many as the rest of top_p needs
    float pt = r.prob(lc_sample_logit(t)), need = ceilf((top_p - mass_above) / pt);
    need = fminf(fmaxf(need, 1.0f), (float)equal); // pt = 0 gives inf: all of them
    nu.n = above + (int)need;
    nu.t = t;
    nu.need = (int)need;
    nu.equal = equal;
    return nu;
}

// Block b samples row b of logits (B,Vp) over its V real columns; token[b], logp[b] written.
// u (B) is read only when temperature > 0.
template <class T>
static __global__ void sample_tokens_kernel(int *token, float *logp, const T *logits,
                                            const float *u, int V, int Vp, float temperature,
                                            int top_k, float top_p) {
    int b = blockIdx.x;
    bool greedy = !(temperature > 0.0f);
    LcSampleRow<T> r;
    r.z = logits + (size_t)b * Vp;
    r.V = V;
    r.temp = greedy ? 1.0f : temperature;
    float m = -INFINITY;
    for (int v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, r.at(v));
    r.m = lc_block_max(m);
    float s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) s += expf((r.at(v) - r.m) / r.temp);
    r.s = lc_block_sum(s);
    int tok;
    if (greedy) { // the lowest id holding the maximum
        int first = INT_MAX;
        for (int v = threadIdx.x; v < V; v += blockDim.x)
            if (r.at(v) == r.m) {
                first = v;
                break;
            }
        tok = lc_sample_block_min(first);
    } else {
        int n = top_k > 0 && top_k < V ? top_k : V;
        LcSampleKept kept = {0u, V}; // every key is >= 0: all kept
        bool found_set = false;
        if (top_p < 1.0f) {
            LcSampleNucleus nu = lc_sample_nucleus(r, top_p);
            if (nu.equal > 0 && nu.n <= n && nu.n < V) { // the nucleus is the shorter prefix
                kept = lc_sample_cut(r, nu.t, nu.need, nu.equal);
                found_set = true;
            }
            n = min(n, nu.n);
        }
        if (n < V && !found_set) kept = lc_sample_first(r, n);
        float w = 0.0f;
        for (int v = threadIdx.x; v < V; v += blockDim.x) {
            float zv = r.at(v);
            if (kept.has(lc_sample_key(zv), v)) w += r.prob(zv);
        }
        float target = u[b] * lc_block_sum(w);
        // this thread's contiguous slice of ids, its kept mass, and where the slice starts
        int chunk = (V + (int)blockDim.x - 1) / (int)blockDim.x;
        int lo = min(V, (int)threadIdx.x * chunk), hi = min(V, lo + chunk);
        float mine = 0.0f;
        for (int v = lo; v < hi; v++) {
            float zv = r.at(v);
            if (kept.has(lc_sample_key(zv), v)) mine += r.prob(zv);
        }
        float acc = lc_sample_block_exclusive_sum(mine);
        int found = INT_MAX, last = -1;
        for (int v = lo; v < hi; v++) {
            float zv = r.at(v);
            if (!kept.has(lc_sample_key(zv), v)) continue;
            float p = r.prob(zv);
            acc += p;
            if (p > 0.0f) last = v;
            if (found == INT_MAX && acc > target) found = v;
        }
        tok = lc_sample_block_min(found);
        // rounding left the cumulative mass at or below the target: the last kept token that
        // can be drawn at all
        if (tok == INT_MAX) tok = -lc_sample_block_min(-last);
    }
    if (tok < 0 || tok >= V) tok = 0; // only for NaN logits
    if (threadIdx.x == 0) {
        token[b] = tok;
        logp[b] = (r.at(tok) - r.m) / r.temp - logf(r.s);
    }
}

// ---- launcher ---------------------------------------------------------------------------------

// token, logp (B) written from logits (B,Vp) of T; u (B) device uniforms (NULL allowed when
// greedy).
template <class T>
static inline void cuda_sample_tokens(int *token, float *logp, const T *logits, const float *u,
                                      int B, int V, int Vp, float temperature, int top_k,
                                      float top_p, cudaStream_t stream) {
    if (B <= 0 || V <= 0) return;
    auto k = sample_tokens_kernel<T>;
    LC_LAUNCH(k, (unsigned)B, LC_CUDA_BLOCK, 0, stream, token, logp, logits, u, V, Vp, temperature,
              top_k, top_p);
    LC_LAUNCH_CHECK();
}
