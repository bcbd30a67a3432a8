// tests/test_kernel_parity.c: the Llama ops of the CPU backend against PyTorch, one op at a
// time: RMSNorm, RoPE (rotate-half, transformers' fp32 angles, positions up to 16383), SwiGLU,
// grouped-query attention (NKV = 2 with packed segments, NKV = 1 without; the exact and the
// flash kernels) and a PEFT-style LoRA adapter on one block of a frozen linear layer's outputs. One
// HDF5 file holds every case's random inputs, shape and dout; tests/torch_kernels.py computes, from
// its own definitions in float64, each op's outputs and the input gradients of sum(out * dout) by
// autograd, in one run (the fixture). Each test runs the kernel's forward and backward on the same
// inputs and compares every output and gradient normwise:
//   max_i |ours_i - torch_i| / max_i |torch_i| <= 1e-5.
#include "common/h5.h"
#include "kernels/kernels.h"
#include "tests/testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5

static const Backend *be;
static int script_rc = -1; // the reference script's exit status, set by the fixture

// ---- the cases ------------------------------------------------------------------------------

#define RMS_N 6
#define RMS_C 40
static const float RMS_EPS = 1e-5f;
static float rms_x[RMS_N * RMS_C], rms_w[RMS_C], rms_dout[RMS_N * RMS_C];

#define ROPE_B   2
#define ROPE_T   7
#define ROPE_NH  4
#define ROPE_NKV 2
#define ROPE_HS  10
#define ROPE_QKV ((ROPE_NH + 2 * ROPE_NKV) * ROPE_HS)
static const float ROPE_THETA = 10000.0f;
// row 0 counts from 0; row 1 jumps to positions where an fp64 angle would differ from fp32's
static const int rope_pos[ROPE_B * ROPE_T] = {0, 1, 2,  3,   4,    5,    6,
                                              1, 3, 17, 255, 1000, 4095, 16383};
static float rope_qkv[ROPE_B * ROPE_T * ROPE_QKV], rope_dout[ROPE_B * ROPE_T * ROPE_QKV];

#define SWI_N 5
#define SWI_F 24
static float swi_inp[SWI_N * 2 * SWI_F], swi_dout[SWI_N * SWI_F];

// Attention cases: (B, T, NH, hs) = (2, 8, 4, 6); NKV 2 with segments, NKV 1 without.
#define ATT_B  2
#define ATT_T  8
#define ATT_NH 4
#define ATT_HS 6
#define ATT_C  (ATT_NH * ATT_HS)
typedef struct {
    const char *name;
    int NKV;
    const int *seg;
    float qkv[ATT_B * ATT_T * (ATT_NH + 2 * ATT_NH) * ATT_HS]; // room for NKV up to NH
    float dout[ATT_B * ATT_T * ATT_C];
} AttCase;
// row 0: {0,1,2} {3..6} and a padding segment {7}; row 1: {0..5} {6,7}
static const int att_seg[ATT_B * ATT_T] = {0, 0, 0, 1, 1, 1, 1, 2, 0, 0, 0, 0, 0, 0, 1, 1};
static AttCase att_cases[2] = {{.name = "attention_gqa", .NKV = 2, .seg = att_seg},
                               {.name = "attention_mqa", .NKV = 1, .seg = NULL}};

// LoRA: an adapter of rank 4 on the k block [8, 16) of a fused q|k|v projection (OC 24) with a
// bias, alpha 6 (scale alpha / r = 1.5), over a frozen base weight.
#define LORA_N     5
#define LORA_C     10
#define LORA_OC    24
#define LORA_O0    8
#define LORA_OS    8
#define LORA_R     4
#define LORA_ALPHA 6.0f
static float lora_x[LORA_N * LORA_C], lora_w[LORA_OC * LORA_C], lora_bias[LORA_OC];
static float lora_a[LORA_R * LORA_C], lora_b[LORA_OS * LORA_R], lora_dout[LORA_N * LORA_OC];

static size_t att_row(const AttCase *a) {
    return (size_t)(ATT_NH + 2 * a->NKV) * ATT_HS;
}

// ---- writing the inputs, reading the reference --------------------------------------------

static int write_f32(hid_t g, const char *name, const float *x, int ndim, hsize_t d0, hsize_t d1,
                     hsize_t d2) {
    hsize_t dims[3] = {d0, d1, d2};
    return h5_write_f32(g, name, ndim, dims, x);
}

static int write_i64(hid_t g, const char *name, const int *x, hsize_t d0, hsize_t d1) {
    int64_t v[64];
    if (d0 * d1 > 64) return -1;
    for (hsize_t i = 0; i < d0 * d1; i++) v[i] = x[i];
    hsize_t dims[2] = {d0, d1};
    return h5_write_i64(g, name, 2, dims, v);
}

static int attr_i(hid_t g, const char *name, int64_t v) {
    return h5_write_attr_i64(g, name, v);
}

// Random inputs for every case, written to path; 0 or -1.
static int write_cases(const char *path) {
    Rng r = rng_init(2024);
    fill_uniform(rms_x, RMS_N * RMS_C, &r, -2, 2);
    for (int c = 0; c < RMS_C; c++) rms_x[c] *= 1e-3f; // row 0: mean(x^2) ~ 1e-6, below eps
    fill_uniform(rms_w, RMS_C, &r, 0.5f, 1.5f);
    fill_uniform(rms_dout, RMS_N * RMS_C, &r, -1, 1);
    fill_uniform(rope_qkv, ROPE_B * ROPE_T * ROPE_QKV, &r, -1, 1);
    fill_uniform(rope_dout, ROPE_B * ROPE_T * ROPE_QKV, &r, -1, 1);
    fill_uniform(swi_inp, SWI_N * 2 * SWI_F, &r, -6, 6);
    fill_uniform(swi_dout, SWI_N * SWI_F, &r, -1, 1);
    for (int k = 0; k < 2; k++) {
        fill_uniform(att_cases[k].qkv, ATT_B * ATT_T * att_row(&att_cases[k]), &r, -1.5f, 1.5f);
        fill_uniform(att_cases[k].dout, ATT_B * ATT_T * ATT_C, &r, -1, 1);
    }
    fill_uniform(lora_x, LORA_N * LORA_C, &r, -1, 1);
    fill_uniform(lora_w, LORA_OC * LORA_C, &r, -1, 1);
    fill_uniform(lora_bias, LORA_OC, &r, -1, 1);
    fill_uniform(lora_a, LORA_R * LORA_C, &r, -1, 1);
    fill_uniform(lora_b, LORA_OS * LORA_R, &r, -1, 1); // peft starts B at 0: trained here
    fill_uniform(lora_dout, LORA_N * LORA_OC, &r, -1, 1);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    int rc = 0;
    hid_t g = H5Gcreate2(f, "rmsnorm", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc |= h5_write_attr_str(g, "op", "rmsnorm") | attr_i(g, "N", RMS_N) | attr_i(g, "C", RMS_C);
    rc |= h5_write_attr_f64(g, "eps", RMS_EPS);
    rc |= write_f32(g, "x", rms_x, 2, RMS_N, RMS_C, 0) |
          write_f32(g, "weight", rms_w, 1, RMS_C, 0, 0);
    rc |= write_f32(g, "dout", rms_dout, 2, RMS_N, RMS_C, 0);
    H5Gclose(g);

    g = H5Gcreate2(f, "rope", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc |= h5_write_attr_str(g, "op", "rope") | attr_i(g, "B", ROPE_B) | attr_i(g, "T", ROPE_T);
    rc |= attr_i(g, "NH", ROPE_NH) | attr_i(g, "NKV", ROPE_NKV) | attr_i(g, "hs", ROPE_HS);
    rc |= h5_write_attr_f64(g, "theta", ROPE_THETA);
    rc |= write_f32(g, "qkv", rope_qkv, 3, ROPE_B, ROPE_T, ROPE_QKV);
    rc |= write_f32(g, "dout", rope_dout, 3, ROPE_B, ROPE_T, ROPE_QKV);
    rc |= write_i64(g, "pos", rope_pos, ROPE_B, ROPE_T);
    H5Gclose(g);

    g = H5Gcreate2(f, "swiglu", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc |= h5_write_attr_str(g, "op", "swiglu") | attr_i(g, "N", SWI_N) | attr_i(g, "F", SWI_F);
    rc |= write_f32(g, "inp", swi_inp, 2, SWI_N, 2 * SWI_F, 0);
    rc |= write_f32(g, "dout", swi_dout, 2, SWI_N, SWI_F, 0);
    H5Gclose(g);

    g = H5Gcreate2(f, "lora", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    rc |= h5_write_attr_str(g, "op", "lora") | attr_i(g, "N", LORA_N) | attr_i(g, "C", LORA_C);
    rc |= attr_i(g, "OC", LORA_OC) | attr_i(g, "o0", LORA_O0) | attr_i(g, "OS", LORA_OS);
    rc |= attr_i(g, "r", LORA_R) | h5_write_attr_f64(g, "alpha", LORA_ALPHA);
    rc |= write_f32(g, "x", lora_x, 2, LORA_N, LORA_C, 0);
    rc |= write_f32(g, "weight", lora_w, 2, LORA_OC, LORA_C, 0);
    rc |= write_f32(g, "bias", lora_bias, 1, LORA_OC, 0, 0);
    rc |= write_f32(g, "lora_A", lora_a, 2, LORA_R, LORA_C, 0);
    rc |= write_f32(g, "lora_B", lora_b, 2, LORA_OS, LORA_R, 0);
    rc |= write_f32(g, "dout", lora_dout, 2, LORA_N, LORA_OC, 0);
    H5Gclose(g);

    for (int k = 0; k < 2; k++) {
        const AttCase *a = &att_cases[k];
        g = H5Gcreate2(f, a->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        rc |= h5_write_attr_str(g, "op", "attention") | attr_i(g, "B", ATT_B);
        rc |= attr_i(g, "T", ATT_T) | attr_i(g, "NH", ATT_NH) | attr_i(g, "NKV", a->NKV);
        rc |= attr_i(g, "hs", ATT_HS) | attr_i(g, "has_seg", a->seg != NULL);
        rc |= write_f32(g, "qkv", a->qkv, 3, ATT_B, ATT_T, att_row(a));
        rc |= write_f32(g, "dout", a->dout, 3, ATT_B, ATT_T, ATT_C);
        if (a->seg) rc |= write_i64(g, "seg", a->seg, ATT_B, ATT_T);
        H5Gclose(g);
    }
    H5Fclose(f);
    return rc ? -1 : 0;
}

static const char *in_path(void) {
    return test_tmp_path("kernel-parity-in.h5");
}

static const char *out_path(void) {
    return test_tmp_path("kernel-parity-out.h5");
}

// Writes the cases and runs the reference once, before the tests (in the parent process).
static void setup(void) {
    char args[4200];
    if (write_cases(in_path()) != 0) {
        fprintf(stderr, "could not write %s\n", in_path());
        return;
    }
    snprintf(args, sizeof(args), "%s %s", in_path(), out_path());
    script_rc = run_torch_script("torch_kernels.py", args);
}

// Compares ours (n floats) with the reference's dataset <group>/<name>.
static void check(const char *group, const char *name, const float *ours, size_t n) {
    ck_assert_msg(script_rc == 0, "tests/torch_kernels.py failed (exit status %d)", script_rc);
    hid_t f = H5Fopen(out_path(), H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", out_path());
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    ck_assert_msg(g >= 0, "the reference has no group %s", group);
    float *want = malloc(n * sizeof(float));
    ck_assert_msg(h5_read_f32(g, name, want, n) == 0, "%s/%s: missing, or not %zu float32", group,
                  name, n);
    H5Gclose(g);
    H5Fclose(f);
    char what[128];
    snprintf(what, sizeof(what), "%s %s", group, name);
    double e = max_norm_err(what, ours, want, n, 1e-12, TOL);
    if (getenv("LC_VERBOSE")) fprintf(stderr, "%-32s normwise error %.3g\n", what, e);
    ck_assert_msg(e <= TOL, "%s: normwise error %.3g > %.3g against PyTorch", what, e, TOL);
    free(want);
}

// ---- the tests ------------------------------------------------------------------------------

START_TEST(test_rmsnorm_parity) {
    float out[RMS_N * RMS_C], rstd[RMS_N], dx[RMS_N * RMS_C] = {0}, dw[RMS_C] = {0};
    be->rmsnorm_forward(out, rstd, rms_x, rms_w, RMS_N, RMS_C, RMS_EPS);
    be->rmsnorm_backward(dx, dw, rms_dout, rms_x, rms_w, rstd, RMS_N, RMS_C);
    check("rmsnorm", "out", out, RMS_N * RMS_C);
    check("rmsnorm", "rstd", rstd, RMS_N);
    check("rmsnorm", "grad/x", dx, RMS_N * RMS_C);
    check("rmsnorm", "grad/weight", dw, RMS_C);
}
END_TEST

START_TEST(test_rope_parity) {
    size_t n = ROPE_B * ROPE_T * ROPE_QKV;
    float *x = malloc(n * sizeof(float)), *d = malloc(n * sizeof(float));
    memcpy(x, rope_qkv, n * sizeof(float));
    memcpy(d, rope_dout, n * sizeof(float));
    be->rope_forward(x, rope_pos, ROPE_B, ROPE_T, ROPE_NH, ROPE_NKV, ROPE_HS, ROPE_THETA);
    be->rope_backward(d, rope_pos, ROPE_B, ROPE_T, ROPE_NH, ROPE_NKV, ROPE_HS, ROPE_THETA);
    check("rope", "out", x, n);
    check("rope", "grad/qkv", d, n);
    free(x), free(d);
}
END_TEST

START_TEST(test_swiglu_parity) {
    float out[SWI_N * SWI_F], dinp[SWI_N * 2 * SWI_F];
    be->swiglu_forward(out, swi_inp, SWI_N, SWI_F);
    be->swiglu_backward(dinp, swi_inp, swi_dout, SWI_N, SWI_F);
    check("swiglu", "out", out, SWI_N * SWI_F);
    check("swiglu", "grad/inp", dinp, SWI_N * 2 * SWI_F);
}
END_TEST

START_TEST(test_attention_parity) {
    for (int k = 0; k < 2; k++) {
        const AttCase *a = &att_cases[k];
        size_t nqkv = ATT_B * ATT_T * att_row(a), natt = ATT_B * ATT_NH * ATT_T * ATT_T;
        float *out = calloc(ATT_B * ATT_T * ATT_C, sizeof(float));
        float *att = calloc(natt, sizeof(float)), *datt = calloc(natt, sizeof(float));
        float *dqkv = calloc(nqkv, sizeof(float));
        be->attention_forward(out, att, a->qkv, a->seg, ATT_B, ATT_T, ATT_NH, a->NKV, ATT_HS);
        be->attention_backward(dqkv, datt, a->dout, out, a->qkv, att, a->seg, ATT_B, ATT_T, ATT_NH,
                               a->NKV, ATT_HS);
        check(a->name, "out", out, ATT_B * ATT_T * ATT_C);
        check(a->name, "att", att, natt);
        check(a->name, "grad/qkv", dqkv, nqkv);
        free(out), free(att), free(datt), free(dqkv);
    }
}
END_TEST

// PEFT's LoRA over a frozen linear layer: the base matmul_forward plus lora_forward, then
// matmul_backward with the weight and bias frozen (dweight, dbias NULL) writing dinp and
// lora_backward adding the adapter's path to it; da and db start at zero.
START_TEST(test_lora_parity) {
    const float scale = LORA_ALPHA / LORA_R;
    float out[LORA_N * LORA_OC], h[LORA_N * LORA_R], dh[LORA_N * LORA_R];
    float dx[LORA_N * LORA_C], da[LORA_R * LORA_C] = {0}, db[LORA_OS * LORA_R] = {0};
    be->matmul_forward(out, lora_x, lora_w, lora_bias, LORA_N, LORA_C, LORA_OC);
    be->lora_forward(out, h, lora_x, lora_a, lora_b, LORA_N, LORA_C, LORA_OC, LORA_O0, LORA_OS,
                     LORA_R, scale);
    be->matmul_backward(dx, NULL, NULL, lora_dout, lora_x, lora_w, LORA_N, LORA_C, LORA_OC);
    be->lora_backward(dx, da, db, dh, lora_dout, lora_x, h, lora_a, lora_b, LORA_N, LORA_C, LORA_OC,
                      LORA_O0, LORA_OS, LORA_R, scale);
    check("lora", "out", out, LORA_N * LORA_OC);
    check("lora", "grad/x", dx, LORA_N * LORA_C);
    check("lora", "grad/lora_A", da, LORA_R * LORA_C);
    check("lora", "grad/lora_B", db, LORA_OS * LORA_R);
}
END_TEST

// The CPU's `attention: flash` kernels against the same reference: out, the state (the
// logsumexp (B,NH,T)) and dqkv.
START_TEST(test_flash_attention_parity) {
    const Backend *fl = backend_cpu_flash();
    for (int k = 0; k < 2; k++) {
        const AttCase *a = &att_cases[k];
        size_t nqkv = ATT_B * ATT_T * att_row(a),
               nlse = fl->attention_state_floats(ATT_B, ATT_T, ATT_NH);
        ck_assert_uint_eq(nlse, ATT_B * ATT_NH * ATT_T);
        float *out = calloc(ATT_B * ATT_T * ATT_C, sizeof(float));
        float *lse = calloc(nlse, sizeof(float));
        float *d = calloc(fl->attention_scratch_floats(ATT_B, ATT_T, ATT_NH), sizeof(float));
        float *dqkv = calloc(nqkv, sizeof(float));
        fl->attention_forward(out, lse, a->qkv, a->seg, ATT_B, ATT_T, ATT_NH, a->NKV, ATT_HS);
        fl->attention_backward(dqkv, d, a->dout, out, a->qkv, lse, a->seg, ATT_B, ATT_T, ATT_NH,
                               a->NKV, ATT_HS);
        check(a->name, "out", out, ATT_B * ATT_T * ATT_C);
        check(a->name, "lse", lse, nlse);
        check(a->name, "grad/qkv", dqkv, nqkv);
        free(out), free(lse), free(d), free(dqkv);
    }
}
END_TEST

int main(void) {
    int rc = require_torch();
    if (rc) return rc;
    h5_init();
    be = backend_cpu();
    Suite *s = suite_create("kernel_parity");
    TCase *tc = tcase_create("pytorch");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_rmsnorm_parity);
    tcase_add_test(tc, test_rope_parity);
    tcase_add_test(tc, test_swiglu_parity);
    tcase_add_test(tc, test_attention_parity);
    tcase_add_test(tc, test_flash_attention_parity);
    tcase_add_test(tc, test_lora_parity);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
