// Layer normalisation over the channel dimension. Shapes in kernels/kernels.h.
#include "kernels/cpu/cpu.h"
#include <math.h>

#define LN_EPS 1e-5f

// out (N,C) written; mean, rstd (N) written; inp (N,C); weight, bias (C).
void cpu_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float var = 0.0f;
        for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
        var /= (float)C;
        float s = 1.0f / sqrtf(var + LN_EPS);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

// With xhat = (x - mean) * rstd and dnorm = dout * weight (forward: out = xhat*weight + bias):
//   dbias += sum_n dout;  dweight += sum_n dout * xhat;
//   dinp  += rstd * (dnorm - mean_c(dnorm) - xhat * mean_c(dnorm * xhat))
// dinp (N,C) ACCUMULATED; dweight, dbias skipped when NULL (frozen). Threads split rows for dinp,
// then channels for dweight/dbias.
void cpu_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int N, int C) {
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float dnorm_mean = 0.0f, dnorm_xhat_mean = 0.0f;
            for (int c = 0; c < C; c++) {
                float dnorm = d[c] * weight[c];
                dnorm_mean += dnorm;
                dnorm_xhat_mean += dnorm * (x[c] - m) * s;
            }
            dnorm_mean /= (float)C;
            dnorm_xhat_mean /= (float)C;
            float *di = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                di[c] += s * (d[c] * weight[c] - dnorm_mean - xhat * dnorm_xhat_mean);
            }
        }
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = C * id / nt, c1 = C * (id + 1) / nt;
        for (int n = 0; (dweight || dbias) && n < N; n++) {
            const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int c = c0; c < c1 && dbias; c++) dbias[c] += d[c];
            for (int c = c0; c < c1 && dweight; c++) dweight[c] += d[c] * (x[c] - m) * s;
        }
    }
}
