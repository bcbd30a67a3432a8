// tests/testutil.h: shared helpers for the Check suites: random tensors, tolerance comparisons
// that report where and by how much they fail, a central finite-difference gradient checker,
// and running the PyTorch reference scripts.
#pragma once
#include "common/rng.h"
#include <check.h>
#include <stddef.h>

void fill_uniform(float *x, size_t n, Rng *r, float lo, float hi);

// Normwise error: max_i |got_i - want_i| / max(max_i |want_i|, floor). Prints the worst index
// and the first values side by side when it exceeds tol. Returns the error.
double max_norm_err(const char *what, const float *got, const float *want, size_t n, double floor,
                    double tol);

// Checks the analytic gradient `grad` of a scalar function f(ctx) with respect to x (n) by
// central differences (five-point stencil) with step eps, on at most max_checks elements spread
// evenly over x. Fails the current Check test if max |fd - grad| > tol * max(max |grad|, 1e-3);
// returns that normwise error.
typedef double (*ScalarFn)(void *ctx);
double grad_check(const char *what, float *x, size_t n, const float *grad, ScalarFn f, void *ctx,
                  float eps, double tol, int max_checks);

// Whether the Python interpreter has torch and h5py: 0 if it has; if not, 1 when the CI
// environment variable is set (CI must not skip) and 77 (ctest's skip code) otherwise, after
// printing why. A suite's main() returns this before running when it is nonzero.
int require_torch(void);

// Runs tests/<script> with that interpreter and the given arguments; returns its exit status.
int run_torch_script(const char *script, const char *args);

// Path helpers: a file under the build's scratch folder for tests (created on demand).
const char *test_tmp_path(const char *name);

// Runs a Check suite and returns the process exit status.
int run_suite(Suite *s);

// A GPT-2 model configuration as a constant initialiser: model_config_default's values for
// that family (model/model.h).
#define GPT2_CONFIG(L, NH, C, V, T)                                                                \
    {                                                                                              \
        .family = MODEL_FAMILY_GPT2, .n_layer = (L), .n_head = (NH), .n_kv_head = (NH),            \
        .d_model = (C), .d_ff = 4 * (C), .vocab_size = (V), .max_seq_len = (T), .norm_eps = 1e-5f, \
        .rope_theta = 10000.0f, .qkv_bias = true, .tied = true                                     \
    }
