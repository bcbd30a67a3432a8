// Residual add. Its backward is the identity into both addends: the model never materialises
// it, because the residual-stream gradient is accumulated in place (see kernels/kernels.h).
#include "kernels/cpu/cpu.h"

// out (N) written = a + b.
void cpu_residual_forward(float *out, const float *a, const float *b, size_t N) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}
