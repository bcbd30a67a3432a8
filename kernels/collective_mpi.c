// kernels/collective_mpi.c: the mpi implementation of the collective layer (kernels/collective.h)
// over host buffers, on MPI_COMM_WORLD. Built only when CMake found MPI (LC_HAVE_MPI).
//   - MPI_Init_thread(MPI_THREAD_FUNNELED) at the first open: only the thread that opened the
//     communicator calls MPI (OpenMP workers never do). MPI_Finalize when the last one closes;
//     MPI cannot start again in the same process afterwards.
//   - Errors return (MPI_ERRORS_RETURN) and die here naming the operation, the rank and MPI's
//     error string, instead of MPI's own abort.
//   - Reductions are MPI_Allreduce, MPI_Reduce_scatter and MPI_Allgatherv with MPI_SUM: for one
//     world size and message size Open MPI picks the same algorithm, hence the same order of
//     additions, on every run.
//   - A watchdog: an operation that has not completed after LC_COLLECTIVE_TIMEOUT seconds
//     (default 1800; 0 = never) means a peer died without the launcher noticing, or hangs. The
//     process then prints which operation on which rank and exits with status 3, and the
//     launcher ends the others: never a silent hang. (alarm(2): SIGALRM is this file's.)
#include "common/check.h"
#include "kernels/collective-impl.h"
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int *counts, *displs; // (world) each rank's slice: length and first element (uneven splits)
} MpiState;

static int g_open; // mpi communicators open in this process (MPI_Finalize when it drops to 0)

// ---- the watchdog ---------------------------------------------------------------------------

static unsigned g_timeout = 1800; // seconds an operation may take; 0: no watchdog
static char g_watch_msg[512];     // what the handler prints, composed before the operation
static int g_watch_len;

// SIGALRM during an operation: only async-signal-safe calls here.
static void watchdog_fired(int sig) {
    (void)sig;
    if (write(STDERR_FILENO, g_watch_msg, (size_t)g_watch_len) < 0) _exit(3);
    _exit(3);
}

static void watchdog_init(void) {
    const char *v = getenv("LC_COLLECTIVE_TIMEOUT");
    if (v && *v) {
        char *end = NULL;
        long t = strtol(v, &end, 10);
        if (*end || t < 0 || t > 86400 * 7)
            LC_DIE("LC_COLLECTIVE_TIMEOUT='%s': expected seconds, 0 to 604800 (0: no timeout)", v);
        g_timeout = (unsigned)t;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_fired;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
}

static void watch_begin(const Comm *c, const char *op) {
    if (!g_timeout) return;
    g_watch_len =
        snprintf(g_watch_msg, sizeof(g_watch_msg),
                 "\nlayercake: rank %d of %d: collective %s did not complete within %u s: "
                 "another process died or hangs (its own output names the first "
                 "failure; LC_COLLECTIVE_TIMEOUT sets the limit)\n",
                 c->rank, c->world, op, g_timeout);
    if (g_watch_len >= (int)sizeof(g_watch_msg)) g_watch_len = (int)sizeof(g_watch_msg) - 1;
    alarm(g_timeout);
}

static void watch_end(void) {
    if (g_timeout) alarm(0);
}

// Dies naming the operation, the MPI call, this rank and MPI's message for error code rc.
static void mpi_die(const char *op, const char *call, int rc, int rank) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    LC_DIE("collective mpi: %s failed on rank %d: %s: %s (MPI error %d); if a peer process died, "
           "its own output names the first failure",
           op, rank, call, msg, rc);
}

// Runs an MPI call under the watchdog and dies on its error.
#define LC_MPI_CHECK(c, op, call)                                                                  \
    do {                                                                                           \
        watch_begin(c, op);                                                                        \
        int lc_mrc_ = (call);                                                                      \
        watch_end();                                                                               \
        if (lc_mrc_ != MPI_SUCCESS) mpi_die(op, #call, lc_mrc_, (c)->rank);                        \
    } while (0)

// Elements per MPI call of the chunked operations (MPI counts are int).
#define MPI_CHUNK ((size_t)1 << 30)

static void mpi_all_reduce_sum(Comm *c, float *x, size_t n) {
    for (size_t i = 0; i < n; i += MPI_CHUNK) {
        int k = (int)(n - i < MPI_CHUNK ? n - i : MPI_CHUNK);
        LC_MPI_CHECK(c, "all_reduce_sum",
                     MPI_Allreduce(MPI_IN_PLACE, x + i, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
}

static void mpi_all_reduce_sum_host(Comm *c, double *x, size_t n) {
    for (size_t i = 0; i < n; i += MPI_CHUNK) {
        int k = (int)(n - i < MPI_CHUNK ? n - i : MPI_CHUNK);
        LC_MPI_CHECK(c, "all_reduce_sum_host",
                     MPI_Allreduce(MPI_IN_PLACE, x + i, k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    }
}

// Fills the state's counts and displs for n elements; dies when n does not fit MPI's int.
static MpiState *slices(Comm *c, size_t n, const char *op) {
    if (n > (size_t)INT_MAX)
        LC_DIE("collective mpi: %s of %zu elements: more than INT_MAX, which MPI's int counts "
               "and displacements cannot address; shard the array into smaller buffers",
               op, n);
    MpiState *s = c->impl;
    for (int r = 0; r < c->world; r++) {
        s->displs[r] = (int)comm_slice_begin_inline(n, r, c->world);
        s->counts[r] = (int)comm_slice_begin_inline(n, r + 1, c->world) - s->displs[r];
    }
    return s;
}

// In place, MPI_Reduce_scatter leaves rank r's summed slice at the start of x: moved to its
// place afterwards.
static void mpi_reduce_scatter_sum(Comm *c, float *x, size_t n) {
    MpiState *s = slices(c, n, "reduce_scatter_sum");
    LC_MPI_CHECK(
        c, "reduce_scatter_sum",
        MPI_Reduce_scatter(MPI_IN_PLACE, x, s->counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    memmove(x + s->displs[c->rank], x, (size_t)s->counts[c->rank] * sizeof(float));
}

static void mpi_all_gather(Comm *c, float *x, size_t n) {
    MpiState *s = slices(c, n, "all_gather");
    LC_MPI_CHECK(c, "all_gather",
                 MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, s->counts, s->displs,
                                MPI_FLOAT, MPI_COMM_WORLD));
}

static void mpi_broadcast_host(Comm *c, void *buf, size_t bytes, int root) {
    if (root < 0 || root >= c->world)
        LC_DIE("collective mpi: broadcast_host from root %d in a world of %d", root, c->world);
    for (size_t i = 0; i < bytes; i += MPI_CHUNK) {
        int k = (int)(bytes - i < MPI_CHUNK ? bytes - i : MPI_CHUNK);
        LC_MPI_CHECK(c, "broadcast_host",
                     MPI_Bcast((char *)buf + i, k, MPI_BYTE, root, MPI_COMM_WORLD));
    }
}

static void mpi_barrier(Comm *c) {
    LC_MPI_CHECK(c, "barrier", MPI_Barrier(MPI_COMM_WORLD));
}

// Starts MPI unless it runs already. Returns 0, or -1 with why filled.
static int mpi_start(char *why, size_t len) {
    int inited = 0, finalized = 0, provided = 0;
    MPI_Finalized(&finalized);
    if (finalized) {
        snprintf(why, len,
                 "collective mpi: MPI was finalized by an earlier comm_close and "
                 "cannot start again; open the communicator once per process");
        return -1;
    }
    MPI_Initialized(&inited);
    if (inited) return 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS || provided < MPI_THREAD_FUNNELED) {
        char msg[MPI_MAX_ERROR_STRING] = "";
        int l = 0;
        if (rc != MPI_SUCCESS) MPI_Error_string(rc, msg, &l);
        snprintf(why, len, "collective mpi: MPI_Init_thread failed: %s",
                 rc != MPI_SUCCESS ? msg : "MPI_THREAD_FUNNELED is not supported");
        return -1;
    }
    return 0;
}

// The world MPI sees must be the one the launcher announced (a binary started by one launcher
// but linked against another MPI sees a world of 1 per process).
static int mpi_check_world(const LaunchEnv *env, int rank, int world, char *why, size_t len) {
    if (world == env->world && rank == env->rank) return 0;
    snprintf(why, len,
             "collective mpi: %s announced rank %d of %d but MPI_COMM_WORLD says rank %d of %d; "
             "launch with the mpirun of the MPI this binary was built against "
             "(docs/distributed.md)",
             env->launcher, env->rank, env->world, rank, world);
    return -1;
}

Comm *comm_mpi_open(const LaunchEnv *env, char *why, size_t len) {
    if (mpi_start(why, len) != 0) return NULL;
    int rank = -1, world = 0;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (mpi_check_world(env, rank, world, why, len) != 0) {
        if (g_open == 0) MPI_Finalize();
        return NULL;
    }
    watchdog_init();
    MpiState *s = lc_calloc(1, sizeof(MpiState));
    s->counts = lc_calloc((size_t)world, sizeof(int));
    s->displs = lc_calloc((size_t)world, sizeof(int));
    Comm *c = lc_calloc(1, sizeof(Comm));
    *c = (Comm){.name = "mpi",
                .rank = rank,
                .world = world,
                .local_rank = env->local_rank,
                .all_reduce_sum = mpi_all_reduce_sum,
                .all_reduce_sum_host = mpi_all_reduce_sum_host,
                .reduce_scatter_sum = mpi_reduce_scatter_sum,
                .all_gather = mpi_all_gather,
                .broadcast_host = mpi_broadcast_host,
                .barrier = mpi_barrier,
                .impl = s};
    g_open++;
    return c;
}

void comm_mpi_close(Comm *c) {
    MpiState *s = c->impl;
    free(s->counts);
    free(s->displs);
    free(s);
    free(c);
    if (--g_open == 0) MPI_Finalize();
}
