// RMS normalisation over the channel dimension (Llama). Shapes in kernels/kernels.h.
#include "kernels/cpu/cpu.h"
#include <math.h>

// out (N,C) written = inp * rstd * weight; rstd (N) written; inp (N,C); weight (C).
// The mean of squares is accumulated in double: C can be thousands and eps small.
void cpu_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N,
                         int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float s = (float)(1.0 / sqrt(ss / C + eps));
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = x[c] * s * weight[c];
        rstd[n] = s;
    }
}

// With xhat = x * rstd and forward out = xhat * weight:
//   dweight += sum_n dout * xhat;   dinp += rstd * (dout*weight - xhat * mean_c(dout*weight*xhat))
// dinp (N,C) ACCUMULATED; dweight skipped when NULL (frozen). Threads split rows for dinp, then
// channels for dweight.
void cpu_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                          const float *weight, const float *rstd, int N, int C) {
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float s = rstd[n], dot = 0.0f;
            for (int c = 0; c < C; c++) dot += d[c] * weight[c] * x[c] * s;
            dot /= (float)C;
            float *di = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) di[c] += s * (d[c] * weight[c] - x[c] * s * dot);
        }
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = C * id / nt, c1 = C * (id + 1) / nt;
        for (int n = 0; dweight && n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float s = rstd[n];
            for (int c = c0; c < c1; c++) dweight[c] += d[c] * x[c] * s;
        }
    }
}
