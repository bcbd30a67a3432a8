// tests/cuda_emu/cuemu.h: runs CUDA kernel source on the CPU, for tests on machines without a
// GPU (docs/cuda-emulation.md). Include it FIRST, then the kernel headers (kernels/cuda/*.cuh);
// compile with a C++17 host compiler and -I<CUDA toolkit>/include (only headers are used:
// vector_types.h, driver_types.h and NVIDIA's own cuda_bf16.h, whose host path rounds exactly as
// the device does). Neither nvcc nor libcudart nor a driver is needed.
//
// Model:
//   - Blocks run one after another on the calling OS thread; every CUDA thread of a block is a
//     fiber with its own stack (ucontext to create it, _setjmp/_longjmp to switch, or
//     swapcontext only when built with -DCUEMU_SWAPCONTEXT, for sanitizer runs).
//   - The warp is the scheduling unit. A warp runs its lanes until each one waits at a warp
//     operation (shuffle, vote, __syncwarp), at __syncthreads, or has exited; the warp's
//     operations then complete together. Warps run ahead of each other up to __syncthreads, in
//     the order the schedule says: CUEMU_FORWARD (lowest warp first), CUEMU_REVERSE, or
//     CUEMU_RANDOM (a seeded random warp at every step, random lane and block order), so a
//     missing barrier changes the result under at least one schedule.
//   - __shared__ variables are statics in the ELF section "lc_cuemu_smem", which is filled with
//     0xFF bytes (a float NaN) before every block; so is the dynamic shared memory of a launch
//     (LC_DYN_SHARED), which is allocated with exactly the launch's size.
//   - Misuse is counted: cuemu_warnings() for a __syncthreads reached at different call sites
//     or with exited threads, a warp operation whose mask leaves out the caller or names lanes
//     that have exited or do not exist, a shuffle reading a lane that does not take part, a bad
//     shuffle width; cuemu_errors() for an invalid launch configuration (the launch does not
//     run, as with cudaErrorInvalidConfiguration) and a deadlock (the block is abandoned).
//     Each is printed to stderr (the first 20 until cuemu_reset()).
#pragma once
#define LC_CUDA_EMULATED 1

#include <cuda_bf16.h> // also vector_types.h (dim3, uint3, float4), driver_types.h (cudaStream_t)
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- the qualifiers -----------------------------------------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __constant__
#undef __shared__
#undef __launch_bounds__
#undef __forceinline__
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
// One static instance per variable is per-block storage because blocks run one at a time.
#define __shared__ static __attribute__((section("lc_cuemu_smem")))

// ---- schedules and counters (the test's interface) --------------------------------------------
enum { CUEMU_FORWARD = 0, CUEMU_REVERSE = 1, CUEMU_RANDOM = 2 };
// Sets the order of warps, lanes and blocks for the following launches; seed is used by
// CUEMU_RANDOM only.
void cuemu_set_schedule(int schedule, unsigned long long seed);
long cuemu_warnings(void);
long cuemu_errors(void);
// Zeroes both counters and re-enables printing of the first 20 messages.
void cuemu_reset(void);
// 0: count but print nothing (seeded-bug tests); 1 (default): print.
void cuemu_set_verbose(int verbose);

namespace cuemu {

// The running fiber's threadIdx, and this block's indices; set by the scheduler before it
// resumes a fiber, so they are constant for the fiber between two of its switches.
extern uint3 g_threadIdx;
extern uint3 g_blockIdx;
extern dim3 g_blockDim;
extern dim3 g_gridDim;

enum WarpOp {
    OP_SHFL,
    OP_SHFL_UP,
    OP_SHFL_DOWN,
    OP_SHFL_XOR,
    OP_SYNCWARP,
    OP_BALLOT,
    OP_ANY,
    OP_ALL
};

// The calling fiber waits until all lanes of `mask` reach a warp operation with that mask; for a
// shuffle, `out` receives `bytes` bytes of the source lane's `in` (`arg`: the lane, delta or lane
// mask); for a vote, `pred` is this lane's predicate and the result is returned.
unsigned warp_op(const char *file, int line, WarpOp op, unsigned mask, const void *in, void *out,
                 size_t bytes, int arg, int width, int pred);
void syncthreads(const char *file, int line);
void *dyn_smem();

// A launch dimension as given (dim3 or an integer), before any narrowing, so that bad values
// can be reported.
struct Dim {
    long long x, y, z;
    Dim(dim3 d) : x(d.x), y(d.y), z(d.z) {}
    template <class I, class = typename std::enable_if<std::is_integral<I>::value>::type>
    Dim(I v) : x((long long)v), y(1), z(1) {}
};

// Validates the configuration (counting an error and returning false if it is invalid), then
// runs body(ctx) once per CUDA thread of every block.
bool run_grid(const char *file, int line, const char *name, Dim grid, Dim block, long long smem,
              void (*body)(void *), void *ctx);

template <class... P, class... A>
void launch(const char *file, int line, const char *name, void (*kernel)(P...), Dim grid, Dim block,
            long long smem, cudaStream_t stream, A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with a wrong argument count");
    (void)stream;
    // The parameters are converted once, as the host does for <<<>>>; each thread gets copies.
    struct Ctx {
        void (*k)(P...);
        std::tuple<typename std::decay<P>::type...> params;
    } ctx{kernel, std::tuple<typename std::decay<P>::type...>(std::forward<A>(args)...)};
    run_grid(
        file, line, name, grid, block, smem,
        [](void *c) {
            Ctx *x = static_cast<Ctx *>(c);
            std::apply(x->k, x->params);
        },
        &ctx);
}

template <class T>
T shfl(const char *file, int line, WarpOp op, unsigned mask, T var, int arg, int width = 32) {
    static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 16, "shuffle type");
    T out;
    warp_op(file, line, op, mask, &var, &out, sizeof(T), arg, width, 0);
    return out;
}

} // namespace cuemu

// ---- built-in variables
// ---------------------------------------------------------------------------
#define threadIdx (::cuemu::g_threadIdx)
#define blockIdx  (::cuemu::g_blockIdx)
#define blockDim  (::cuemu::g_blockDim)
#define gridDim   (::cuemu::g_gridDim)
static const int warpSize = 32;

// ---- synchronisation, shuffles, votes
// -------------------------------------------------------------
#define __syncthreads() ::cuemu::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...)                                                                            \
    ::cuemu::warp_op(__FILE__, __LINE__, ::cuemu::OP_SYNCWARP,                                     \
                     ::cuemu::syncwarp_mask(__VA_ARGS__), nullptr, nullptr, 0, 0, 32, 0)
#define __shfl_sync(...)      ::cuemu::shfl(__FILE__, __LINE__, ::cuemu::OP_SHFL, __VA_ARGS__)
#define __shfl_up_sync(...)   ::cuemu::shfl(__FILE__, __LINE__, ::cuemu::OP_SHFL_UP, __VA_ARGS__)
#define __shfl_down_sync(...) ::cuemu::shfl(__FILE__, __LINE__, ::cuemu::OP_SHFL_DOWN, __VA_ARGS__)
#define __shfl_xor_sync(...)  ::cuemu::shfl(__FILE__, __LINE__, ::cuemu::OP_SHFL_XOR, __VA_ARGS__)
#define __ballot_sync(mask, pred)                                                                  \
    ::cuemu::warp_op(__FILE__, __LINE__, ::cuemu::OP_BALLOT, (mask), nullptr, nullptr, 0, 0, 32,   \
                     (pred) ? 1 : 0)
#define __any_sync(mask, pred)                                                                     \
    ((int)::cuemu::warp_op(__FILE__, __LINE__, ::cuemu::OP_ANY, (mask), nullptr, nullptr, 0, 0,    \
                           32, (pred) ? 1 : 0))
#define __all_sync(mask, pred)                                                                     \
    ((int)::cuemu::warp_op(__FILE__, __LINE__, ::cuemu::OP_ALL, (mask), nullptr, nullptr, 0, 0,    \
                           32, (pred) ? 1 : 0))
namespace cuemu {
inline unsigned syncwarp_mask() {
    return 0xffffffffu;
}
inline unsigned syncwarp_mask(unsigned m) {
    return m;
}
} // namespace cuemu
// Fibers never preempt each other, and a fiber switches only inside the calls above: memory
// fences have nothing to order.
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---- launches ----------------------------------------------------------------------------------
// kernels/cuda/launch.cuh documents these; template kernels need `auto k = kern<T, 256>;` first.
#define LC_LAUNCH(kernel, grid, block, smem, stream, ...)                                          \
    ::cuemu::launch(__FILE__, __LINE__, #kernel, kernel, grid, block, smem, stream, __VA_ARGS__)
#define LC_DYN_SHARED(T, name) T *name = static_cast<T *>(::cuemu::dyn_smem())
#define LC_LAUNCH_CHECK()      ((void)0)

// ---- atomics: plain read-modify-write (fibers never preempt)
// --------------------------------------
template <class T> inline T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <class T> inline T atomicMax(T *p, T v) {
    T old = *p;
    *p = old < v ? v : old;
    return old;
}
template <class T> inline T atomicMin(T *p, T v) {
    T old = *p;
    *p = v < old ? v : old;
    return old;
}
template <class T> inline T atomicExch(T *p, T v) {
    T old = *p;
    *p = v;
    return old;
}
template <class T> inline T atomicCAS(T *p, T cmp, T v) {
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}

// ---- math and memory helpers (exact host versions of the device's fast intrinsics) -------------
inline float __expf(float x) {
    return expf(x);
}
inline float __logf(float x) {
    return logf(x);
}
inline float __sinf(float x) {
    return sinf(x);
}
inline float __cosf(float x) {
    return cosf(x);
}
inline float __tanf(float x) {
    return tanf(x);
}
inline float __powf(float x, float y) {
    return powf(x, y);
}
inline void __sincosf(float x, float *s, float *c) {
    *s = sinf(x);
    *c = cosf(x);
}
inline float __fdividef(float a, float b) {
    return a / b;
}
inline float __frcp_rn(float x) {
    return 1.0f / x;
}
inline float __fsqrt_rn(float x) {
    return sqrtf(x);
}
inline float __fmaf_rn(float a, float b, float c) {
    return fmaf(a, b, c);
}
inline float __saturatef(float x) {
    return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}
inline float rsqrtf(float x) {
    return 1.0f / sqrtf(x);
}
inline double rsqrt(double x) {
    return 1.0 / sqrt(x);
}
inline int __float2int_rn(float x) {
    return (int)nearbyintf(x);
}
inline int max(int a, int b) {
    return a > b ? a : b;
}
inline int min(int a, int b) {
    return a < b ? a : b;
}
inline unsigned max(unsigned a, unsigned b) {
    return a > b ? a : b;
}
inline unsigned min(unsigned a, unsigned b) {
    return a < b ? a : b;
}
inline long long max(long long a, long long b) {
    return a > b ? a : b;
}
inline long long min(long long a, long long b) {
    return a < b ? a : b;
}
inline float max(float a, float b) {
    return fmaxf(a, b);
}
inline float min(float a, float b) {
    return fminf(a, b);
}
template <class T> inline T __ldg(const T *p) {
    return *p;
}
template <class T> inline T __ldcs(const T *p) {
    return *p;
}
template <class T> inline void __stcs(T *p, T v) {
    *p = v;
}
