// SwiGLU activation (Llama's MLP): out = silu(gate) * up. Shapes in kernels/kernels.h.
#include "kernels/cpu/cpu.h"
#include "kernels/vmath.h"

static inline float sigmoidf_(float x) {
    return 1.0f / (1.0f + lc_expf(-x));
}

// out (N,F) written; inp (N,2F): gate | up per row.
void cpu_swiglu_forward(float *out, const float *inp, int N, int F) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F;
        float *o = out + (size_t)n * F;
        for (int i = 0; i < F; i++) o[i] = g[i] * sigmoidf_(g[i]) * u[i];
    }
}

// silu'(g) = s (1 + g (1 - s)), s = sigmoid(g). dinp (N,2F) written; dout (N,F).
void cpu_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F, *d = dout + (size_t)n * F;
        float *dg = dinp + (size_t)n * 2 * F, *du = dg + F;
        for (int i = 0; i < F; i++) {
            float s = sigmoidf_(g[i]);
            du[i] = d[i] * g[i] * s;
            dg[i] = d[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        }
    }
}
