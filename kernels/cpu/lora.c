// Low-rank adapters (LoRA) on a block of a linear layer's output columns, through CBLAS.
// Shapes in kernels/kernels.h (lora_forward, lora_backward).
#include "kernels/cpu/cpu.h"

// h (N,r) written = inp (N,C) @ a (r,C)^T; out (N,OC) columns [o0, o0+OS) += scale * h @ b^T,
// b (OS,r).
void cpu_lora_forward(float *out, float *h, const float *inp, const float *a, const float *b, int N,
                      int C, int OC, int o0, int OS, int r, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, C, 1.0f, inp, C, a, C, 0.0f, h, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OS, r, scale, h, r, b, r, 1.0f,
                out + o0, OC);
}

// g = dout (N,OC) columns [o0, o0+OS): dh (N,r) = scale * g @ b; db (OS,r) += scale * g^T @ h;
// da (r,C) += dh^T @ inp; dinp (N,C) += dh @ a.
void cpu_lora_backward(float *dinp, float *da, float *db, float *dh, const float *dout,
                       const float *inp, const float *h, const float *a, const float *b, int N,
                       int C, int OC, int o0, int OS, int r, float scale) {
    const float *g = dout + o0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, OS, scale, g, OC, b, r, 0.0f, dh,
                r);
    if (db)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OS, r, N, scale, g, OC, h, r, 1.0f, db,
                    r);
    if (da)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, C, N, 1.0f, dh, r, inp, C, 1.0f, da,
                    C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, r, 1.0f, dh, r, a, C, 1.0f, dinp,
                C);
}
