// Rotary position embedding, rotate-half convention. Shapes in kernels/kernels.h.
#include "kernels/cpu/cpu.h"
#include <math.h>

// Rotates every q and k head of qkv (B,T,(NH+2*NKV)*hs) in place by +a (dir 1) or -a (dir -1),
// a = pos * theta^(-2i/hs). The frequencies and angles are fp32 products, as transformers
// computes them, so imported models see the angles they were trained with.
static void rope_apply(float *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                       float theta, float dir) {
    int half = hs / 2, heads = NH + NKV, row = (NH + 2 * NKV) * hs;
    float inv_freq[half];
    for (int i = 0; i < half; i++) inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)hs);
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B * T; n++) {
        float p = (float)pos[n], cs[half], sn[half];
        for (int i = 0; i < half; i++) {
            float a = p * inv_freq[i];
            cs[i] = cosf(a);
            sn[i] = dir * sinf(a);
        }
        float *x = qkv + (size_t)n * row;
        for (int h = 0; h < heads; h++, x += hs) // q heads then k heads: contiguous
            for (int i = 0; i < half; i++) {
                float x0 = x[i], x1 = x[i + half];
                x[i] = x0 * cs[i] - x1 * sn[i];
                x[i + half] = x1 * cs[i] + x0 * sn[i];
            }
    }
}

void cpu_rope_forward(float *qkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                      float theta) {
    rope_apply(qkv, pos, B, T, NH, NKV, hs, theta, 1.0f);
}

void cpu_rope_backward(float *dqkv, const int *pos, int B, int T, int NH, int NKV, int hs,
                       float theta) {
    rope_apply(dqkv, pos, B, T, NH, NKV, hs, theta, -1.0f);
}
