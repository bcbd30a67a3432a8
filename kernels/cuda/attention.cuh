// kernels/cuda/attention.cuh: causal grouped-query self-attention with segment masking
// (kernels/kernels.h: attention_forward, attention_backward), flash-style: no (T,T) matrix
// in global memory. The forward streams tiles of keys and values through shared memory with an
// online softmax and saves only the logsumexp of every query row; the backward recomputes the
// probabilities from it, tile by tile. Shared memory depends on the head size, never on T.
//
// Every sum has a fixed order (lanes in sequence, tiles in sequence, a key/value head's query
// heads in sequence) and nothing uses atomics, so the results are the same bits under any
// schedule: two runs with one seed give identical losses.
//
// Element type: qkv, out, dout and dqkv are of E, float or __nv_bfloat16 (the Backend's Act); the
// tiles in shared memory, the accumulators and lse/D are fp32, each output rounded once to E. (E,
// not T, since T is the sequence length here.)
#pragma once
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kvcache.cuh"

// Threads per block of the attention kernels (whole warps), and its warps.
#define LC_ATT_BLOCK 128
#define LC_ATT_WARPS (LC_ATT_BLOCK / 32)
// The largest head size the kernels take (8 channels per lane).
#define LC_ATT_MAX_HS 256
// Keys per tile of the forward and the dQ kernel, queries per tile of the dK/dV kernel: one per
// lane.
#define LC_ATT_TILE 32

// Tile sizes per NCH = channels per lane (hs <= 32 NCH): query rows per warp of the forward and
// of the dQ kernel, keys per warp of the dK/dV kernel. Chosen so that the accumulators stay at
// most 32 registers and, up to hs 128, shared memory at most 48 KiB (see the *_smem functions).
template <int NCH> struct lc_att_tiles;
template <> struct lc_att_tiles<1> {
    static constexpr int fwd_rows = 4, dq_rows = 4, dkv_keys = 8;
};
template <> struct lc_att_tiles<2> {
    static constexpr int fwd_rows = 4, dq_rows = 4, dkv_keys = 8;
};
template <> struct lc_att_tiles<4> {
    static constexpr int fwd_rows = 4, dq_rows = 2, dkv_keys = 2;
};
template <> struct lc_att_tiles<8> {
    static constexpr int fwd_rows = 2, dq_rows = 2, dkv_keys = 2;
};

// NCH for a head size: 1, 2, 4 or 8; 0 when hs is above LC_ATT_MAX_HS (or not positive).
static inline int lc_att_nch(int hs) {
    return hs <= 0 ? 0 : hs <= 32 ? 1 : hs <= 64 ? 2 : hs <= 128 ? 4 : hs <= 256 ? 8 : 0;
}

// The row stride in shared memory of a tile that lanes read one row each (row = lane): odd, so
// the 32 lanes' reads of one column fall in 32 different banks.
static __host__ __device__ __forceinline__ int lc_att_ld(int hs) {
    return hs | 1;
}

// dst[r*ld + i] = src[r*stride + i] as fp32 for r < n, i < hs, by the whole block: consecutive
// threads take consecutive elements of a row (coalesced), 16 bytes (V = 16 / sizeof(E) elements)
// at a time when hs, stride and src allow it, one element otherwise (hs 6). Rows n.. of dst are
// left as they are.
template <class E>
static __device__ void lc_att_load(float *dst, int ld, const E *src, size_t stride, int n, int hs) {
    constexpr int V = lc_pack<E>::n;
    if (hs % V == 0 && stride % V == 0 && ((uintptr_t)src & 15u) == 0) {
        const int hv = hs / V;
        for (int e = threadIdx.x; e < n * hv; e += blockDim.x) {
            const int r = e / hv, i = (e - r * hv) * V;
            float v[V];
            lc_load<V>(v, src + (size_t)r * stride + i);
            float *d = dst + r * ld + i;
            for (int k = 0; k < V; k++) d[k] = v[k];
        }
    } else {
        for (int e = threadIdx.x; e < n * hs; e += blockDim.x) {
            const int r = e / hs, i = e - r * hs;
            dst[r * ld + i] = lc_to_float(src[(size_t)r * stride + i]);
        }
    }
}

// dst[i] = seg[i] for i < n, by the whole block.
static __device__ __forceinline__ void lc_att_load_seg(int *dst, const int *seg, int n) {
    for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = seg[i];
}

// Whether some query of a tile (positions q0 + r, segments qseg[r], r < nq) sees some key of a
// tile (positions k0 + j, segments kseg[j], j < nk): s <= t and the same segment. qseg, kseg in
// shared memory, written before a barrier; every thread of the block must call it (its block sum
// holds barriers) and gets the same answer.
static __device__ bool lc_att_tile_visible(const int *qseg, int q0, int nq, const int *kseg, int k0,
                                           int nk) {
    int found = 0;
    for (int e = threadIdx.x; e < nq * nk; e += blockDim.x) {
        const int r = e / nk, j = e - r * nk;
        found |= k0 + j <= q0 + r && qseg[r] == kseg[j];
    }
    return lc_block_sum(found) > 0;
}

// ---- forward ------------------------------------------------------------------------------------

// out (B,T,NH*hs) written; lse (B,NH,T) written = log sum_s exp(score[t,s]) over the visible keys
// (natural log, scores q.k/sqrt(hs)); qkv (B,T,(NH+2NKV)hs); seg (B,T) or NULL; hs <= 32 NCH.
// One block per (query tile of BQ = 4R rows, h, b); warp w owns rows wR .. wR+R-1 of the tile,
// its lane c channels c, c+32, .. of their outputs (registers). Key tiles of 32 (those before
// the tile's last row; with seg, those with some visible pair) pass through one shared buffer:
// K first, lane j scoring key j against each row; the row's running max m and sum l are updated
// (online softmax: the old sum and outputs scaled by exp(m_old - m_new)) and the exponentials
// stored; then V replaces K in the buffer and the rows gather sum_j p_j v_j. Finally out = acc /
// l and lse = m + log l. Dynamic shared memory (cuda_attention_forward_smem): Q (BQ,hs), the K/V
// tile (32, hs|1), the exponentials (BQ,32), then the tile's segment ids (BQ + 32 ints).
template <class E, int NCH, int R>
static __global__ void __launch_bounds__(LC_ATT_BLOCK)
    attention_forward_kernel(E *out, float *lse, const E *qkv, const int *seg, int T, int NH,
                             int NKV, int hs) {
    constexpr int BQ = R * LC_ATT_WARPS, BK = LC_ATT_TILE;
    LC_DYN_SHARED(float, smem);
    const int ld = lc_att_ld(hs);
    float *qs = smem, *kv = qs + BQ * hs, *ps = kv + BK * ld;
    int *qseg = reinterpret_cast<int *>(ps + BQ * BK), *kseg = qseg + BQ;
    const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z;
    const int nq = T - q0 < BQ ? T - q0 : BQ, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const size_t row = (size_t)(NH + 2 * NKV) * hs;
    const int kvh = h / (NH / NKV);
    const E *base = qkv + (size_t)b * T * row;
    const E *kb = base + (size_t)(NH + kvh) * hs, *vb = base + (size_t)(NH + NKV + kvh) * hs;
    const int *sb = seg ? seg + (size_t)b * T : nullptr;
    const float scale = 1.0f / sqrtf((float)hs);

    lc_att_load(qs, hs, base + (size_t)q0 * row + (size_t)h * hs, row, nq, hs);
    if (sb) lc_att_load_seg(qseg, sb + q0, nq);
    float m[R], l[R], alpha[R], acc[R][NCH];
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
        alpha[rr] = 1.0f;
#pragma unroll
        for (int n = 0; n < NCH; n++) acc[rr][n] = 0.0f;
    }
    const int kend = q0 + nq; // keys past the tile's last row are masked for all of it
    for (int k0 = 0; k0 < kend; k0 += BK) {
        const int nk = kend - k0 < BK ? kend - k0 : BK;
        __syncthreads(); // the previous tile's reads are done (the first: Q published)
        if (sb) {
            lc_att_load_seg(kseg, sb + k0, nk);
            __syncthreads();
            if (!lc_att_tile_visible(qseg, q0, nq, kseg, k0, nk)) continue;
        }
        lc_att_load(kv, ld, kb + (size_t)k0 * row, row, nk, hs);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            const int r = warp * R + rr, t = q0 + r;
            if (r < nq) { // the same for the whole warp
                float sc = -INFINITY;
                if (lane < nk && k0 + lane <= t && (!sb || kseg[lane] == qseg[r])) {
                    const float *q = qs + r * hs, *k = kv + lane * ld;
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                    sc = dot * scale;
                }
                const float mnew = fmaxf(m[rr], lc_warp_max(sc));
                const float p = sc == -INFINITY ? 0.0f : expf(sc - mnew);
                alpha[rr] = mnew == -INFINITY ? 1.0f : expf(m[rr] - mnew); // 0 from m = -inf
                l[rr] = l[rr] * alpha[rr] + lc_warp_sum(p);
                m[rr] = mnew;
                ps[r * BK + lane] = p;
            }
        }
        __syncthreads(); // every score has read K: V takes the buffer
        lc_att_load(kv, ld, vb + (size_t)k0 * row, row, nk, hs);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            const int r = warp * R + rr;
            if (r < nq) {
                const float *p = ps + r * BK;
#pragma unroll
                for (int n = 0; n < NCH; n++) {
                    const int c = lane + 32 * n;
                    if (c < hs) {
                        float a = acc[rr][n] * alpha[rr];
                        for (int j = 0; j < nk; j++) a += p[j] * kv[j * ld + c];
                        acc[rr][n] = a;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        const int r = warp * R + rr, t = q0 + r;
        if (r < nq) { // l >= 1: key t is always visible to query t
            const float inv = 1.0f / l[rr];
            E *o = out + ((size_t)b * T + t) * NH * hs + (size_t)h * hs;
#pragma unroll
            for (int n = 0; n < NCH; n++) {
                const int c = lane + 32 * n;
                if (c < hs) o[c] = lc_from_float<E>(acc[rr][n] * inv);
            }
            if (lane == 0) lse[((size_t)b * NH + h) * T + t] = m[rr] + logf(l[rr]);
        }
    }
}

// ---- backward -----------------------------------------------------------------------------------
// With P = exp(S - lse) recomputed from the scores S, dP = dO V^T and D = rowsum(dO * O)
// (= rowsum(P * dP)): dS = P (dP - D) / sqrt(hs), dQ = dS K, dK = dS^T Q, dV = P^T dO.

// D (B,NH,T) written = sum_i dout[b,t,h,i] out[b,t,h,i]; dout, out (B,T,NH*hs). One warp per
// (b, t, h), its lanes striding the channels, then a warp sum. dout, out of E.
template <class E>
static __global__ void __launch_bounds__(LC_ATT_BLOCK)
    attention_backward_d_kernel(float *D, const E *dout, const E *out, int B, int T, int NH,
                                int hs) {
    const size_t n = (size_t)blockIdx.x * LC_ATT_WARPS + threadIdx.x / 32; // (b*T + t)*NH + h
    const int lane = threadIdx.x % 32;
    if (n >= (size_t)B * T * NH) return; // whole warps
    const E *d = dout + n * hs, *o = out + n * hs;
    float acc = 0.0f;
    for (int i = lane; i < hs; i += 32) acc += lc_to_float(d[i]) * lc_to_float(o[i]);
    acc = lc_warp_sum(acc);
    const int h = (int)(n % NH), t = (int)(n / NH % T), b = (int)(n / NH / T);
    if (lane == 0) D[((size_t)b * NH + h) * T + t] = acc;
}

// dqkv's query heads (B,T,NH hs of each (NH+2NKV)hs row) written; dout (B,T,NH*hs); qkv, seg as
// in the forward; lse (B,NH,T) the forward's; D (B,NH,T) from attention_backward_d_kernel.
// One block per (query tile of BQ = 4R rows, h, b), rows and channels owned as in the forward.
// Key tiles of 32 (skipped as in the forward): K and V in shared memory, lane j computes dS for
// key j and each row into the warp's rows of a shared buffer, then the row gathers sum_j dS_j
// k_j. Dynamic shared memory (cuda_attention_backward_dq_smem): Q, dO (BQ,hs), K, V (32, hs|1),
// dS (BQ,32), segment ids (BQ + 32 ints).
template <class E, int NCH, int R>
static __global__ void __launch_bounds__(LC_ATT_BLOCK)
    attention_backward_dq_kernel(E *dqkv, const E *dout, const E *qkv, const float *lse,
                                 const float *D, const int *seg, int T, int NH, int NKV, int hs) {
    constexpr int BQ = R * LC_ATT_WARPS, BK = LC_ATT_TILE;
    LC_DYN_SHARED(float, smem);
    const int ld = lc_att_ld(hs);
    float *qs = smem, *dos = qs + BQ * hs, *ks = dos + BQ * hs, *vs = ks + BK * ld;
    float *dss = vs + BK * ld;
    int *qseg = reinterpret_cast<int *>(dss + BQ * BK), *kseg = qseg + BQ;
    const int q0 = blockIdx.x * BQ, h = blockIdx.y, b = blockIdx.z;
    const int nq = T - q0 < BQ ? T - q0 : BQ, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const size_t row = (size_t)(NH + 2 * NKV) * hs, C = (size_t)NH * hs;
    const int kvh = h / (NH / NKV);
    const E *base = qkv + (size_t)b * T * row;
    const E *kb = base + (size_t)(NH + kvh) * hs, *vb = base + (size_t)(NH + NKV + kvh) * hs;
    const int *sb = seg ? seg + (size_t)b * T : nullptr;
    const float scale = 1.0f / sqrtf((float)hs);

    lc_att_load(qs, hs, base + (size_t)q0 * row + (size_t)h * hs, row, nq, hs);
    lc_att_load(dos, hs, dout + ((size_t)b * T + q0) * C + (size_t)h * hs, C, nq, hs);
    if (sb) lc_att_load_seg(qseg, sb + q0, nq);
    float lr[R], dr[R], acc[R][NCH];
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        const int r = warp * R + rr;
        const size_t si = ((size_t)b * NH + h) * T + q0 + r;
        lr[rr] = r < nq ? lse[si] : 0.0f;
        dr[rr] = r < nq ? D[si] : 0.0f;
#pragma unroll
        for (int n = 0; n < NCH; n++) acc[rr][n] = 0.0f;
    }
    const int kend = q0 + nq;
    for (int k0 = 0; k0 < kend; k0 += BK) {
        const int nk = kend - k0 < BK ? kend - k0 : BK;
        __syncthreads(); // the previous tile's reads are done (the first: Q, dO published)
        if (sb) {
            lc_att_load_seg(kseg, sb + k0, nk);
            __syncthreads();
            if (!lc_att_tile_visible(qseg, q0, nq, kseg, k0, nk)) continue;
        }
        lc_att_load(ks, ld, kb + (size_t)k0 * row, row, nk, hs);
        lc_att_load(vs, ld, vb + (size_t)k0 * row, row, nk, hs);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < R; rr++) {
            const int r = warp * R + rr, t = q0 + r;
            if (r < nq) { // the same for the whole warp
                float ds = 0.0f;
                if (lane < nk && k0 + lane <= t && (!sb || kseg[lane] == qseg[r])) {
                    const float *q = qs + r * hs, *d = dos + r * hs;
                    const float *k = ks + lane * ld, *v = vs + lane * ld;
                    float s = 0.0f, dp = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        s += q[i] * k[i];
                        dp += d[i] * v[i];
                    }
                    const float p = expf(s * scale - lr[rr]);
                    ds = p * (dp - dr[rr]) * scale;
                }
                float *dsr = dss + r * BK;
                dsr[lane] = ds;
                __syncwarp(); // the row of dS is the warp's own
#pragma unroll
                for (int n = 0; n < NCH; n++) {
                    const int c = lane + 32 * n;
                    if (c < hs) {
                        float a = acc[rr][n];
                        for (int j = 0; j < nk; j++) a += dsr[j] * ks[j * ld + c];
                        acc[rr][n] = a;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < R; rr++) {
        const int r = warp * R + rr;
        if (r < nq) {
            E *dq = dqkv + ((size_t)b * T + q0 + r) * row + (size_t)h * hs;
#pragma unroll
            for (int n = 0; n < NCH; n++) {
                const int c = lane + 32 * n;
                if (c < hs) dq[c] = lc_from_float<E>(acc[rr][n]);
            }
        }
    }
}

// dqkv's key and value heads written; other arguments as attention_backward_dq_kernel. One block
// per (key tile of BK = 4KPW keys, kv head, b): warp w owns keys wKPW .. wKPW+KPW-1, its lane c
// channels c, c+32, .. of their dK and dV (registers). K and V of the tile stay in shared memory;
// the query heads of the group (in order), and for each its query tiles of 32 from the one
// holding the tile's first key (in order; with seg, those with some visible pair), pass Q and dO
// through shared memory: for each of the warp's keys lane r computes P and dS of query r into the
// warp's shared pair of rows, then the key gathers dV += sum_r P_r dO_r and dK += sum_r dS_r q_r.
// Dynamic shared memory (cuda_attention_backward_dkv_smem): K, V (BK,hs), Q, dO (32, hs|1), the
// tile's lse and D (32 each), P and dS per warp (4 x 64), segment ids (32 + BK ints).
template <class E, int NCH, int KPW>
static __global__ void __launch_bounds__(LC_ATT_BLOCK)
    attention_backward_dkv_kernel(E *dqkv, const E *dout, const E *qkv, const float *lse,
                                  const float *D, const int *seg, int T, int NH, int NKV, int hs) {
    constexpr int BK = KPW * LC_ATT_WARPS, BQ = LC_ATT_TILE;
    LC_DYN_SHARED(float, smem);
    const int ld = lc_att_ld(hs);
    float *ks = smem, *vs = ks + BK * hs, *qs = vs + BK * hs, *dos = qs + BQ * ld;
    float *ls = dos + BQ * ld, *dd = ls + BQ, *pw = dd + BQ;
    int *qseg = reinterpret_cast<int *>(pw + LC_ATT_WARPS * 2 * 32), *kseg = qseg + BQ;
    const int k0 = blockIdx.x * BK, kvh = blockIdx.y, b = blockIdx.z;
    const int nk = T - k0 < BK ? T - k0 : BK, lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int group = NH / NKV;
    const size_t row = (size_t)(NH + 2 * NKV) * hs, C = (size_t)NH * hs;
    const E *base = qkv + (size_t)b * T * row;
    const int *sb = seg ? seg + (size_t)b * T : nullptr;
    const float scale = 1.0f / sqrtf((float)hs);
    float *pp = pw + warp * 64, *pd = pp + 32; // this warp's P and dS of the tile's queries

    lc_att_load(ks, hs, base + (size_t)k0 * row + (size_t)(NH + kvh) * hs, row, nk, hs);
    lc_att_load(vs, hs, base + (size_t)k0 * row + (size_t)(NH + NKV + kvh) * hs, row, nk, hs);
    if (sb) lc_att_load_seg(kseg, sb + k0, nk);
    float dk[KPW][NCH], dv[KPW][NCH];
#pragma unroll
    for (int kk = 0; kk < KPW; kk++)
#pragma unroll
        for (int n = 0; n < NCH; n++) dk[kk][n] = dv[kk][n] = 0.0f;
    for (int g = 0; g < group; g++) {
        const int h = kvh * group + g;
        for (int q0 = k0 / BQ * BQ; q0 < T; q0 += BQ) { // earlier queries see none of the keys
            const int nq = T - q0 < BQ ? T - q0 : BQ;
            __syncthreads(); // the previous tile's reads are done (the first: K, V published)
            if (sb) {
                lc_att_load_seg(qseg, sb + q0, nq);
                __syncthreads();
                if (!lc_att_tile_visible(qseg, q0, nq, kseg, k0, nk)) continue;
            }
            lc_att_load(qs, ld, base + (size_t)q0 * row + (size_t)h * hs, row, nq, hs);
            lc_att_load(dos, ld, dout + ((size_t)b * T + q0) * C + (size_t)h * hs, C, nq, hs);
            for (int r = threadIdx.x; r < nq; r += blockDim.x) {
                const size_t si = ((size_t)b * NH + h) * T + q0 + r;
                ls[r] = lse[si];
                dd[r] = D[si];
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < KPW; kk++) {
                const int j = warp * KPW + kk;
                if (j < nk) { // the same for the whole warp
                    const int r = lane;
                    float p = 0.0f, dsv = 0.0f;
                    if (r < nq && k0 + j <= q0 + r && (!sb || qseg[r] == kseg[j])) {
                        const float *q = qs + r * ld, *d = dos + r * ld;
                        const float *k = ks + j * hs, *v = vs + j * hs;
                        float s = 0.0f, dp = 0.0f;
                        for (int i = 0; i < hs; i++) {
                            s += q[i] * k[i];
                            dp += d[i] * v[i];
                        }
                        p = expf(s * scale - ls[r]);
                        dsv = p * (dp - dd[r]) * scale;
                    }
                    pp[lane] = p;
                    pd[lane] = dsv;
                    __syncwarp(); // P and dS are the warp's own
#pragma unroll
                    for (int n = 0; n < NCH; n++) {
                        const int c = lane + 32 * n;
                        if (c < hs) {
                            float av = dv[kk][n], ak = dk[kk][n];
                            for (int i = 0; i < nq; i++) {
                                av += pp[i] * dos[i * ld + c];
                                ak += pd[i] * qs[i * ld + c];
                            }
                            dv[kk][n] = av;
                            dk[kk][n] = ak;
                        }
                    }
                    __syncwarp(); // read before the next key overwrites them
                }
            }
        }
    }
#pragma unroll
    for (int kk = 0; kk < KPW; kk++) {
        const int j = warp * KPW + kk;
        if (j < nk) {
            E *o = dqkv + ((size_t)b * T + k0 + j) * row;
            E *dko = o + (size_t)(NH + kvh) * hs, *dvo = o + (size_t)(NH + NKV + kvh) * hs;
#pragma unroll
            for (int n = 0; n < NCH; n++) {
                const int c = lane + 32 * n;
                if (c < hs) {
                    dko[c] = lc_from_float<E>(dk[kk][n]);
                    dvo[c] = lc_from_float<E>(dv[kk][n]);
                }
            }
        }
    }
}

// ---- launchers ----------------------------------------------------------------------------------

// Dynamic shared memory of each kernel, in bytes, for head size hs and NCH = lc_att_nch(hs)
// (the tile sizes of lc_att_tiles<NCH>); independent of T. KiB of forward, dQ and dK/dV: hs 64
// 14, 26, 34; hs 128 26, 41, 42; hs 160 26, 51, 52; hs 256 41, 81, 82. Past 48 KiB the launch
// opts in (A100 163 KiB, H100 227 KiB per block).
static inline size_t lc_att_fwd_smem_of(int hs, int rows) {
    size_t BQ = (size_t)rows * LC_ATT_WARPS, ld = (size_t)lc_att_ld(hs);
    return (BQ * hs + LC_ATT_TILE * ld + BQ * LC_ATT_TILE + BQ + LC_ATT_TILE) * sizeof(float);
}
static inline size_t lc_att_dq_smem_of(int hs, int rows) {
    size_t BQ = (size_t)rows * LC_ATT_WARPS, ld = (size_t)lc_att_ld(hs);
    return (2 * BQ * hs + 2 * LC_ATT_TILE * ld + BQ * LC_ATT_TILE + BQ + LC_ATT_TILE) *
           sizeof(float);
}
static inline size_t lc_att_dkv_smem_of(int hs, int keys) {
    size_t BK = (size_t)keys * LC_ATT_WARPS, ld = (size_t)lc_att_ld(hs);
    return (2 * BK * hs + 2 * LC_ATT_TILE * ld + 2 * LC_ATT_TILE + LC_ATT_WARPS * 64 + LC_ATT_TILE +
            BK) *
           sizeof(float);
}

// Whether a kernel may use smem bytes of dynamic shared memory (opting in past the default 48
// KiB, up to the device's limit).
template <class K> static inline bool lc_att_allow_smem(K kernel, size_t smem) {
#if defined(LC_CUDA_EMULATED)
    (void)kernel;
    return smem <= 227 * 1024;
#else
    if (smem <= 48 * 1024) return true;
    int dev = 0, optin = 0;
    return cudaGetDevice(&dev) == cudaSuccess &&
           cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) ==
               cudaSuccess &&
           smem <= (size_t)optin &&
           cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) ==
               cudaSuccess;
#endif
}

template <class E, int NCH>
static bool lc_att_forward_launch(E *out, float *lse, const E *qkv, const int *seg, int B, int T,
                                  int NH, int NKV, int hs, cudaStream_t stream) {
    constexpr int R = lc_att_tiles<NCH>::fwd_rows, BQ = R * LC_ATT_WARPS;
    auto kernel = attention_forward_kernel<E, NCH, R>;
    size_t smem = lc_att_fwd_smem_of(hs, R);
    if (!lc_att_allow_smem(kernel, smem)) return false;
    LC_LAUNCH(kernel, dim3((unsigned)lc_ceil_div(T, BQ), NH, B), LC_ATT_BLOCK, smem, stream, out,
              lse, qkv, seg, T, NH, NKV, hs);
    LC_LAUNCH_CHECK();
    return true;
}

template <class E, int NCH>
static bool lc_att_backward_launch(E *dqkv, float *D, const E *dout, const E *out, const E *qkv,
                                   const float *lse, const int *seg, int B, int T, int NH, int NKV,
                                   int hs, cudaStream_t stream) {
    constexpr int R = lc_att_tiles<NCH>::dq_rows, BQ = R * LC_ATT_WARPS;
    constexpr int KPW = lc_att_tiles<NCH>::dkv_keys, BK = KPW * LC_ATT_WARPS;
    auto dk = attention_backward_d_kernel<E>;
    auto dq = attention_backward_dq_kernel<E, NCH, R>;
    auto dkv = attention_backward_dkv_kernel<E, NCH, KPW>;
    size_t dq_smem = lc_att_dq_smem_of(hs, R), dkv_smem = lc_att_dkv_smem_of(hs, KPW);
    if (!lc_att_allow_smem(dq, dq_smem) || !lc_att_allow_smem(dkv, dkv_smem)) return false;
    size_t rows = (size_t)B * T * NH;
    LC_LAUNCH(dk, (unsigned)lc_ceil_div(rows, LC_ATT_WARPS), LC_ATT_BLOCK, 0, stream, D, dout, out,
              B, T, NH, hs);
    LC_LAUNCH_CHECK();
    LC_LAUNCH(dq, dim3((unsigned)lc_ceil_div(T, BQ), NH, B), LC_ATT_BLOCK, dq_smem, stream, dqkv,
              dout, qkv, lse, D, seg, T, NH, NKV, hs);
    LC_LAUNCH_CHECK();
    LC_LAUNCH(dkv, dim3((unsigned)lc_ceil_div(T, BK), NKV, B), LC_ATT_BLOCK, dkv_smem, stream, dqkv,
              dout, qkv, lse, D, seg, T, NH, NKV, hs);
    LC_LAUNCH_CHECK();
    return true;
}

// Floats of the forward's saved state (lse (B,NH,T)) and of the backward's scratch (D (B,NH,T)).
static inline size_t cuda_attention_state_floats(int B, int T, int NH) {
    return (size_t)B * NH * T;
}
static inline size_t cuda_attention_scratch_floats(int B, int T, int NH) {
    return (size_t)B * NH * T;
}

// Launches attention_forward: out (B,T,NH*hs) of E written, lse (B,NH,T) fp32 written; qkv
// (B,T,(NH+2NKV)hs) of E; seg (B,T) or NULL. NH a multiple of NKV. False (nothing launched) when
// hs is above LC_ATT_MAX_HS or the kernel's shared memory does not fit the device.
template <class E>
static inline bool cuda_attention_forward(E *out, float *lse, const E *qkv, const int *seg, int B,
                                          int T, int NH, int NKV, int hs, cudaStream_t stream) {
    if (B <= 0 || T <= 0 || NH <= 0) return true;
    switch (lc_att_nch(hs)) {
    case 1:
        return lc_att_forward_launch<E, 1>(out, lse, qkv, seg, B, T, NH, NKV, hs, stream);
    case 2:
        return lc_att_forward_launch<E, 2>(out, lse, qkv, seg, B, T, NH, NKV, hs, stream);
    case 4:
        return lc_att_forward_launch<E, 4>(out, lse, qkv, seg, B, T, NH, NKV, hs, stream);
    case 8:
        return lc_att_forward_launch<E, 8>(out, lse, qkv, seg, B, T, NH, NKV, hs, stream);
    default:
        return false;
    }
}

// Launches attention_backward: dqkv (B,T,(NH+2NKV)hs) of E written; D (B,NH,T) fp32 scratch,
// overwritten; dout, out (B,T,NH*hs) of E (out the forward's); qkv, lse, seg as in the forward.
// False (nothing launched) as the forward.
template <class E>
static inline bool cuda_attention_backward(E *dqkv, float *D, const E *dout, const E *out,
                                           const E *qkv, const float *lse, const int *seg, int B,
                                           int T, int NH, int NKV, int hs, cudaStream_t stream) {
    if (B <= 0 || T <= 0 || NH <= 0) return true;
    switch (lc_att_nch(hs)) {
    case 1:
        return lc_att_backward_launch<E, 1>(dqkv, D, dout, out, qkv, lse, seg, B, T, NH, NKV, hs,
                                            stream);
    case 2:
        return lc_att_backward_launch<E, 2>(dqkv, D, dout, out, qkv, lse, seg, B, T, NH, NKV, hs,
                                            stream);
    case 4:
        return lc_att_backward_launch<E, 4>(dqkv, D, dout, out, qkv, lse, seg, B, T, NH, NKV, hs,
                                            stream);
    case 8:
        return lc_att_backward_launch<E, 8>(dqkv, D, dout, out, qkv, lse, seg, B, T, NH, NKV, hs,
                                            stream);
    default:
        return false;
    }
}
