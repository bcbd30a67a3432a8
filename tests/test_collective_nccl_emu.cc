// tests/test_collective_nccl_emu.cc: the nccl collective implementation
// (kernels/cuda/collective_nccl.cu) on the CPU, under mpirun with several processes (ctest's
// test_collective_nccl_emu: -np 2): its host code runs over the NCCL shim
// (tests/cuda_emu/nccl_shim.cc, MPI on host memory) and the CUDA runtime shim, on the emulated
// CUDA backend's device buffers (docs/cuda-emulation.md). The checks of test_collective.c's mpi
// suite, on device memory:
//   - all_reduce_sum against the rank-ordered sum of known per-rank inputs (n = 7, 1, 1000003),
//     the same bytes on every rank; all_reduce_sum_host over doubles;
//   - reduce_scatter_sum + all_gather round trips over uneven n (7, 1, 1000003: the padded
//     scratch path) and divisible n (in place), the other slices poisoned with NaN in between;
//   - broadcast_host from each root, barrier, and the same bits from a second identical call.
// Then seeded violations the shim must catch, on a communicator of the test's own: a host
// pointer as a device buffer (on every rank, then on rank 0 only: the others return an error
// instead of blocking), unequal counts, overlapping buffers that are not NCCL's in-place layout
// (reduce-scatter and all-gather), an unsupported datatype and op, another stream, an id that is
// not rank 0's, nranks and rank that are not MPI's, a destroyed communicator. Every run ends with
// exactly the seeded violations counted and zero emulator warnings or errors.
//
//     mpirun -np 2 test_collective_nccl_emu    exit 1 on failure, 77 when not launched
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"

#include <mpi.h>
#include <nccl.h>

extern "C" {
#include "kernels/collective-impl.h"
#include "kernels/kernels.h"
}

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

static int g_failures;
static Comm *g_comm;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FAILED (rank %d) %s: ", __FILE__, __LINE__,                    \
                    g_comm ? g_comm->rank : -1, #cond);                                            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            g_failures++;                                                                          \
        }                                                                                          \
    } while (0)

// ---- inputs and expectations (as test_collective.c's) ----------------------------------------

// Rank r's input element i: varied fractions, some negative.
static float input(int r, size_t i) {
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(r * 40503u + 17u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    return ((float)(h & 0xFFFFFF) / (float)0x1000000 - 0.5f) * (float)(1 + r);
}

static std::vector<float> inputs(int r, size_t n) {
    std::vector<float> x(n);
    for (size_t i = 0; i < n; i++) x[i] = input(r, i);
    return x;
}

// The sum over ranks in rank order, computed here.
static std::vector<float> rank_sum(size_t n, int world) {
    std::vector<float> s(n, 0.0f);
    for (int r = 0; r < world; r++)
        for (size_t i = 0; i < n; i++) s[i] += input(r, i);
    return s;
}

// got[b, e) equals want[b, e) bit for bit (the shim sums in rank order).
static void expect_sums(const char *what, size_t n, const std::vector<float> &got,
                        const std::vector<float> &want, size_t b, size_t e) {
    size_t i = b;
    while (i < e && memcmp(&got[i], &want[i], sizeof(float)) == 0) i++;
    CHECK(i == e, "%s (n %zu): element %zu is %.9g, want %.9g", what, n, i, i < e ? got[i] : 0.0f,
          i < e ? want[i] : 0.0f);
}

// Every rank holds the same bytes as rank 0.
static void expect_same_everywhere(const char *what, const void *x, size_t bytes) {
    std::vector<char> r0((const char *)x, (const char *)x + bytes);
    g_comm->broadcast_host(g_comm, r0.data(), bytes, 0);
    CHECK(memcmp(r0.data(), x, bytes) == 0, "%s: this rank's result differs from rank 0's", what);
}

// ---- device buffers ----------------------------------------------------------------------------

static float *to_device(const std::vector<float> &x) {
    float *d = nullptr;
    if (cudaMalloc((void **)&d, x.size() * sizeof(float)) != cudaSuccess) {
        fprintf(stderr, "cudaMalloc of %zu floats failed\n", x.size());
        exit(1);
    }
    cudaMemcpy(d, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice);
    return d;
}

static std::vector<float> to_host(const float *d, size_t n) {
    std::vector<float> x(n);
    cudaMemcpy(x.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return x;
}

// ---- the operations ----------------------------------------------------------------------------

static const size_t UNEVEN[] = {7, 1, 1000003};

static void test_all_reduce() {
    for (size_t n : UNEVEN) {
        float *d = to_device(inputs(g_comm->rank, n));
        g_comm->all_reduce_sum(g_comm, d, n);
        std::vector<float> got = to_host(d, n), want = rank_sum(n, g_comm->world);
        expect_sums("all_reduce_sum", n, got, want, 0, n);
        expect_same_everywhere("all_reduce_sum", got.data(), n * sizeof(float));
        cudaFree(d);
    }
    g_comm->all_reduce_sum(g_comm, nullptr, 0); // nothing to reduce
}

static void test_all_reduce_host() {
    const size_t N = 1001;
    std::vector<double> x(N), want(N, 0.0);
    for (size_t i = 0; i < N; i++) {
        x[i] = (double)input(g_comm->rank, i) * 1e-3 + (double)g_comm->rank;
        for (int r = 0; r < g_comm->world; r++) want[i] += (double)input(r, i) * 1e-3 + (double)r;
    }
    g_comm->all_reduce_sum_host(g_comm, x.data(), N);
    double tol = g_comm->world <= 2 ? 0.0 : 1e-12;
    size_t i = 0;
    while (i < N && fabs(x[i] - want[i]) <= tol) i++;
    CHECK(i == N, "all_reduce_sum_host: element %zu is %.17g, want %.17g", i, i < N ? x[i] : 0.0,
          i < N ? want[i] : 0.0);
    expect_same_everywhere("all_reduce_sum_host", x.data(), N * sizeof(double));
}

// reduce_scatter_sum then all_gather over n, with the other slices poisoned in between.
static void scatter_gather(size_t n) {
    int rank = g_comm->rank, world = g_comm->world;
    size_t b = comm_slice_begin_inline(n, rank, world),
           e = comm_slice_begin_inline(n, rank + 1, world);
    float *d = to_device(inputs(rank, n));
    std::vector<float> want = rank_sum(n, world);
    g_comm->reduce_scatter_sum(g_comm, d, n);
    std::vector<float> got = to_host(d, n);
    expect_sums("reduce_scatter_sum (own slice)", n, got, want, b, e);
    for (size_t i = 0; i < n; i++) // the other slices: garbage to all_gather
        if (i < b || i >= e) got[i] = NAN;
    cudaMemcpy(d, got.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    g_comm->all_gather(g_comm, d, n);
    got = to_host(d, n);
    expect_sums("reduce_scatter_sum + all_gather", n, got, want, 0, n);
    expect_same_everywhere("all_gather", got.data(), n * sizeof(float));
    cudaFree(d);
}

static void test_scatter_gather() {
    for (size_t n : UNEVEN) scatter_gather(n);
    size_t w = (size_t)g_comm->world;
    for (size_t n : {w, 5 * w, 250001 * w}) scatter_gather(n); // divisible: in place on x
}

static void test_broadcast() {
    for (int root = 0; root < g_comm->world; root++) {
        unsigned char buf[1000];
        for (size_t i = 0; i < sizeof(buf); i++) buf[i] = (unsigned char)(i * 7 + g_comm->rank);
        g_comm->broadcast_host(g_comm, buf, sizeof(buf), root);
        size_t i = 0;
        while (i < sizeof(buf) && buf[i] == (unsigned char)(i * 7 + root)) i++;
        CHECK(i == sizeof(buf), "broadcast_host from %d: byte %zu differs", root, i);
    }
    g_comm->broadcast_host(g_comm, nullptr, 0, 0); // nothing to send
}

static void test_barrier() {
    g_comm->barrier(g_comm);
    g_comm->barrier(g_comm);
    int world = g_comm->world;
    g_comm->broadcast_host(g_comm, &world, sizeof(world), 0);
    CHECK(world == g_comm->world, "broadcast world %d after the barriers", world);
}

// Same inputs, same bits: each operation twice.
static void test_determinism() {
    size_t n = 1000003;
    std::vector<float> in = inputs(g_comm->rank, n);
    float *a = to_device(in), *b = to_device(in);
    g_comm->all_reduce_sum(g_comm, a, n);
    g_comm->all_reduce_sum(g_comm, b, n);
    CHECK(to_host(a, n) == to_host(b, n), "all_reduce_sum: two calls differ");
    cudaMemcpy(a, in.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    cudaMemcpy(b, in.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    for (float *x : {a, b}) {
        g_comm->reduce_scatter_sum(g_comm, x, n);
        g_comm->all_gather(g_comm, x, n);
    }
    std::vector<float> ha = to_host(a, n), hb = to_host(b, n);
    CHECK(memcmp(ha.data(), hb.data(), n * sizeof(float)) == 0,
          "reduce_scatter + all_gather: two calls differ");
    cudaFree(a);
    cudaFree(b);
}

// ---- seeded violations -------------------------------------------------------------------------

static long g_expected_shim_errors; // violations the seeded checks committed on purpose

// The call returned an error and the shim counted `want` violations on this rank.
static void expect_caught(const char *what, ncclResult_t r, long before, long want) {
    long caught = lc_emu_shim_errors() - before;
    CHECK(r != ncclSuccess, "%s: the shim accepted it", what);
    CHECK(caught == want, "%s: %ld violations counted on this rank, want %ld", what, caught, want);
    g_expected_shim_errors += caught;
}

static void test_seeded() {
    int rank = g_comm->rank, world = g_comm->world;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (rank == 0) CHECK(ncclGetUniqueId(&id) == ncclSuccess, "ncclGetUniqueId");
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclComm_t nc = nullptr;
    CHECK(ncclCommInitRank(&nc, world, id, rank) == ncclSuccess, "ncclCommInitRank: %s",
          ncclGetLastError(nullptr));
    if (!nc) return;
    const size_t N = 16;
    float *d = to_device(inputs(rank, N * (size_t)world * 2));
    std::vector<float> host(N);
    long before;

    before = lc_emu_shim_errors();
    expect_caught("a host pointer (every rank)",
                  ncclAllReduce(host.data(), host.data(), N, ncclFloat, ncclSum, nc, 0), before, 1);
    before = lc_emu_shim_errors();
    ncclResult_t r = ncclAllReduce(rank == 0 ? host.data() : d, rank == 0 ? host.data() : d, N,
                                   ncclFloat, ncclSum, nc, 0);
    if (rank == 0) {
        expect_caught("a host pointer (rank 0)", r, before, 1);
    } else {
        CHECK(r == ncclRemoteError, "a peer's host pointer: status %d, want ncclRemoteError",
              (int)r);
        CHECK(lc_emu_shim_errors() == before, "a peer's violation counted here");
    }
    before = lc_emu_shim_errors();
    expect_caught("a device range past the allocation",
                  ncclAllReduce(d, d, N * (size_t)world * 2 + 1, ncclFloat, ncclSum, nc, 0), before,
                  1);
    before = lc_emu_shim_errors();
    expect_caught("unequal counts",
                  ncclAllReduce(d, d, N - (size_t)rank, ncclFloat, ncclSum, nc, 0), before, 1);
    before = lc_emu_shim_errors();
    expect_caught(
        "unequal counts (all_gather)",
        ncclAllGather(d + (size_t)rank * (N + (size_t)rank), d, N + (size_t)rank, ncclFloat, nc, 0),
        before, 1);
    before = lc_emu_shim_errors();
    expect_caught("all_gather: overlapping, not in place",
                  ncclAllGather(d + (size_t)((rank + 1) % world) * N, d, N, ncclFloat, nc, 0),
                  before, 1);
    before = lc_emu_shim_errors();
    expect_caught(
        "reduce_scatter: overlapping, not in place",
        ncclReduceScatter(d, d + (size_t)((rank + 1) % world) * N, N, ncclFloat, ncclSum, nc, 0),
        before, 1);
    before = lc_emu_shim_errors();
    expect_caught("datatype double", ncclAllReduce(d, d, N, ncclDouble, ncclSum, nc, 0), before, 1);
    before = lc_emu_shim_errors();
    expect_caught("op max", ncclAllReduce(d, d, N, ncclFloat, ncclMax, nc, 0), before, 1);
    before = lc_emu_shim_errors();
    expect_caught("another stream",
                  ncclReduceScatter(d, d + (size_t)rank * N, N, ncclFloat, ncclSum, nc,
                                    (cudaStream_t)(uintptr_t)0x10),
                  before, 1);

    // the rules obeyed on the same communicator: accepted, no violation
    before = lc_emu_shim_errors();
    CHECK(ncclReduceScatter(d, d + (size_t)rank * N, N, ncclFloat, ncclSum, nc, 0) == ncclSuccess,
          "in-place reduce-scatter refused");
    CHECK(ncclAllGather(d + (size_t)rank * N, d, N, ncclFloat, nc, 0) == ncclSuccess,
          "in-place all-gather refused");
    CHECK(ncclAllReduce(d, d + N * (size_t)world, N, ncclFloat, ncclSum, nc, 0) == ncclSuccess,
          "out-of-place all-reduce refused");
    CHECK(lc_emu_shim_errors() == before, "valid calls counted as violations");

    // ncclCommInitRank's rules
    ncclUniqueId own;
    CHECK(ncclGetUniqueId(&own) == ncclSuccess, "ncclGetUniqueId");
    ncclComm_t bad = nullptr;
    before = lc_emu_shim_errors();
    expect_caught("an id that is not rank 0's", ncclCommInitRank(&bad, world, own, rank), before,
                  rank == 0 ? 0 : 1); // rank 0's own id is rank 0's; the others' differ
    before = lc_emu_shim_errors();
    expect_caught("nranks not MPI's", ncclCommInitRank(&bad, world + 1, id, rank), before, 1);
    before = lc_emu_shim_errors();
    expect_caught("rank not MPI's", ncclCommInitRank(&bad, world, id, (rank + 1) % world), before,
                  1);
    ncclUniqueId forged;
    memset(&forged, 0x5A, sizeof forged);
    before = lc_emu_shim_errors();
    expect_caught("an id ncclGetUniqueId never made", ncclCommInitRank(&bad, world, forged, rank),
                  before, 1);
    CHECK(bad == nullptr, "a refused ncclCommInitRank left a communicator");

    cudaFree(d);
    CHECK(ncclCommDestroy(nc) == ncclSuccess, "ncclCommDestroy");
    before = lc_emu_shim_errors();
    expect_caught("a destroyed communicator", ncclCommDestroy(nc), before, 1);
}

int main() {
    LaunchEnv env;
    char why[1024] = "";
    if (launch_env(&env, why, sizeof why) != 0) {
        fprintf(stderr, "test_collective_nccl_emu: %s\n", why);
        return 1;
    }
    if (env.world < 2) {
        fprintf(stderr, "test_collective_nccl_emu: run under mpirun with several processes\n");
        return 77;
    }
    const Backend *be = lc_emu_backend_cuda(nullptr, why, sizeof why);
    if (!be) {
        fprintf(stderr, "the emulated CUDA backend refused: %s\n", why);
        return 1;
    }
    g_comm = lc_emu_comm_nccl_open(&env, why, sizeof why);
    if (!g_comm) {
        fprintf(stderr, "lc_emu_comm_nccl_open failed: %s\n", why);
        return 1;
    }
    CHECK(strcmp(g_comm->name, "nccl") == 0, "name %s", g_comm->name);
    CHECK(g_comm->rank == env.rank && g_comm->world == env.world, "rank %d of %d", g_comm->rank,
          g_comm->world);
    test_all_reduce();
    test_all_reduce_host();
    test_scatter_gather();
    test_broadcast();
    test_barrier();
    test_determinism();
    CHECK(lc_emu_shim_errors() == 0, "%ld shim rule violations by the implementation",
          lc_emu_shim_errors());
    test_seeded();
    CHECK(lc_emu_shim_errors() == g_expected_shim_errors, "%ld unexpected shim violations",
          lc_emu_shim_errors() - g_expected_shim_errors);
    CHECK(cuemu_warnings() == 0 && cuemu_errors() == 0, "emulator warnings %ld errors %ld",
          cuemu_warnings(), cuemu_errors());
    int rank = g_comm->rank, failures = g_failures;
    printf("rank %d: %ld seeded violations caught, %ld device allocations; %s\n", rank,
           g_expected_shim_errors, lc_emu_allocations(), failures ? "FAILED" : "all passed");
    lc_emu_comm_nccl_close(g_comm); // MPI_Finalize
    return failures ? 1 : 0;
}
