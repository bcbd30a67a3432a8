// Optimiser update and reductions over flat arenas. Shapes in kernels/kernels.h.
#include "kernels/cpu/cpu.h"
#include <math.h>

// AdamW (Loshchilov & Hutter 2019) with decoupled weight decay:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   p -= lr * ( (m/bc1) / (sqrt(v/bc2) + eps) + wd * p )
void cpu_adamw_update(float *param, const float *grad, float *m, float *v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, float bc1,
                      float bc2) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1, vhat = vi / bc2;
        param[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * param[i]);
    }
}

// Each thread sums a fixed contiguous range in double; the per-thread partials are added in
// thread order. For a given thread count the result is the same on every run.
#define SSQ_MAX_THREADS 256
double cpu_sum_squares(const float *x, size_t n) {
    double partial[SSQ_MAX_THREADS] = {0};
    int nthreads = omp_get_max_threads();
    if (nthreads > SSQ_MAX_THREADS) nthreads = SSQ_MAX_THREADS;
#pragma omp parallel num_threads(nthreads)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        size_t i0 = n * (size_t)id / (size_t)nt, i1 = n * (size_t)(id + 1) / (size_t)nt;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        partial[id] = s;
    }
    double total = 0.0;
    for (int t = 0; t < nthreads; t++) total += partial[t];
    return total;
}

void cpu_scale(float *x, float s, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}
