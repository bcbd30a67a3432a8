// tests/test_collective.c: the collective layer (kernels/collective.h, docs/distributed.md).
// Always (each test in its own forked process, the environment edited there):
//   - launch_env: each launcher's variables, their precedence, malformed values, rank >= world;
//   - comm_slice_begin: uneven splits, n < world, n = 0;
//   - the single implementation (every operation the identity) and comm_open's refusals.
// Launched by mpirun with several processes (ctest's test_collective_mpi: -np 2), then also, in
// one process per rank without forking (MPI must not fork): all_reduce over floats and host
// doubles against the rank-ordered sum of known per-rank inputs, reduce_scatter + all_gather
// round trips over uneven n (7, 1, 1000003), broadcast from each root, barrier, the same result
// bits on every rank and on a second identical call.
#include "kernels/collective.h"
#include "tests/testutil.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---- launch_env -------------------------------------------------------------------------------

static const char *ALL_VARS[] = {"OMPI_COMM_WORLD_RANK",
                                 "OMPI_COMM_WORLD_SIZE",
                                 "OMPI_COMM_WORLD_LOCAL_RANK",
                                 "SLURM_PROCID",
                                 "SLURM_NTASKS",
                                 "SLURM_LOCALID",
                                 "PMI_RANK",
                                 "PMI_SIZE",
                                 "MPI_LOCALRANKID"};

static void clear_env(void) {
    for (size_t i = 0; i < sizeof(ALL_VARS) / sizeof(ALL_VARS[0]); i++) unsetenv(ALL_VARS[i]);
}

// launch_env succeeds with these values.
static void expect_env(int rank, int world, int local, const char *launcher) {
    LaunchEnv e;
    char why[512] = "";
    ck_assert_msg(launch_env(&e, why, sizeof(why)) == 0, "launch_env failed: %s", why);
    ck_assert_int_eq(e.rank, rank);
    ck_assert_int_eq(e.world, world);
    ck_assert_int_eq(e.local_rank, local);
    ck_assert_str_eq(e.launcher, launcher);
}

// launch_env fails with a message holding both strings.
static void expect_env_error(const char *want1, const char *want2) {
    LaunchEnv e;
    char why[512] = "";
    ck_assert_int_eq(launch_env(&e, why, sizeof(why)), -1);
    ck_assert_msg(strstr(why, want1) && strstr(why, want2), "message [%s] lacks [%s] or [%s]", why,
                  want1, want2);
}

START_TEST(test_env_none) {
    clear_env();
    expect_env(0, 1, 0, "none");
}
END_TEST

START_TEST(test_env_launchers) {
    clear_env();
    setenv("PMI_RANK", "2", 1);
    setenv("PMI_SIZE", "3", 1);
    expect_env(2, 3, 0, "pmi"); // no local rank variable: 0
    setenv("MPI_LOCALRANKID", "1", 1);
    expect_env(2, 3, 1, "pmi");
    setenv("SLURM_PROCID", "5", 1);
    setenv("SLURM_NTASKS", "8", 1);
    setenv("SLURM_LOCALID", "1", 1);
    expect_env(5, 8, 1, "srun"); // srun before PMI
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0", 1);
    expect_env(1, 2, 0, "mpirun"); // mpirun before both (mpirun inside an allocation)
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    expect_env(0, 1, 0, "mpirun");
}
END_TEST

START_TEST(test_env_malformed) {
    static const char *bad[] = {"abc", "", "-1", "+1", " 1", "1 ", "2x", "0x1", "99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clear_env();
        setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
        setenv("OMPI_COMM_WORLD_RANK", bad[i], 1);
        char want[64];
        snprintf(want, sizeof(want), "'%s'", bad[i]);
        expect_env_error("OMPI_COMM_WORLD_RANK", want);
    }
    clear_env();
    setenv("SLURM_PROCID", "0", 1);
    setenv("SLURM_NTASKS", "0", 1); // a world of none
    expect_env_error("SLURM_NTASKS", "'0'");
    setenv("SLURM_NTASKS", "2", 1);
    setenv("SLURM_LOCALID", "x", 1);
    expect_env_error("SLURM_LOCALID", "'x'");
    clear_env();
    setenv("PMI_RANK", "0", 1); // rank without a size
    expect_env_error("PMI_RANK is set", "PMI_SIZE is not");
    clear_env();
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1); // size without a rank
    expect_env_error("OMPI_COMM_WORLD_SIZE is set", "OMPI_COMM_WORLD_RANK is not");
}
END_TEST

START_TEST(test_env_rank_range) {
    clear_env();
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    expect_env_error("OMPI_COMM_WORLD_RANK=2", "OMPI_COMM_WORLD_SIZE=2");
    clear_env();
    setenv("SLURM_PROCID", "0", 1);
    setenv("SLURM_NTASKS", "2", 1);
    setenv("SLURM_LOCALID", "3", 1);
    expect_env_error("SLURM_LOCALID=3", "SLURM_NTASKS=2");
}
END_TEST

// ---- slices -----------------------------------------------------------------------------------

START_TEST(test_slices) {
    // worked examples: n 7 over 2 -> [0,4) [4,7); n 1 over 3 -> [0,1) [1,1) [1,1); n 10 over 4
    // -> 3 3 2 2
    ck_assert_uint_eq(comm_slice_begin(7, 0, 2), 0);
    ck_assert_uint_eq(comm_slice_begin(7, 1, 2), 4);
    ck_assert_uint_eq(comm_slice_begin(7, 2, 2), 7);
    for (int r = 1; r <= 3; r++) ck_assert_uint_eq(comm_slice_begin(1, r, 3), 1);
    size_t want10[] = {0, 3, 6, 8, 10};
    for (int r = 0; r <= 4; r++) ck_assert_uint_eq(comm_slice_begin(10, r, 4), want10[r]);
    // every split: contiguous, covering, the first n % world one longer
    for (size_t n = 0; n < 40; n++)
        for (int w = 1; w <= 9; w++) {
            ck_assert_uint_eq(comm_slice_begin(n, 0, w), 0);
            ck_assert_uint_eq(comm_slice_begin(n, w, w), n);
            for (int r = 0; r < w; r++) {
                size_t k = comm_slice_begin(n, r + 1, w) - comm_slice_begin(n, r, w);
                ck_assert_uint_eq(k, n / (size_t)w + ((size_t)r < n % (size_t)w));
            }
        }
    // 2^40 = 2 (mod 7): ranks 0 and 1 own one element more
    ck_assert_uint_eq(comm_slice_begin((size_t)1 << 40, 3, 7), 3 * (((size_t)1 << 40) / 7) + 2);
}
END_TEST

// ---- single and comm_open ---------------------------------------------------------------------

START_TEST(test_single) {
    clear_env();
    char why[512] = "";
    Comm *c = comm_open(backend_cpu(), why, sizeof(why));
    ck_assert_msg(c != NULL, "comm_open: %s", why);
    ck_assert_str_eq(c->name, "single");
    ck_assert_int_eq(c->rank, 0);
    ck_assert_int_eq(c->world, 1);
    float x[7] = {1.5f, -2, 3, 0.25f, 5, 6, 7}, x0[7];
    double d[3] = {1e300, -0.5, 3}, d0[3];
    char bytes[5] = "abcd";
    memcpy(x0, x, sizeof(x));
    memcpy(d0, d, sizeof(d));
    c->all_reduce_sum(c, x, 7);
    c->reduce_scatter_sum(c, x, 7);
    c->all_gather(c, x, 7);
    c->all_reduce_sum_host(c, d, 3);
    c->broadcast_host(c, bytes, 5, 0);
    c->barrier(c);
    ck_assert_mem_eq(x, x0, sizeof(x));
    ck_assert_mem_eq(d, d0, sizeof(d));
    ck_assert_str_eq(bytes, "abcd");
    comm_close(c);
    comm_close(NULL);
}
END_TEST

// A one-process run under a launcher (mpirun -np 1) is single too.
START_TEST(test_single_launched) {
    clear_env();
    setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    char why[512] = "";
    Comm *c = comm_open(backend_cpu(), why, sizeof(why));
    ck_assert_msg(c != NULL, "comm_open: %s", why);
    ck_assert_str_eq(c->name, "single");
    comm_close(c);
}
END_TEST

// comm_open refuses, naming why, without starting anything.
static void expect_open_error(const Backend *be, const char *want) {
    char why[512] = "";
    Comm *c = comm_open(be, why, sizeof(why));
    ck_assert_msg(c == NULL, "comm_open succeeded (%s), want [%s]", c ? c->name : "", want);
    ck_assert_msg(strstr(why, want), "message [%s] lacks [%s]", why, want);
}

START_TEST(test_open_refusals) {
    clear_env();
    setenv("SLURM_PROCID", "7", 1);
    setenv("SLURM_NTASKS", "x8", 1);
    expect_open_error(backend_cpu(), "SLURM_NTASKS='x8'");
    setenv("SLURM_NTASKS", "8", 1);
#ifdef LC_HAVE_MPI
    Backend other = *backend_cpu();
    other.name = "other";
    expect_open_error(&other, "backend 'other' has no collective implementation");
#ifndef LC_HAVE_NCCL
    Backend cuda = *backend_cpu();
    cuda.name = "cuda";
    expect_open_error(&cuda, "built without it");
#endif
#else
    expect_open_error(backend_cpu(), "this binary was built without MPI");
    expect_open_error(backend_cpu(), "docs/distributed.md");
#endif
}
END_TEST

// ---- several processes (mpirun) ---------------------------------------------------------------

static Comm *g_comm; // opened once in main: MPI starts once per process

// Rank r's input element i: varied fractions, some negative, so the order of a sum shows in
// its last bits for more than two ranks.
static float input(int r, size_t i) {
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(r * 40503u + 17u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return ((float)(h & 0xFFFFFF) / (float)0x1000000 - 0.5f) * (float)(1 + r);
}

static float *inputs(int r, size_t n) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = input(r, i);
    return x;
}

// The sum over ranks in rank order, computed here.
static float *rank_sum(size_t n, int world) {
    float *s = calloc(n, sizeof(float));
    for (int r = 0; r < world; r++)
        for (size_t i = 0; i < n; i++) s[i] += input(r, i);
    return s;
}

// got equals want: bit for bit for two ranks (a + b == b + a), else to rounding (another order).
// One assertion for the first mismatch (each Check assertion costs a write to its log).
static void expect_sums(const char *what, const float *got, const float *want, size_t n) {
    float tol = g_comm->world <= 2 ? 0.0f : 1e-5f * (float)g_comm->world;
    size_t i = 0;
    while (i < n && fabsf(got[i] - want[i]) <= tol) i++;
    ck_assert_msg(i == n, "%s (rank %d): element %zu of %zu is %.9g, want %.9g", what, g_comm->rank,
                  i, n, i < n ? got[i] : 0.0f, i < n ? want[i] : 0.0f);
}

// Every rank holds the same bytes as rank 0.
static void expect_same_everywhere(const char *what, const void *x, size_t bytes) {
    void *r0 = malloc(bytes);
    memcpy(r0, x, bytes);
    g_comm->broadcast_host(g_comm, r0, bytes, 0);
    ck_assert_msg(memcmp(r0, x, bytes) == 0, "%s: rank %d's result differs from rank 0's", what,
                  g_comm->rank);
    free(r0);
}

static const size_t SIZES[] = {7, 1, 1000003};

START_TEST(test_mpi_all_reduce) {
    ck_assert_str_eq(g_comm->name, "mpi");
    for (size_t k = 0; k < 3; k++) {
        size_t n = SIZES[k];
        float *x = inputs(g_comm->rank, n), *want = rank_sum(n, g_comm->world);
        g_comm->all_reduce_sum(g_comm, x, n);
        expect_sums("all_reduce_sum", x, want, n);
        expect_same_everywhere("all_reduce_sum", x, n * sizeof(float));
        free(x);
        free(want);
    }
}
END_TEST

START_TEST(test_mpi_all_reduce_host) {
    enum { N = 1001 };
    double x[N], want[N] = {0};
    for (size_t i = 0; i < N; i++) {
        x[i] = (double)input(g_comm->rank, i) * 1e-3 + (double)g_comm->rank;
        for (int r = 0; r < g_comm->world; r++) want[i] += (double)input(r, i) * 1e-3 + (double)r;
    }
    g_comm->all_reduce_sum_host(g_comm, x, N);
    double tol = g_comm->world <= 2 ? 0.0 : 1e-12;
    size_t i = 0;
    while (i < N && fabs(x[i] - want[i]) <= tol) i++;
    ck_assert_msg(i == N, "all_reduce_sum_host: element %zu is %.17g, want %.17g", i,
                  i < N ? x[i] : 0.0, i < N ? want[i] : 0.0);
    expect_same_everywhere("all_reduce_sum_host", x, sizeof(x));
}
END_TEST

START_TEST(test_mpi_scatter_gather) {
    int rank = g_comm->rank, world = g_comm->world;
    for (size_t k = 0; k < 3; k++) {
        size_t n = SIZES[k];
        size_t b = comm_slice_begin(n, rank, world), e = comm_slice_begin(n, rank + 1, world);
        float *x = inputs(rank, n), *want = rank_sum(n, world);
        g_comm->reduce_scatter_sum(g_comm, x, n);
        expect_sums("reduce_scatter_sum (own slice)", x + b, want + b, e - b);
        for (size_t i = 0; i < n; i++) // the other slices: garbage to all_gather
            if (i < b || i >= e) x[i] = NAN;
        g_comm->all_gather(g_comm, x, n);
        expect_sums("reduce_scatter_sum + all_gather", x, want, n);
        expect_same_everywhere("all_gather", x, n * sizeof(float));
        free(x);
        free(want);
    }
}
END_TEST

START_TEST(test_mpi_broadcast) {
    for (int root = 0; root < g_comm->world; root++) {
        unsigned char buf[1000];
        for (size_t i = 0; i < sizeof(buf); i++) buf[i] = (unsigned char)(i * 7 + g_comm->rank);
        g_comm->broadcast_host(g_comm, buf, sizeof(buf), root);
        size_t i = 0;
        while (i < sizeof(buf) && buf[i] == (unsigned char)(i * 7 + root)) i++;
        ck_assert_msg(i == sizeof(buf), "broadcast_host from %d: rank %d byte %zu differs", root,
                      g_comm->rank, i);
    }
    g_comm->broadcast_host(g_comm, NULL, 0, 0); // nothing to send
}
END_TEST

// The barrier returns on every rank (a rank that skipped it would hang the next collective);
// a broadcast after it sees the same world.
START_TEST(test_mpi_barrier) {
    g_comm->barrier(g_comm);
    g_comm->barrier(g_comm);
    int world = g_comm->world;
    g_comm->broadcast_host(g_comm, &world, sizeof(world), 0);
    ck_assert_int_eq(world, g_comm->world);
}
END_TEST

// Same inputs, same bits: each operation twice.
START_TEST(test_mpi_determinism) {
    size_t n = 1000003;
    float *a = inputs(g_comm->rank, n), *b = inputs(g_comm->rank, n);
    g_comm->all_reduce_sum(g_comm, a, n);
    g_comm->all_reduce_sum(g_comm, b, n);
    ck_assert_msg(memcmp(a, b, n * sizeof(float)) == 0, "all_reduce_sum: two calls differ");
    free(a);
    free(b);
    a = inputs(g_comm->rank, n);
    b = inputs(g_comm->rank, n);
    g_comm->reduce_scatter_sum(g_comm, a, n);
    g_comm->all_gather(g_comm, a, n);
    g_comm->reduce_scatter_sum(g_comm, b, n);
    g_comm->all_gather(g_comm, b, n);
    ck_assert_msg(memcmp(a, b, n * sizeof(float)) == 0, "reduce_scatter + all_gather differ");
    free(a);
    free(b);
}
END_TEST

// The operations over several processes, without forking; returns the failures' exit status.
static int run_mpi_suite(void) {
    char why[512] = "";
    g_comm = comm_open(backend_cpu(), why, sizeof(why));
    if (!g_comm) {
        fprintf(stderr, "test_collective: comm_open failed: %s\n", why);
        return 1;
    }
    Suite *s = suite_create("collective_mpi");
    TCase *tc = tcase_create("mpi");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mpi_all_reduce);
    tcase_add_test(tc, test_mpi_all_reduce_host);
    tcase_add_test(tc, test_mpi_scatter_gather);
    tcase_add_test(tc, test_mpi_broadcast);
    tcase_add_test(tc, test_mpi_barrier);
    tcase_add_test(tc, test_mpi_determinism);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    comm_close(g_comm);
    return failed == 0 ? 0 : 1;
}

int main(void) {
    LaunchEnv env;
    char why[512] = "";
    if (launch_env(&env, why, sizeof(why)) != 0) {
        fprintf(stderr, "test_collective: %s\n", why);
        return 1;
    }
    Suite *s = suite_create("collective");
    TCase *tc = tcase_create("local");
    tcase_add_test(tc, test_env_none);
    tcase_add_test(tc, test_env_launchers);
    tcase_add_test(tc, test_env_malformed);
    tcase_add_test(tc, test_env_rank_range);
    tcase_add_test(tc, test_slices);
    tcase_add_test(tc, test_single);
    tcase_add_test(tc, test_single_launched);
    tcase_add_test(tc, test_open_refusals);
    suite_add_tcase(s, tc);
    // forked (the tests edit the environment), before MPI starts
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    int rc = failed == 0 ? 0 : 1;
    if (env.world > 1 && run_mpi_suite() != 0) rc = 1;
    return rc;
}
