// The CPU backend: memory is host memory; kernels are in this folder.
#include "kernels/cpu/cpu.h"
#include "common/check.h"
#include <string.h>

// 64-byte aligned so vector loads never straddle cache lines.
static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p)
        LC_DIE("out of memory allocating %zu bytes (hint: reduce batch_size or model size)", bytes);
    memset(p, 0, rounded);
    return p;
}

static void cpu_free(void *p) {
    free(p);
}

static void cpu_zero(void *p, size_t bytes) {
    memset(p, 0, bytes);
}

static void cpu_memcpy(void *dst, const void *src, size_t bytes) {
    memcpy(dst, src, bytes);
}

static int cpu_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
    return omp_get_max_threads();
}

static const Backend CPU_BACKEND = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .to_device = cpu_memcpy,
    .to_host = cpu_memcpy,
    .copy = cpu_memcpy,
    .threads = cpu_threads,
    .encoder_forward = cpu_encoder_forward,
    .encoder_backward = cpu_encoder_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_state_floats = cpu_attention_state_floats,
    .attention_scratch_floats = cpu_attention_scratch_floats,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .kvcache_write = cpu_kvcache_write,
    .attention_decode = cpu_attention_decode,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .residual_forward = cpu_residual_forward,
    .classifier_forward = cpu_classifier_forward,
    .classifier_backward = cpu_classifier_backward,
    .adamw_update = cpu_adamw_update,
    .sum_squares = cpu_sum_squares,
    .scale = cpu_scale,
    .sample_tokens = cpu_sample_tokens,
};

const Backend *backend_cpu(void) {
    return &CPU_BACKEND;
}
