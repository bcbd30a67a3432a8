// kernels/collective.c: the launch environment, slices, the single-process implementation and
// the choice of implementation (kernels/collective.h, docs/distributed.md). The mpi and nccl
// implementations are in collective_mpi.c and cuda/collective_nccl.cu, built when MPI (LC_MPI)
// and NCCL (LC_NCCL) were found.
#include "kernels/collective.h"
#include "common/check.h"
#include "kernels/collective-impl.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t comm_slice_begin(size_t n, int r, int world) {
    LC_ASSERT(world >= 1 && r >= 0 && r <= world);
    return comm_slice_begin_inline(n, r, world);
}

// ---- the launch environment -----------------------------------------------------------------

// One launcher's variables: rank, world size, local rank (NULL: none; local rank 0).
typedef struct {
    const char *launcher, *rank, *world, *local;
} LaunchVars;

static const LaunchVars LAUNCHERS[] = {
    {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
    {"srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    {"pmi", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"}, // MPICH's Hydra sets MPI_LOCALRANKID
};

// *out = the value of variable `name`: a decimal integer in [lo, INT_MAX], nothing else (no
// sign, no blanks). Returns 0, or -1 with why naming the variable and its value.
static int env_int(const char *name, int lo, int *out, char *why, size_t len) {
    const char *s = getenv(name);
    char *end = NULL;
    errno = 0;
    long v = (s && *s >= '0' && *s <= '9') ? strtol(s, &end, 10) : -1;
    if (v < lo || v > INT_MAX || errno || !end || *end) {
        snprintf(why, len,
                 "launch environment: %s='%s' is not an integer >= %d (the launcher sets it; "
                 "unset it to run one process)",
                 name, s ? s : "", lo);
        return -1;
    }
    *out = (int)v;
    return 0;
}

// Fills env from launcher l's variables (at least one of them is set).
static int read_launcher(const LaunchVars *l, LaunchEnv *env, char *why, size_t len) {
    const char *have = getenv(l->rank) ? l->rank : l->world;
    const char *missing = getenv(l->rank) ? l->world : l->rank;
    if (!getenv(missing)) {
        snprintf(why, len, "launch environment: %s is set but %s is not (started by %s?)", have,
                 missing, l->launcher);
        return -1;
    }
    int rank, world, local = 0;
    if (env_int(l->rank, 0, &rank, why, len) || env_int(l->world, 1, &world, why, len)) return -1;
    if (getenv(l->local) && env_int(l->local, 0, &local, why, len)) return -1;
    if (rank >= world || local >= world) {
        snprintf(why, len, "launch environment: %s=%d is not below %s=%d",
                 rank >= world ? l->rank : l->local, rank >= world ? rank : local, l->world, world);
        return -1;
    }
    *env = (LaunchEnv){.rank = rank, .world = world, .local_rank = local, .launcher = l->launcher};
    return 0;
}

int launch_env(LaunchEnv *env, char *why, size_t len) {
    *env = (LaunchEnv){.rank = 0, .world = 1, .local_rank = 0, .launcher = "none"};
    for (size_t i = 0; i < sizeof(LAUNCHERS) / sizeof(LAUNCHERS[0]); i++)
        if (getenv(LAUNCHERS[i].rank) || getenv(LAUNCHERS[i].world))
            return read_launcher(&LAUNCHERS[i], env, why, len);
    return 0;
}

// ---- single: one process; every operation is the identity ------------------------------------

static void single_all_reduce_sum(Comm *c, float *x, size_t n) {}
static void single_all_reduce_sum_host(Comm *c, double *x, size_t n) {}
static void single_reduce_scatter_sum(Comm *c, float *x, size_t n) {}
static void single_all_gather(Comm *c, float *x, size_t n) {}
static void single_broadcast_host(Comm *c, void *buf, size_t bytes, int root) {
    if (root != 0) LC_DIE("collective: broadcast_host from root %d in a world of 1", root);
}
static void single_barrier(Comm *c) {}

static Comm *single_open(const LaunchEnv *env) {
    Comm *c = lc_calloc(1, sizeof(Comm));
    *c = (Comm){.name = "single",
                .rank = 0,
                .world = 1,
                .local_rank = env->local_rank,
                .all_reduce_sum = single_all_reduce_sum,
                .all_reduce_sum_host = single_all_reduce_sum_host,
                .reduce_scatter_sum = single_reduce_scatter_sum,
                .all_gather = single_all_gather,
                .broadcast_host = single_broadcast_host,
                .barrier = single_barrier};
    return c;
}

// ---- selection --------------------------------------------------------------------------------

// The implementation for several processes on backend `be` (mpi for cpu, nccl for cuda).
static Comm *multi_open(const Backend *be, const LaunchEnv *env, char *why, size_t len) {
#ifndef LC_HAVE_MPI
    snprintf(why, len,
             "%s started %d processes (this is rank %d) but this binary was built without MPI; "
             "install libopenmpi-dev and rebuild (cmake -DLC_MPI=ON), see docs/distributed.md",
             env->launcher, env->world, env->rank);
    return NULL;
#else
    if (strcmp(be->name, "cpu") == 0) return comm_mpi_open(env, why, len);
    if (strcmp(be->name, "cuda") == 0) {
#ifdef LC_HAVE_NCCL
        return comm_nccl_open(env, why, len);
#else
        snprintf(why, len,
                 "backend 'cuda' with %d processes needs NCCL, and this binary was built without "
                 "it; install NCCL (nccl.h, libnccl) and rebuild (cmake -DLC_NCCL=ON), see "
                 "docs/distributed.md",
                 env->world);
        return NULL;
#endif
    }
    snprintf(why, len, "backend '%s' has no collective implementation for %d processes", be->name,
             env->world);
    return NULL;
#endif
}

Comm *comm_open(const Backend *be, char *why, size_t len) {
    LaunchEnv env;
    if (launch_env(&env, why, len) != 0) return NULL;
    if (env.world == 1) return single_open(&env);
    return multi_open(be, &env, why, len);
}

void comm_close(Comm *c) {
    if (!c) return;
#ifdef LC_HAVE_NCCL
    if (strcmp(c->name, "nccl") == 0) {
        comm_nccl_close(c);
        return;
    }
#endif
#ifdef LC_HAVE_MPI
    if (strcmp(c->name, "mpi") == 0) {
        comm_mpi_close(c);
        return;
    }
#endif
    LC_ASSERT(strcmp(c->name, "single") == 0);
    free(c);
}
