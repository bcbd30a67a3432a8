// kernels/collective-impl.h: internal to the collective layer (kernels/collective.c,
// collective_mpi.c, cuda/collective_nccl.cu): the implementations' entry points, which
// collective.c calls to open them, and the slice arithmetic as an inline function. The
// implementations include this header (which brings kernels/collective.h's types), not
// collective.h itself, and call nothing in collective.c, so the dependency runs one way
// (tests/check_architecture.py: collective.c -> collective_mpi.c).
#pragma once
#include "kernels/collective.h"
#include <stddef.h>

// The first element of rank r's slice of n over world ranks (r may be world: returns n). The
// first n % world ranks own n / world + 1 elements, the others n / world.
static inline size_t comm_slice_begin_inline(size_t n, int r, int world) {
    size_t q = n / (size_t)world, rem = n % (size_t)world, ur = (size_t)r;
    return ur * q + (ur < rem ? ur : rem);
}

#ifdef __cplusplus
extern "C" {
#endif
#ifdef LC_HAVE_MPI
// The mpi implementation (collective_mpi.c) for env's rank and world: MPI_Init_thread once,
// MPI_COMM_WORLD. NULL with why filled when MPI cannot start or its world is not env's.
Comm *comm_mpi_open(const LaunchEnv *env, char *why, size_t len);
// Frees c and calls MPI_Finalize.
void comm_mpi_close(Comm *c);
#endif
#ifdef LC_HAVE_NCCL
// The nccl implementation (cuda/collective_nccl.cu) over the CUDA backend's device buffers; its
// host operations go through an mpi communicator it opens first. NULL with why filled on failure.
Comm *comm_nccl_open(const LaunchEnv *env, char *why, size_t len);
void comm_nccl_close(Comm *c);
#endif
#ifdef __cplusplus
}
#endif
