// kernels/collective.h: the collective layer, the few operations data parallelism needs over the
// processes of a run, with three implementations behind one struct of function pointers:
//   single  one process: every operation is the identity (or a no-op);
//   mpi     OpenMPI over host buffers (the CPU backend's memory);
//   nccl    NCCL over the CUDA backend's device buffers, its unique id broadcast through MPI.
// The launcher (mpirun, srun) sets the environment launch_env reads; a process started alone is
// the single implementation and behaves exactly as before this layer existed.
//
// Slices: the in-place reduce-scatter and all-gather split an array of n elements into world
// contiguous slices, rank r owning [comm_slice_begin(n, r, world), comm_slice_begin(n, r+1,
// world)): the first n % world ranks own one element more. This is how ZeRO-1 shards the
// optimiser state (optim/).
//
// Determinism: for a given world size and message size every reduction sums in the same order on
// every run (same inputs, same bits). Results may differ from a single process's sums in the last
// bits (another order).
#pragma once
#include "kernels/kernels.h"
#include <stddef.h>

// Where this process sits among the run's processes, as the launcher's environment says.
typedef struct {
    int rank;             // 0 .. world-1
    int world;            // number of processes (1 when not launched by mpirun or srun)
    int local_rank;       // rank among the processes of this node (picks the GPU)
    const char *launcher; // "none", "mpirun" (OMPI_COMM_WORLD_*), "srun" (SLURM_*), "pmi"
} LaunchEnv;

// Reads OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK}, else SLURM_{PROCID,NTASKS,LOCALID}, else
// PMI_{RANK,SIZE}; none of them: rank 0 of 1. Returns 0, or -1 with why filled when a variable is
// malformed (not a number, rank >= world).
int launch_env(LaunchEnv *env, char *why, size_t len);

typedef struct Comm Comm;
struct Comm {
    const char *name; // "single", "mpi", "nccl"
    int rank, world, local_rank;

    // x (n) on every rank becomes the sum over ranks of x. Memory of the backend the
    // communicator was opened for (host for mpi, device for nccl).
    void (*all_reduce_sum)(Comm *c, float *x, size_t n);
    // The same over host doubles (statistics: token counts, reward sums); every implementation.
    void (*all_reduce_sum_host)(Comm *c, double *x, size_t n);
    // In place: afterwards rank r's slice of x (n) holds the sum over ranks of that slice; the
    // rest of x is unspecified.
    void (*reduce_scatter_sum)(Comm *c, float *x, size_t n);
    // In place: afterwards all of x (n) on every rank holds, slice by slice, each owner's slice.
    void (*all_gather)(Comm *c, float *x, size_t n);
    // bytes at buf (host memory) copied from root to every rank.
    void (*broadcast_host)(Comm *c, void *buf, size_t bytes, int root);
    void (*barrier)(Comm *c);
    void *impl; // the implementation's state
};

// The first element of rank r's slice of n elements split over world ranks.
size_t comm_slice_begin(size_t n, int r, int world);

// Opens the communicator for this process's launch environment and backend: single when world
// is 1; else mpi for the CPU backend, nccl for the CUDA backend (when built with NCCL). NULL with
// why filled when the environment asks for several processes and this binary cannot join them
// (built without MPI, MPI_Init failed) or the backend has no collective implementation here.
Comm *comm_open(const Backend *be, char *why, size_t len);
void comm_close(Comm *c);
