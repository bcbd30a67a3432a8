#include "tests/testutil.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

void fill_uniform(float *x, size_t n, Rng *r, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)rng_uniform(r);
}

double max_norm_err(const char *what, const float *got, const float *want, size_t n, double floor,
                    double tol) {
    double maxw = floor, maxd = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i])) {
            fprintf(stderr, "%s: non-finite value at %zu: got %g want %g\n", what, i, got[i],
                    want[i]);
            return INFINITY;
        }
        if (fabs(want[i]) > maxw) maxw = fabs(want[i]);
        double d = fabs((double)got[i] - want[i]);
        if (d > maxd) {
            maxd = d;
            worst = i;
        }
    }
    double err = maxd / maxw;
    if (err > tol) {
        fprintf(stderr,
                "%s: normwise error %.3g > %.3g (max |want| %.3g) worst at %zu: got %.8g "
                "want %.8g\n",
                what, err, tol, maxw, worst, got[worst], want[worst]);
        for (size_t i = 0; i < n && i < 5; i++)
            fprintf(stderr, "  [%zu] got %.8g want %.8g\n", i, got[i], want[i]);
    }
    return err;
}

double grad_check(const char *what, float *x, size_t n, const float *grad, ScalarFn f, void *ctx,
                  float eps, double tol, int max_checks) {
    size_t stride = n > (size_t)max_checks ? n / (size_t)max_checks : 1;
    double maxg = 1e-3, maxd = 0.0;
    for (size_t i = 0; i < n; i++) maxg = fmax(maxg, fabs(grad[i]));
    size_t worst = 0;
    double worst_fd = 0.0;
    for (size_t i = 0; i < n; i += stride) {
        // five-point stencil: truncation error O(eps^4), so eps can stay large enough that
        // fp32 rounding in the forward does not dominate
        float orig = x[i];
        double fv[4];
        const float steps[4] = {orig + eps, orig - eps, orig + 2 * eps, orig - 2 * eps};
        for (int k = 0; k < 4; k++) {
            x[i] = steps[k];
            fv[k] = f(ctx);
        }
        x[i] = orig;
        // central differences at h and 2h (over the steps as rounded to float), combined by
        // Richardson extrapolation to cancel the h^2 term
        double d1 = (fv[0] - fv[1]) / ((double)steps[0] - steps[1]);
        double d2 = (fv[2] - fv[3]) / ((double)steps[2] - steps[3]);
        double fd = (4.0 * d1 - d2) / 3.0;
        double d = fabs(fd - grad[i]);
        if (d > maxd) {
            maxd = d;
            worst = i;
            worst_fd = fd;
        }
    }
    double err = maxd / maxg;
    if (err > tol)
        fprintf(stderr, "%s: gradient check error %.3g > %.3g at %zu: analytic %.8g fd %.8g\n",
                what, err, tol, worst, grad[worst], worst_fd);
    ck_assert_msg(err <= tol, "%s: gradient check error %.3g > %.3g", what, err, tol);
    return err;
}

int require_torch(void) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s -c 'import torch, h5py' 2>/dev/null", LC_PYTHON);
    if (system(cmd) == 0) return 0;
    if (getenv("CI")) {
        fprintf(stderr,
                "torch/h5py missing for %s but CI is set: failing (install "
                "python3-torch python3-h5py)\n",
                LC_PYTHON);
        return 1;
    }
    fprintf(stderr,
            "skipping: %s has no torch/h5py (apt-get install python3-torch "
            "python3-h5py)\n",
            LC_PYTHON);
    return 77;
}

int run_torch_script(const char *script, const char *args) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s %s/tests/%s %s", LC_PYTHON, LC_SOURCE_DIR, script, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 1;
}

const char *test_tmp_path(const char *name) {
    static char buf[8][2048];
    static int next = 0;
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/test-tmp", LC_BINARY_DIR);
    mkdir(dir, 0755);
    char *p = buf[next++ % 8];
    snprintf(p, 2048, "%s/%s", dir, name);
    return p;
}

int run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
