// Matrix product with bias, through CBLAS (OpenBLAS). Shapes in kernels/kernels.h.
#include "kernels/cpu/cpu.h"
#include <cblas.h>

// out (N,OC) written = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be NULL.
void cpu_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                        int C, int OC) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] = bias[o];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta,
                out, OC);
}

// dinp (N,C) written = dout @ weight (skipped if NULL); dweight (OC,C) += dout^T @ inp (skipped
// if NULL: frozen);
// dbias (OC) += column sums of dout (skipped if NULL; threads split the columns).
void cpu_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int N, int C, int OC) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
                    0.0f, dinp, C);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                    dweight, C);
    if (!dbias) return;
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int o0 = OC * id / nt, o1 = OC * (id + 1) / nt;
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int o = o0; o < o1; o++) dbias[o] += d[o];
        }
    }
}
