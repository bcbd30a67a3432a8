// tests/cuda_emu/cudnn_shim.h: the test interface of the cuDNN shim (tests/cuda_emu/cudnn_shim.cc,
// docs/cuda-emulation.md "The cuDNN shim"), which defines the lc_emu_cudnn* functions that
// tests/cuda_emu/cuda_shims.h renames kernels/cuda/attention_cudnn.cu's cuDNN calls to.
#pragma once

extern "C" {
// Every refused call is counted here and in lc_emu_shim_errors() (reported through
// lc_emu_shim_error, so printed with its reason); cudnnGetLastErrorString returns the reason.
long lc_emu_cudnn_errors(void);
long lc_emu_cudnn_executions(void); // cudnnBackendExecute calls that computed a result
long lc_emu_cudnn_graphs(void);     // operation graphs finalized (plans built)
// Executions on the engine the shim's heuristics mark nondeterministic (offered first, beside a
// deterministic one).
long lc_emu_cudnn_nondeterministic(void);
long lc_emu_cudnn_live(void); // descriptors created and not destroyed
const char *lc_emu_cudnn_last_error(void);
// The device pointer bound to uid by the last execution's variant pack (NULL if none), so a test
// can see which buffer cuDNN was given: the activations themselves or the staging.
const void *lc_emu_cudnn_bound(long uid);
void lc_emu_cudnn_reset(void); // zeroes the counters (not the live count)
}
