// kernels/cuda/collective_nccl.cu: the nccl implementation of the collective layer
// (kernels/collective.h, docs/distributed.md) over the CUDA backend's device buffers. Built
// with the CUDA backend, MPI and NCCL (LC_HAVE_NCCL); also compiled by the host compiler into
// tests/cuda_emu's lc_nccl_emu (tests/cuda_emu/collective_nccl_emu.cc), where the NCCL and CUDA
// runtime calls go to the shims (nccl_shim.cc over MPI, cudart_shim.cc) and the entry points are
// lc_emu_comm_nccl_open/close (docs/cuda-emulation.md).
//   - One GPU per local rank: local rank l uses device l when several GPUs are visible, device 0
//     when one is (the launcher gave each process its own through CUDA_VISIBLE_DEVICES). The
//     backend must already run on that device; cudaSetDevice(it) precedes ncclCommInitRank.
//   - Bootstrap: rank 0's ncclGetUniqueId, broadcast over an mpi communicator (MPI_COMM_WORLD)
//     that this implementation opens first and keeps for its host operations
//     (all_reduce_sum_host, broadcast_host, barrier).
//   - Device operations run on the backend's stream (cuda_context()->stream) and are waited
//     for before returning; while waiting, ncclCommGetAsyncError is polled so that a failed or
//     vanished peer aborts with a message instead of hanging.
//   - Uneven slices: NCCL's reduce-scatter and all-gather take equal counts, so when world does
//     not divide n each slice goes through a scratch buffer of world * ceil(n / world) floats,
//     padded with zeros (allocated at first use, grown, freed at close). When world divides n
//     the operations run in place on x.
//   - Determinism: for one world, message size, topology and NCCL version (and NCCL_ALGO /
//     NCCL_PROTO unchanged) NCCL picks the same algorithm and reduction order on every run.
#include "kernels/cuda/cuda.h"
#include <mpi.h>
#include <nccl.h>
#include <sched.h>
#include <string.h>
extern "C" {
#include "kernels/collective-impl.h"
}

// The helpers live in LC_CUDA_NAMESPACE (kernels/cuda/cuda.h: lc_emu under emulation, where
// cuda_context() is the emulated backend's), so an emulated copy can be linked beside this one.
LC_CUDA_NAMESPACE_BEGIN
namespace {

struct NcclState {
    ncclComm_t nccl;
    Comm *mpi;           // host operations and the bootstrap
    cudaStream_t stream; // the backend's
    float *scratch;      // (scratch_len) device, padded slices of uneven splits
    size_t scratch_len;
};

NcclState *state(Comm *c) {
    return (NcclState *)c->impl;
}

// Dies naming the operation, the NCCL call, this rank, NCCL's error and its last message.
void nccl_die(Comm *c, const char *op, const char *call, ncclResult_t r) {
    ncclComm_t comm = c->impl ? state(c)->nccl : NULL;
    LC_DIE("collective nccl: %s failed on rank %d: %s: %s (%s); if a peer process died, its own "
           "output names the first failure (NCCL_DEBUG=WARN for NCCL's view)",
           op, c->rank, call, ncclGetErrorString(r), comm ? ncclGetLastError(comm) : "");
}

#define LC_NCCL_CHECK(c, op, call)                                                                 \
    do {                                                                                           \
        ncclResult_t lc_nr_ = (call);                                                              \
        if (lc_nr_ != ncclSuccess && lc_nr_ != ncclInProgress) nccl_die(c, op, #call, lc_nr_);     \
    } while (0)

// Waits for the stream, polling NCCL's asynchronous error; aborts the communicator on one.
void nccl_wait(Comm *c, const char *op) {
    NcclState *s = state(c);
    for (;;) {
        cudaError_t e = cudaStreamQuery(s->stream);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady)
            LC_DIE("collective nccl: %s on rank %d: the stream failed: %s (%s)", op, c->rank,
                   cudaGetErrorString(e), cudaGetErrorName(e));
        ncclResult_t async = ncclSuccess;
        LC_NCCL_CHECK(c, op, ncclCommGetAsyncError(s->nccl, &async));
        if (async != ncclSuccess && async != ncclInProgress) {
            ncclCommAbort(s->nccl);
            s->nccl = NULL;
            nccl_die(c, op, "ncclCommGetAsyncError", async);
        }
        sched_yield();
    }
}

// The scratch buffer, at least len floats (grown, never shrunk).
float *scratch(NcclState *s, size_t len) {
    if (s->scratch_len < len) {
        LC_CUDA_CHECK(cudaStreamSynchronize(s->stream));
        LC_CUDA_CHECK(cudaFree(s->scratch));
        LC_CUDA_CHECK(cudaMalloc((void **)&s->scratch, len * sizeof(float)));
        s->scratch_len = len;
    }
    return s->scratch;
}

void nccl_all_reduce_sum(Comm *c, float *x, size_t n) {
    if (n == 0) return;
    NcclState *s = state(c);
    LC_NCCL_CHECK(c, "all_reduce_sum",
                  ncclAllReduce(x, x, n, ncclFloat, ncclSum, s->nccl, s->stream));
    nccl_wait(c, "all_reduce_sum");
}

// Copies rank r's slice between x and its padded place r*m in buf (to_buf: x -> buf), on the
// stream; to_buf also zeroes the padding.
void slice_copy(Comm *c, float *x, float *buf, size_t n, size_t m, int r, bool to_buf) {
    cudaStream_t st = state(c)->stream;
    size_t b = comm_slice_begin_inline(n, r, c->world);
    size_t k = comm_slice_begin_inline(n, r + 1, c->world) - b;
    float *dst = to_buf ? buf + (size_t)r * m : x + b;
    const float *src = to_buf ? x + b : buf + (size_t)r * m;
    if (k)
        LC_CUDA_CHECK(cudaMemcpyAsync(dst, src, k * sizeof(float), cudaMemcpyDeviceToDevice, st));
    if (to_buf && k < m) LC_CUDA_CHECK(cudaMemsetAsync(dst + k, 0, (m - k) * sizeof(float), st));
}

void nccl_reduce_scatter_sum(Comm *c, float *x, size_t n) {
    if (n == 0) return;
    NcclState *s = state(c);
    size_t m = comm_slice_begin_inline(n, 1, c->world); // the longest slice
    if (n % (size_t)c->world == 0) {
        LC_NCCL_CHECK(c, "reduce_scatter_sum",
                      ncclReduceScatter(x, x + (size_t)c->rank * m, m, ncclFloat, ncclSum, s->nccl,
                                        s->stream));
    } else {
        float *buf = scratch(s, m * (size_t)c->world);
        for (int r = 0; r < c->world; r++) slice_copy(c, x, buf, n, m, r, true);
        LC_NCCL_CHECK(c, "reduce_scatter_sum",
                      ncclReduceScatter(buf, buf + (size_t)c->rank * m, m, ncclFloat, ncclSum,
                                        s->nccl, s->stream));
        slice_copy(c, x, buf, n, m, c->rank, false);
    }
    nccl_wait(c, "reduce_scatter_sum");
}

void nccl_all_gather(Comm *c, float *x, size_t n) {
    if (n == 0) return;
    NcclState *s = state(c);
    size_t m = comm_slice_begin_inline(n, 1, c->world);
    if (n % (size_t)c->world == 0) {
        LC_NCCL_CHECK(c, "all_gather",
                      ncclAllGather(x + (size_t)c->rank * m, x, m, ncclFloat, s->nccl, s->stream));
    } else {
        float *buf = scratch(s, m * (size_t)c->world);
        slice_copy(c, x, buf, n, m, c->rank, true);
        LC_NCCL_CHECK(
            c, "all_gather",
            ncclAllGather(buf + (size_t)c->rank * m, buf, m, ncclFloat, s->nccl, s->stream));
        for (int r = 0; r < c->world; r++) slice_copy(c, x, buf, n, m, r, false);
    }
    nccl_wait(c, "all_gather");
}

void nccl_all_reduce_sum_host(Comm *c, double *x, size_t n) {
    state(c)->mpi->all_reduce_sum_host(state(c)->mpi, x, n);
}

void nccl_broadcast_host(Comm *c, void *buf, size_t bytes, int root) {
    state(c)->mpi->broadcast_host(state(c)->mpi, buf, bytes, root);
}

void nccl_barrier(Comm *c) {
    state(c)->mpi->barrier(state(c)->mpi);
}

// The device of local rank `local` (one GPU per local rank); -1 with why filled when there is
// none or the backend runs on another.
int nccl_device(const LaunchEnv *env, char *why, size_t len) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    int dev = count == 1 ? 0 : env->local_rank;
    if (e != cudaSuccess || dev >= count) {
        snprintf(why, len,
                 "collective nccl: local rank %d needs its own GPU but %d are visible%s%s; run one "
                 "process per GPU (docs/distributed.md)",
                 env->local_rank, count, e != cudaSuccess ? ": " : "",
                 e != cudaSuccess ? cudaGetErrorString(e) : "");
        return -1;
    }
    if (cuda_context()->device != dev) {
        snprintf(why, len,
                 "collective nccl: local rank %d should use GPU %d but the CUDA backend runs on "
                 "GPU %d; give each process one GPU (CUDA_VISIBLE_DEVICES, srun --gpus-per-task=1)",
                 env->local_rank, dev, cuda_context()->device);
        return -1;
    }
    return dev;
}

} // namespace
LC_CUDA_NAMESPACE_END
LC_CUDA_USE_NAMESPACE

// On failure after MPI started the mpi communicator stays open: the caller exits, and the
// launcher ends the other processes.
extern "C" Comm *comm_nccl_open(const LaunchEnv *env, char *why, size_t len) {
    int dev = nccl_device(env, why, len);
    if (dev < 0) return NULL;
    Comm *mpi = comm_mpi_open(env, why, len);
    if (!mpi) return NULL;
    LC_CUDA_CHECK(cudaSetDevice(dev));
    ncclUniqueId id;
    memset(&id, 0, sizeof(id));
    ncclResult_t r = env->rank == 0 ? ncclGetUniqueId(&id) : ncclSuccess;
    if (r != ncclSuccess) {
        snprintf(why, len, "collective nccl: ncclGetUniqueId on rank 0: %s", ncclGetErrorString(r));
        return NULL;
    }
    mpi->broadcast_host(mpi, &id, sizeof(id), 0);
    NcclState *s = (NcclState *)lc_calloc(1, sizeof(NcclState));
    s->mpi = mpi;
    s->stream = cuda_context()->stream;
    if ((r = ncclCommInitRank(&s->nccl, env->world, id, env->rank)) != ncclSuccess) {
        snprintf(why, len, "collective nccl: ncclCommInitRank (rank %d of %d, GPU %d): %s",
                 env->rank, env->world, dev, ncclGetErrorString(r));
        free(s);
        return NULL;
    }
    Comm *c = (Comm *)lc_calloc(1, sizeof(Comm));
    c->name = "nccl";
    c->rank = env->rank;
    c->world = env->world;
    c->local_rank = env->local_rank;
    c->all_reduce_sum = nccl_all_reduce_sum;
    c->all_reduce_sum_host = nccl_all_reduce_sum_host;
    c->reduce_scatter_sum = nccl_reduce_scatter_sum;
    c->all_gather = nccl_all_gather;
    c->broadcast_host = nccl_broadcast_host;
    c->barrier = nccl_barrier;
    c->impl = s;
    return c;
}

extern "C" void comm_nccl_close(Comm *c) {
    NcclState *s = state(c);
    nccl_wait(c, "close");
    LC_NCCL_CHECK(c, "close", ncclCommDestroy(s->nccl));
    s->nccl = NULL;
    LC_CUDA_CHECK(cudaFree(s->scratch));
    Comm *mpi = s->mpi;
    free(s);
    free(c);
    comm_mpi_close(mpi);
}
