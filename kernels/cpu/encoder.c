// Token + position embedding. Shapes in kernels/kernels.h.
#include "kernels/cpu/cpu.h"

// out (B,T,C) written = wte[tokens[b,t]] + wpe[pos[b,t]]; pos NULL means pos = t; wpe NULL
// means no position table.
void cpu_encoder_forward(float *out, const int *tokens, const int *pos, const float *wte,
                         const float *wpe, int B, int T, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < B * T; n++) {
        const float *te = wte + (size_t)tokens[n] * C;
        float *o = out + (size_t)n * C;
        if (!wpe) { // rotary models: positions enter in the attention
            for (int c = 0; c < C; c++) o[c] = te[c];
            continue;
        }
        const float *pe = wpe + (size_t)(pos ? pos[n] : n % T) * C;
        for (int c = 0; c < C; c++) o[c] = te[c] + pe[c];
    }
}

// dwte (Vp,C) +=, dwpe (maxT,C) += (skipped if NULL). Rows sharing a token add into the same
// gradient row, so threads split the channels (not the rows): no races, and a fixed order of
// additions.
void cpu_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tokens,
                          const int *pos, int B, int T, int C) {
    if (!dwte && !dwpe) return; // both frozen
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int c0 = C * id / nt, c1 = C * (id + 1) / nt;
        for (int n = 0; n < B * T; n++) {
            const float *d = dout + (size_t)n * C;
            if (dwte) {
                float *dte = dwte + (size_t)tokens[n] * C;
                for (int c = c0; c < c1; c++) dte[c] += d[c];
            }
            if (!dwpe) continue;
            float *dpe = dwpe + (size_t)(pos ? pos[n] : n % T) * C;
            for (int c = c0; c < c1; c++) dpe[c] += d[c];
        }
    }
}
