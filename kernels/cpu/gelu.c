// GELU, tanh approximation (as GPT-2): gelu(x) = 0.5 x (1 + tanh(k (x + 0.044715 x^3))),
// k = sqrt(2/pi). Shapes in kernels/kernels.h.
#include "kernels/cpu/cpu.h"
#include "kernels/vmath.h"

#define GELU_K 0.7978845608028654f // sqrt(2/pi)

void cpu_gelu_forward(float *out, const float *inp, size_t N) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + lc_tanhf(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

// d/dx gelu = 0.5 (1 + th) + 0.5 x (1 - th^2) k (1 + 3*0.044715 x^2), th = tanh(k(x + 0.044715x^3))
void cpu_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float th = lc_tanhf(GELU_K * (x + 0.044715f * x * x * x));
        float local = 0.5f * (1.0f + th) +
                      0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = local * dout[i];
    }
}
