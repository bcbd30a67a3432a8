// tests/cuda_emu/cuemu.cc: the fibers, the warp scheduler and the checks behind cuemu.h (the
// model is described there and in docs/cuda-emulation.md).
#include "tests/cuda_emu/cuemu.h"

#include <csetjmp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <memory>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

// The bounds of the shared-memory section (the linker defines them for a section whose name is
// a C identifier); the anchor makes sure the section exists even with no __shared__ variable.
extern "C" char __start_lc_cuemu_smem[], __stop_lc_cuemu_smem[];
__attribute__((section("lc_cuemu_smem"), used)) static unsigned char cuemu_smem_anchor[16];

namespace cuemu {

uint3 g_threadIdx;
uint3 g_blockIdx;
dim3 g_blockDim;
dim3 g_gridDim;

namespace {

enum State { RUNNABLE, AT_BARRIER, AT_WARP, EXITED };

#if CUEMU_ASAN
const size_t kStack = 512 * 1024; // ASan's redzones make frames several times larger
#else
const size_t kStack = 128 * 1024;
#endif
const int kMaxMessages = 20;
const long long kMaxDynSmem = 227 * 1024; // an H100's opt-in maximum per block

struct Fiber {
    jmp_buf jb;
    ucontext_t uc;
    unsigned char *mem = nullptr; // guard page + stack
    uint3 idx;
    int linear = 0, warp = 0, lane = 0;
    State state = RUNNABLE;
    bool started = false;       // its context has been entered
    bool idle = false;          // waits in fiber_entry for its next thread
    const char *file = nullptr; // where it waits
    int line = 0;
    // the pending warp operation
    WarpOp op = OP_SYNCWARP;
    unsigned mask = 0;
    int arg = 0, width = 32, pred = 0;
    size_t bytes = 0;
    unsigned char in[16], out[16];
    unsigned result = 0;
#if CUEMU_ASAN
    void *fake_stack = nullptr;
#endif
};

struct Launch {
    const char *file = nullptr, *name = nullptr;
    int line = 0;
    void (*body)(void *) = nullptr;
    void *ctx = nullptr;
    unsigned char *dyn = nullptr;
    size_t dyn_bytes = 0;
};

int g_schedule = CUEMU_FORWARD;
unsigned long long g_rng = 1;
long g_warn = 0, g_err = 0;
int g_printed = 0;
int g_verbose = 1;

Launch g_launch;
// The pool, at stable addresses (a ucontext_t points into itself); the first g_nthreads run the
// current block.
std::vector<std::unique_ptr<Fiber>> g_fibers;
size_t g_nthreads = 0;
int g_nwarps = 0;
Fiber *g_cur = nullptr;
#if defined(CUEMU_SWAPCONTEXT)
ucontext_t g_sched_uc;
#else
jmp_buf g_sched_jb;
#endif
#if CUEMU_ASAN
const void *g_main_stack_bottom = nullptr;
size_t g_main_stack_size = 0;
#endif

unsigned long long next_random() { // xorshift64*
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

// A permutation of 0..n-1 in the schedule's order.
void order(std::vector<int> &v, int n) {
    v.resize((size_t)n);
    for (int i = 0; i < n; i++) v[(size_t)i] = g_schedule == CUEMU_REVERSE ? n - 1 - i : i;
    if (g_schedule == CUEMU_RANDOM)
        for (int i = n - 1; i > 0; i--) std::swap(v[(size_t)i], v[next_random() % (size_t)(i + 1)]);
}

void report(long *counter, const char *kind, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void report(long *counter, const char *kind, const char *file, int line, const char *fmt, ...) {
    ++*counter;
    if (!g_verbose || g_printed >= kMaxMessages) return;
    g_printed++;
    fprintf(stderr, "cuemu: %s: %s:%d: in %s, block (%u,%u,%u): ", kind, file ? file : "?", line,
            g_launch.name ? g_launch.name : "?", g_blockIdx.x, g_blockIdx.y, g_blockIdx.z);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
#define WARN(file, line, ...)  report(&g_warn, "warning", file, line, __VA_ARGS__)
#define ERROR(file, line, ...) report(&g_err, "error", file, line, __VA_ARGS__)

// ---- fibers ----------------------------------------------------------------------------------

void yield_to_scheduler();

// A fiber runs CUDA threads one after another: after each it waits here, and resuming it starts
// the next thread on the same stack without a system call (a fresh context costs setcontext's
// signal-mask call). A fiber abandoned in a deadlock gets a fresh context instead.
void fiber_entry() {
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g_main_stack_bottom, &g_main_stack_size);
#endif
    for (;;) {
        g_launch.body(g_launch.ctx);
        g_cur->state = EXITED;
        g_cur->idle = true;
        yield_to_scheduler();
    }
}

void make_fiber(Fiber &f) {
    long page = sysconf(_SC_PAGESIZE);
    if (!f.mem) {
        void *m = mmap(nullptr, kStack + (size_t)page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            perror("cuemu: mmap of a fiber stack");
            abort();
        }
        mprotect(m, (size_t)page, PROT_NONE); // a stack overflow faults instead of corrupting
        f.mem = static_cast<unsigned char *>(m);
    }
#if CUEMU_ASAN
    // frames abandoned by an earlier fiber on this stack may have left poisoned redzones
    ASAN_UNPOISON_MEMORY_REGION(f.mem + page, kStack);
#endif
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = f.mem + page;
    f.uc.uc_stack.ss_size = kStack;
    f.uc.uc_link = nullptr;
    makecontext(&f.uc, fiber_entry, 0);
    f.started = false;
    f.idle = false;
}

void free_fibers() {
    long page = sysconf(_SC_PAGESIZE);
    for (auto &f : g_fibers)
        if (f->mem) munmap(f->mem, kStack + (size_t)page);
    g_fibers.clear();
    g_nthreads = 0;
}

struct FreeAtExit {
    ~FreeAtExit() {
        free_fibers();
    }
} g_free_at_exit;

// Scheduler side: runs f until it waits or exits.
void resume(Fiber &f) {
    g_cur = &f;
    g_threadIdx = f.idx;
#if CUEMU_ASAN
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.mem + sysconf(_SC_PAGESIZE), kStack);
#endif
#if defined(CUEMU_SWAPCONTEXT)
    f.started = true;
    f.idle = false;
    swapcontext(&g_sched_uc, &f.uc);
#else
    f.idle = false;
    if (_setjmp(g_sched_jb) == 0) {
        if (!f.started) {
            f.started = true;
            setcontext(&f.uc);
        }
        _longjmp(f.jb, 1);
    }
#endif
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    g_cur = nullptr;
}

// Fiber side: back to the scheduler; returns when the scheduler resumes this fiber.
void yield_to_scheduler() {
    Fiber *f = g_cur;
#if CUEMU_ASAN
    __sanitizer_start_switch_fiber(&f->fake_stack, g_main_stack_bottom, g_main_stack_size);
#endif
#if defined(CUEMU_SWAPCONTEXT)
    swapcontext(&f->uc, &g_sched_uc);
#else
    if (_setjmp(f->jb) == 0) _longjmp(g_sched_jb, 1);
#endif
#if CUEMU_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, nullptr, nullptr);
#endif
}

// ---- the warp scheduler ------------------------------------------------------------------------

Fiber *lane_fiber(int warp, int lane) {
    size_t i = (size_t)warp * 32 + (size_t)lane;
    return i < g_nthreads ? g_fibers[i].get() : nullptr;
}

// Completes the warp operations of warp w whose lanes have all arrived; returns whether any did.
bool release_warp_ops(int w) {
    bool any = false;
    for (int l0 = 0; l0 < 32; l0++) {
        Fiber *f0 = lane_fiber(w, l0);
        if (!f0 || f0->state != AT_WARP) continue;
        unsigned mask = f0->mask;
        // every existing, non-exited lane named in the mask must wait at an operation with this
        // mask; lanes waiting with it that are not in it (a caller left out) take part too
        bool ready = true;
        unsigned gone = 0, part = 0;
        for (int l = 0; l < 32; l++) {
            Fiber *f = lane_fiber(w, l);
            bool named = (mask >> l) & 1u;
            if (!f || f->state == EXITED) {
                if (named) gone |= 1u << l;
                continue;
            }
            if (f->state == AT_WARP && f->mask == mask)
                part |= 1u << l;
            else if (named)
                ready = false;
        }
        if (!ready) continue;
        any = true;
        if (gone)
            WARN(f0->file, f0->line,
                 "warp %d: the mask 0x%08x of a warp operation names lanes that have exited or do "
                 "not exist (0x%08x)",
                 w, mask, gone);
        unsigned votes = 0;
        bool mixed = false;
        for (int l = 0; l < 32; l++)
            if ((part >> l) & 1u) {
                Fiber *f = lane_fiber(w, l);
                if (f->pred) votes |= 1u << l;
                if (f->op != f0->op) mixed = true;
            }
        if (mixed)
            WARN(f0->file, f0->line,
                 "warp %d: lanes of mask 0x%08x wait at different kinds of warp operation", w,
                 mask);
        for (int l = 0; l < 32; l++) {
            if (!((part >> l) & 1u)) continue;
            Fiber *f = lane_fiber(w, l);
            switch (f->op) {
            case OP_BALLOT:
                f->result = votes;
                break;
            case OP_ANY:
                f->result = votes != 0;
                break;
            case OP_ALL:
                f->result = votes == part;
                break;
            case OP_SYNCWARP:
                break;
            default: {
                // the source lane as the PTX shfl instruction defines it, segments of `width`
                int seg = l & ~(f->width - 1), src = -1;
                if (f->op == OP_SHFL) src = seg + (f->arg & (f->width - 1));
                if (f->op == OP_SHFL_UP) src = l - f->arg >= seg ? l - f->arg : -1;
                if (f->op == OP_SHFL_DOWN) src = l + f->arg < seg + f->width ? l + f->arg : -1;
                if (f->op == OP_SHFL_XOR) {
                    src = l ^ f->arg;
                    if (src >= seg + f->width) src = -1; // later segments: own value
                }
                if (src < 0 || src == l)
                    memcpy(f->out, f->in, f->bytes);
                else if ((part >> src) & 1u)
                    memcpy(f->out, lane_fiber(w, src)->in, f->bytes);
                else {
                    WARN(f->file, f->line,
                         "warp %d lane %d: shuffle reads lane %d, which does not take part "
                         "(mask 0x%08x)",
                         w, l, src, mask);
                    memset(f->out, 0xFF, f->bytes);
                }
            }
            }
            f->state = RUNNABLE;
        }
    }
    return any;
}

bool warp_can_run(int w) {
    for (int l = 0; l < 32; l++) {
        Fiber *f = lane_fiber(w, l);
        if (f && f->state == RUNNABLE) return true;
    }
    return false;
}

// One step of warp w: every runnable lane runs (in the schedule's lane order) until it waits.
void step_warp(int w) {
    static std::vector<int> lanes;
    order(lanes, 32);
    for (int l : lanes) {
        Fiber *f = lane_fiber(w, l);
        if (f && f->state == RUNNABLE) resume(*f);
    }
}

__attribute__((no_sanitize_address)) void poison(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) ((volatile unsigned char *)p)[i] = 0xFF;
}

void run_block() {
    poison((unsigned char *)__start_lc_cuemu_smem,
           (size_t)(__stop_lc_cuemu_smem - __start_lc_cuemu_smem));
    if (g_launch.dyn_bytes) poison(g_launch.dyn, g_launch.dyn_bytes);
    for (size_t i = 0; i < g_nthreads; i++) {
        Fiber &f = *g_fibers[i];
        if (!f.idle) make_fiber(f); // new, or abandoned in a deadlock
        f.state = RUNNABLE;
    }
    std::vector<int> cand;
    for (;;) {
        for (int w = 0; w < g_nwarps; w++) release_warp_ops(w);
        cand.clear();
        for (int w = 0; w < g_nwarps; w++)
            if (warp_can_run(w)) cand.push_back(w);
        if (!cand.empty()) {
            int w = g_schedule == CUEMU_FORWARD   ? cand.front()
                    : g_schedule == CUEMU_REVERSE ? cand.back()
                                                  : cand[next_random() % cand.size()];
            step_warp(w);
            continue;
        }
        // nothing can run: a block barrier, the end, or a deadlock
        int live = 0, at_bar = 0, exited = 0;
        const Fiber *first = nullptr;
        bool divergent = false;
        for (size_t i = 0; i < g_nthreads; i++) {
            const Fiber &f = *g_fibers[i];
            if (f.state == EXITED) {
                exited++;
                continue;
            }
            live++;
            if (f.state != AT_BARRIER) continue;
            at_bar++;
            if (!first)
                first = &f;
            else if (f.line != first->line || strcmp(f.file, first->file) != 0)
                divergent = true;
        }
        if (live == 0) return;
        if (at_bar == live) {
            if (divergent)
                WARN(first->file, first->line,
                     "__syncthreads reached at different call sites by the threads of a block");
            if (exited)
                WARN(first->file, first->line, "__syncthreads with %d of %zu threads exited",
                     exited, g_nthreads);
            for (size_t i = 0; i < g_nthreads; i++)
                if (g_fibers[i]->state == AT_BARRIER) g_fibers[i]->state = RUNNABLE;
            continue;
        }
        for (size_t i = 0; i < g_nthreads; i++) {
            const Fiber &f = *g_fibers[i];
            if (f.state == AT_WARP) {
                ERROR(f.file, f.line,
                      "deadlock: thread (%u,%u,%u) waits at a warp operation (mask 0x%08x) that "
                      "its lanes never reach; %d of %d live threads wait at __syncthreads; the "
                      "block is abandoned",
                      f.idx.x, f.idx.y, f.idx.z, f.mask, at_bar, live);
                return;
            }
        }
        ERROR(g_launch.file, g_launch.line, "deadlock; the block is abandoned");
        return;
    }
}

bool valid(const char *file, int line, const char *name, Dim grid, Dim block, long long smem) {
    long long threads = block.x * block.y * block.z;
    const char *why = nullptr;
    if (block.x < 1 || block.y < 1 || block.z < 1 || block.x > 1024 || block.y > 1024 ||
        block.z > 64 || threads > 1024)
        why = "block dimensions outside 1..1024 x 1..1024 x 1..64 or over 1024 threads";
    else if (grid.x < 1 || grid.y < 1 || grid.z < 1 || grid.x > 2147483647LL || grid.y > 65535 ||
             grid.z > 65535)
        why = "grid dimensions outside 1..2^31-1 x 1..65535 x 1..65535";
    else if (smem < 0 || smem > kMaxDynSmem)
        why = "dynamic shared memory over 227 KiB";
    if (!why) return true;
    g_launch.name = name;
    ERROR(file, line,
          "invalid launch configuration of %s: grid (%lld,%lld,%lld) block (%lld,%lld,%lld) "
          "smem %lld: %s",
          name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem, why);
    return false;
}

} // namespace

bool run_grid(const char *file, int line, const char *name, Dim grid, Dim block, long long smem,
              void (*body)(void *), void *ctx) {
    if (g_cur) {
        ERROR(file, line, "a kernel launched from device code");
        return false;
    }
    if (!valid(file, line, name, grid, block, smem)) return false;
    g_launch = Launch{};
    g_launch.file = file;
    g_launch.line = line;
    g_launch.name = name;
    g_launch.body = body;
    g_launch.ctx = ctx;
    g_launch.dyn_bytes = (size_t)smem;
    // exactly the requested size, so a sanitizer sees an overrun
    g_launch.dyn = static_cast<unsigned char *>(malloc(smem ? (size_t)smem : 1));
    g_gridDim = dim3((unsigned)grid.x, (unsigned)grid.y, (unsigned)grid.z);
    g_blockDim = dim3((unsigned)block.x, (unsigned)block.y, (unsigned)block.z);
    size_t nthreads = (size_t)(block.x * block.y * block.z);
    while (g_fibers.size() < nthreads) g_fibers.emplace_back(new Fiber());
    g_nthreads = nthreads;
    g_nwarps = (int)((nthreads + 31) / 32);
    for (size_t i = 0; i < nthreads; i++) {
        Fiber &f = *g_fibers[i];
        f.linear = (int)i;
        f.warp = (int)(i / 32);
        f.lane = (int)(i % 32);
        f.idx.x = (unsigned)(i % (size_t)block.x);
        f.idx.y = (unsigned)(i / (size_t)block.x % (size_t)block.y);
        f.idx.z = (unsigned)(i / (size_t)(block.x * block.y));
    }
    long long nblocks = grid.x * grid.y * grid.z;
    // blocks in the schedule's order; a random order only for modest grids (a permutation)
    std::vector<int> perm;
    bool permute = g_schedule != CUEMU_FORWARD && nblocks <= (1 << 20);
    if (permute) order(perm, (int)nblocks);
    for (long long b = 0; b < nblocks; b++) {
        long long id = permute ? perm[(size_t)b] : b;
        g_blockIdx.x = (unsigned)(id % grid.x);
        g_blockIdx.y = (unsigned)(id / grid.x % grid.y);
        g_blockIdx.z = (unsigned)(id / (grid.x * grid.y));
        run_block();
    }
    free(g_launch.dyn);
    g_launch.dyn = nullptr;
    return true;
}

void syncthreads(const char *file, int line) {
    Fiber *f = g_cur;
    if (!f) {
        ERROR(file, line, "__syncthreads called outside a kernel");
        return;
    }
    f->state = AT_BARRIER;
    f->file = file;
    f->line = line;
    yield_to_scheduler();
}

unsigned warp_op(const char *file, int line, WarpOp op, unsigned mask, const void *in, void *out,
                 size_t bytes, int arg, int width, int pred) {
    Fiber *f = g_cur;
    if (!f) {
        ERROR(file, line, "warp operation called outside a kernel");
        return 0;
    }
    if (!((mask >> f->lane) & 1u))
        WARN(file, line,
             "thread (%u,%u,%u), lane %d, is not in the mask 0x%08x of its own warp "
             "operation",
             f->idx.x, f->idx.y, f->idx.z, f->lane, mask);
    if (width < 1 || width > 32 || (width & (width - 1))) {
        WARN(file, line, "shuffle width %d is not a power of two in 1..32", width);
        width = 32;
    }
    f->state = AT_WARP;
    f->file = file;
    f->line = line;
    f->op = op;
    f->mask = mask;
    f->arg = arg;
    f->width = width;
    f->pred = pred;
    f->bytes = bytes;
    if (bytes) memcpy(f->in, in, bytes);
    yield_to_scheduler();
    if (bytes) memcpy(out, f->out, bytes);
    return f->result;
}

void *dyn_smem() {
    return g_launch.dyn;
}

} // namespace cuemu

using namespace cuemu;

void cuemu_set_schedule(int schedule, unsigned long long seed) {
    g_schedule = schedule;
    g_rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}
long cuemu_warnings(void) {
    return g_warn;
}
long cuemu_errors(void) {
    return g_err;
}
void cuemu_reset(void) {
    g_warn = g_err = 0;
    g_printed = 0;
}
void cuemu_set_verbose(int verbose) {
    g_verbose = verbose;
}
