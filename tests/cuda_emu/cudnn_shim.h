// tests/cuda_emu/cudnn_shim.h: the cuDNN functions kernels/cuda/attention_cudnn.cu calls, renamed
// to lc_emu_ names that tests/cuda_emu/cudnn_shim.cc defines over host memory (docs/
// cuda-emulation.md, "The cuDNN shim"). Include it BEFORE cudnn.h (or kernels/cuda/cuda.h), so
// that NVIDIA's header declares the lc_emu_ functions; then no libcudnn is linked or needed.
//
// The renames belong in tests/cuda_emu/cuda_shims.h's section for cuDNN once that header exists;
// the test interface below stays here.
#pragma once
#include <stddef.h>

// ---- renames: cuDNN ----------------------------------------------------------------------------
#define cudnnCreate                   lc_emu_cudnnCreate
#define cudnnDestroy                  lc_emu_cudnnDestroy
#define cudnnSetStream                lc_emu_cudnnSetStream
#define cudnnGetErrorString           lc_emu_cudnnGetErrorString
#define cudnnGetLastErrorString       lc_emu_cudnnGetLastErrorString
#define cudnnBackendCreateDescriptor  lc_emu_cudnnBackendCreateDescriptor
#define cudnnBackendDestroyDescriptor lc_emu_cudnnBackendDestroyDescriptor
#define cudnnBackendSetAttribute      lc_emu_cudnnBackendSetAttribute
#define cudnnBackendGetAttribute      lc_emu_cudnnBackendGetAttribute
#define cudnnBackendFinalize          lc_emu_cudnnBackendFinalize
#define cudnnBackendExecute           lc_emu_cudnnBackendExecute

// ---- the test's interface ----------------------------------------------------------------------
// Every refused call is counted and its reason kept (and printed to stderr unless verbose is 0);
// cudnnGetLastErrorString returns the same reason.
long lc_emu_cudnn_errors(void);
long lc_emu_cudnn_executions(void); // cudnnBackendExecute calls that computed a result
long lc_emu_cudnn_graphs(void);     // operation graphs finalized (plans built)
long lc_emu_cudnn_live(void);       // descriptors created and not destroyed
const char *lc_emu_cudnn_last_error(void);
void lc_emu_cudnn_reset(void); // zeroes the counters (not the live count)
void lc_emu_cudnn_set_verbose(int verbose);
// How many bytes of device memory lie from p to the end of its allocation (0: p is not in one),
// from the runtime shim; without it the shim cannot check extents and workspace sizes, and every
// execution counts an error.
void lc_emu_cudnn_set_extent(size_t (*bytes_from)(const void *p));
