// tests/cuda_emu/nccl_shim.cc: the NCCL calls of the nccl collective implementation
// (kernels/cuda/collective_nccl.cu) over MPI on host memory, for tests on machines without a GPU
// (docs/cuda-emulation.md); tests/cuda_emu/cuda_shims.h renames them to lc_emu_ names. Emulated
// device memory is host memory (cudart_shim.cc) and the emulated stream has always finished, so
// each collective runs to completion inside the call, over the MPI_COMM_WORLD of the processes
// mpirun started (one communicator rank per MPI rank).
//
// Each call checks the rules of NCCL that the implementation relies on, and counts a violation
// like the other shims (lc_emu_shim_errors, printed with the call's name), returning an error
// status instead of computing:
//   - buffers lie inside live emulated device allocations (lc_emu_is_device) for their whole
//     length; a host pointer is an error;
//   - the counts are equal on every rank (an MPI allreduce of their minimum and maximum);
//   - in place is NCCL's layout or no overlap at all: AllReduce sendbuff == recvbuff;
//     ReduceScatter recvbuff == sendbuff + rank * recvcount; AllGather sendbuff == recvbuff +
//     rank * sendcount;
//   - the datatype is ncclFloat and the op ncclSum (all the implementation uses);
//   - the stream is the CUDA backend's (cuda_context()->stream);
//   - the communicator is live (made by ncclCommInitRank, not destroyed);
//   - ncclCommInitRank: nranks and rank are MPI's world size and rank, and the unique id is the
//     one rank 0 made with ncclGetUniqueId (each id carries a random nonce; rank 0's is broadcast
//     and every rank compares its own with it).
// Every collective first agrees over MPI on whether all ranks' arguments passed, so a violation
// on one rank makes every rank return an error (the others with ncclRemoteError, uncounted)
// rather than leaving them blocked in MPI.
// Sums run in rank order (rank 0's value first), the same on every rank and every run.
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"

#include "kernels/cuda/cuda.h"

#include <mpi.h>
#include <nccl.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <vector>

LC_CUDA_USE_NAMESPACE // cuda_context(): the emulated backend's, in namespace lc_emu

    struct ncclComm {
    MPI_Comm mpi; // a duplicate of MPI_COMM_WORLD
    int rank, nranks;
};

namespace {

// The bytes of an emulated unique id (inside ncclUniqueId's 128).
struct IdBody {
    char magic[16];
    uint64_t nonce;
    int creator; // the MPI world rank that made it
};
const char ID_MAGIC[16] = "lc_emu nccl id";
static_assert(sizeof(IdBody) <= NCCL_UNIQUE_ID_BYTES, "the id body fits ncclUniqueId");

std::set<ncclComm *> &g_comms = *new std::set<ncclComm *>; // live communicators
std::set<uint64_t> &g_nonces = *new std::set<uint64_t>;    // ids this process made
char g_last[512];                                          // ncclGetLastError's message

// Counts and prints a violation, keeping its text for ncclGetLastError.
#define VIOLATION(call, ...)                                                                       \
    do {                                                                                           \
        snprintf(g_last, sizeof g_last, __VA_ARGS__);                                              \
        lc_emu_shim_error(call, "%s", g_last);                                                     \
    } while (0)

bool mpi_ready(const char *call) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) return true;
    VIOLATION(call, "MPI is not running (the emulation bootstraps and communicates through MPI; "
                    "the implementation opens its mpi communicator first)");
    return false;
}

bool live(const char *call, ncclComm_t comm) {
    if (comm && g_comms.count(comm)) return true;
    VIOLATION(call, "communicator %p is not live (never made by ncclCommInitRank, or destroyed)",
              (void *)comm);
    return false;
}

// The rules every data call shares: datatype, op, stream.
bool common_args(const char *call, ncclDataType_t type, ncclRedOp_t op, bool has_op,
                 cudaStream_t stream) {
    bool ok = true;
    if (type != ncclFloat) {
        VIOLATION(call, "datatype %d: the emulation (like the implementation) uses ncclFloat only",
                  (int)type);
        ok = false;
    }
    if (has_op && op != ncclSum) {
        VIOLATION(call, "op %d: the emulation (like the implementation) uses ncclSum only",
                  (int)op);
        ok = false;
    }
    if (stream != cuda_context()->stream) {
        VIOLATION(call, "stream %p is not the CUDA backend's (%p)", (void *)stream,
                  (void *)cuda_context()->stream);
        ok = false;
    }
    return ok;
}

bool device_buffer(const char *call, const char *which, const void *p, size_t count) {
    if (lc_emu_is_device(p, count * sizeof(float))) return true;
    VIOLATION(call, "%s %p (%zu floats) is not inside a device allocation", which, p, count);
    return false;
}

bool overlap(const void *a, size_t abytes, const void *b, size_t bbytes) {
    const char *x = (const char *)a, *y = (const char *)b;
    return x < y + bbytes && y < x + abytes;
}

// Agrees over the communicator: the counts are equal on every rank (counted here on every rank
// when not) and every rank's own checks passed. ncclSuccess when all is well.
ncclResult_t agree(const char *call, ncclComm_t comm, bool ok, size_t count) {
    long long mine[3] = {ok ? 0 : 1, (long long)count, -(long long)count}, all[3];
    MPI_Allreduce(mine, all, 3, MPI_LONG_LONG, MPI_MAX, comm->mpi);
    if (all[1] != -all[2]) {
        VIOLATION(call, "count %zu on rank %d, but the ranks' counts range from %lld to %lld",
                  count, comm->rank, -all[2], all[1]);
        return ncclInvalidArgument;
    }
    if (!ok) return ncclInvalidArgument;
    if (all[0]) {
        snprintf(g_last, sizeof g_last, "%s: another rank's arguments broke NCCL's rules", call);
        return ncclRemoteError;
    }
    if (count > (size_t)INT_MAX) { // not NCCL's limit: MPI's int counts under the emulation
        snprintf(g_last, sizeof g_last, "%s: count %zu exceeds the emulation's INT_MAX", call,
                 count);
        return ncclInternalError;
    }
    return ncclSuccess;
}

// out[i] = the sum over ranks r of in[r * count + i], in rank order.
void rank_sum(const std::vector<float> &in, int nranks, size_t count, float *out) {
    for (size_t i = 0; i < count; i++) {
        float s = 0.0f;
        for (int r = 0; r < nranks; r++) s += in[(size_t)r * count + i];
        out[i] = s;
    }
}

} // namespace

extern "C" {

const char *lc_emu_ncclGetErrorString(ncclResult_t r) {
    switch (r) {
    case ncclSuccess:
        return "no error";
    case ncclUnhandledCudaError:
        return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError:
        return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError:
        return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument:
        return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage:
        return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError:
        return "remote process exited or there was a network error";
    case ncclInProgress:
        return "NCCL operation in progress";
    default:
        return "unknown result code";
    }
}

const char *lc_emu_ncclGetLastError(ncclComm_t) {
    return g_last;
}

ncclResult_t lc_emu_ncclGetUniqueId(ncclUniqueId *id) {
    const char *call = "ncclGetUniqueId";
    if (!id) {
        VIOLATION(call, "uniqueId is NULL");
        return ncclInvalidArgument;
    }
    if (!mpi_ready(call)) return ncclInvalidUsage;
    IdBody b;
    memcpy(b.magic, ID_MAGIC, sizeof b.magic);
    std::random_device rd;
    b.nonce = ((uint64_t)rd() << 32) ^ rd();
    MPI_Comm_rank(MPI_COMM_WORLD, &b.creator);
    memset(id, 0, sizeof *id);
    memcpy(id->internal, &b, sizeof b);
    g_nonces.insert(b.nonce);
    return ncclSuccess;
}

ncclResult_t lc_emu_ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    const char *call = "ncclCommInitRank";
    if (!comm) {
        VIOLATION(call, "comm is NULL");
        return ncclInvalidArgument;
    }
    *comm = nullptr;
    if (!mpi_ready(call)) return ncclInvalidUsage;
    int world = 0, me = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    bool ok = true;
    if (nranks != world || rank != me) {
        VIOLATION(call, "rank %d of %d, but this is MPI rank %d of %d (the launcher's)", rank,
                  nranks, me, world);
        ok = false;
    }
    IdBody b;
    memcpy(&b, id.internal, sizeof b);
    if (memcmp(b.magic, ID_MAGIC, sizeof b.magic) != 0) {
        VIOLATION(call, "the unique id was not made by ncclGetUniqueId");
        ok = false;
    } else if (me == 0 && (b.creator != 0 || !g_nonces.count(b.nonce))) {
        VIOLATION(call, "rank 0's unique id is not one rank 0 made (made by rank %d)", b.creator);
        ok = false;
    }
    ncclUniqueId root = id; // rank 0's, compared with every rank's own
    MPI_Bcast(root.internal, NCCL_UNIQUE_ID_BYTES, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (memcmp(root.internal, id.internal, NCCL_UNIQUE_ID_BYTES) != 0) {
        VIOLATION(call, "rank %d's unique id differs from rank 0's (broadcast it from rank 0)", me);
        ok = false;
    }
    int bad = ok ? 0 : 1, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (!ok) return ncclInvalidArgument;
    if (any) {
        snprintf(g_last, sizeof g_last, "%s: another rank's arguments broke NCCL's rules", call);
        return ncclRemoteError;
    }
    ncclComm *c = new ncclComm;
    MPI_Comm_dup(MPI_COMM_WORLD, &c->mpi);
    c->rank = rank;
    c->nranks = nranks;
    g_comms.insert(c);
    *comm = c;
    return ncclSuccess;
}

ncclResult_t lc_emu_ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
    if (!live("ncclCommGetAsyncError", comm)) return ncclInvalidArgument;
    if (!asyncError) {
        VIOLATION("ncclCommGetAsyncError", "asyncError is NULL");
        return ncclInvalidArgument;
    }
    *asyncError = ncclSuccess; // every operation has completed inside its call
    return ncclSuccess;
}

static ncclResult_t comm_free(const char *call, ncclComm_t comm) {
    if (!live(call, comm)) return ncclInvalidArgument;
    if (mpi_ready(call)) MPI_Comm_free(&comm->mpi);
    g_comms.erase(comm);
    delete comm;
    return ncclSuccess;
}

ncclResult_t lc_emu_ncclCommDestroy(ncclComm_t comm) {
    return comm_free("ncclCommDestroy", comm);
}

ncclResult_t lc_emu_ncclCommAbort(ncclComm_t comm) {
    return comm ? comm_free("ncclCommAbort", comm) : ncclSuccess;
}

ncclResult_t lc_emu_ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                  ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                  cudaStream_t stream) {
    const char *call = "ncclAllReduce";
    if (!live(call, comm)) return ncclInvalidArgument;
    bool ok = common_args(call, datatype, op, true, stream);
    size_t bytes = count * sizeof(float);
    if (ok && count) {
        ok = device_buffer(call, "sendbuff", sendbuff, count);
        if (recvbuff != sendbuff) {
            ok = device_buffer(call, "recvbuff", recvbuff, count) && ok;
            if (ok && overlap(sendbuff, bytes, recvbuff, bytes)) {
                VIOLATION(call, "sendbuff %p and recvbuff %p overlap but are not equal (in place)",
                          sendbuff, recvbuff);
                ok = false;
            }
        }
    }
    ncclResult_t r = agree(call, comm, ok, count);
    if (r != ncclSuccess || count == 0) return r;
    std::vector<float> all((size_t)comm->nranks * count);
    MPI_Allgather(sendbuff, (int)count, MPI_FLOAT, all.data(), (int)count, MPI_FLOAT, comm->mpi);
    rank_sum(all, comm->nranks, count, (float *)recvbuff);
    return ncclSuccess;
}

ncclResult_t lc_emu_ncclReduceScatter(const void *sendbuff, void *recvbuff, size_t recvcount,
                                      ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                      cudaStream_t stream) {
    const char *call = "ncclReduceScatter";
    if (!live(call, comm)) return ncclInvalidArgument;
    bool ok = common_args(call, datatype, op, true, stream);
    size_t sendcount = recvcount * (size_t)comm->nranks;
    if (ok && recvcount) {
        ok = device_buffer(call, "sendbuff", sendbuff, sendcount);
        ok = device_buffer(call, "recvbuff", recvbuff, recvcount) && ok;
        const float *in_place = (const float *)sendbuff + (size_t)comm->rank * recvcount;
        if (ok && recvbuff != in_place &&
            overlap(sendbuff, sendcount * sizeof(float), recvbuff, recvcount * sizeof(float))) {
            VIOLATION(call,
                      "recvbuff %p overlaps sendbuff %p but is not sendbuff + rank (%d) * "
                      "recvcount (%zu), NCCL's in-place layout",
                      recvbuff, sendbuff, comm->rank, recvcount);
            ok = false;
        }
    }
    ncclResult_t r = agree(call, comm, ok, recvcount);
    if (r != ncclSuccess || recvcount == 0) return r;
    // rank r receives block r of every rank's sendbuff, in rank order
    std::vector<float> blocks(sendcount);
    MPI_Alltoall(sendbuff, (int)recvcount, MPI_FLOAT, blocks.data(), (int)recvcount, MPI_FLOAT,
                 comm->mpi);
    rank_sum(blocks, comm->nranks, recvcount, (float *)recvbuff);
    return ncclSuccess;
}

ncclResult_t lc_emu_ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount,
                                  ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
    const char *call = "ncclAllGather";
    if (!live(call, comm)) return ncclInvalidArgument;
    bool ok = common_args(call, datatype, ncclSum, false, stream);
    size_t recvcount = sendcount * (size_t)comm->nranks;
    if (ok && sendcount) {
        ok = device_buffer(call, "sendbuff", sendbuff, sendcount);
        ok = device_buffer(call, "recvbuff", recvbuff, recvcount) && ok;
        const float *in_place = (const float *)recvbuff + (size_t)comm->rank * sendcount;
        if (ok && sendbuff != in_place &&
            overlap(sendbuff, sendcount * sizeof(float), recvbuff, recvcount * sizeof(float))) {
            VIOLATION(call,
                      "sendbuff %p overlaps recvbuff %p but is not recvbuff + rank (%d) * "
                      "sendcount (%zu), NCCL's in-place layout",
                      sendbuff, recvbuff, comm->rank, sendcount);
            ok = false;
        }
    }
    ncclResult_t r = agree(call, comm, ok, sendcount);
    if (r != ncclSuccess || sendcount == 0) return r;
    std::vector<float> all(recvcount);
    MPI_Allgather(sendbuff, (int)sendcount, MPI_FLOAT, all.data(), (int)sendcount, MPI_FLOAT,
                  comm->mpi);
    memcpy(recvbuff, all.data(), recvcount * sizeof(float));
    return ncclSuccess;
}

} // extern "C"
