// tests/cuda_emu/collective_nccl_emu.cc: the nccl collective implementation
// (kernels/cuda/collective_nccl.cu) compiled with the host compiler over the shims: its NCCL
// calls go to nccl_shim.cc (MPI on host memory), its CUDA runtime calls to cudart_shim.cc. Its
// entry points are lc_emu_comm_nccl_open and lc_emu_comm_nccl_close (docs/cuda-emulation.md).
// Built with LC_HAVE_MPI and LC_HAVE_NCCL so kernels/collective-impl.h declares them and
// comm_mpi_open (lc_kernels' mpi implementation, which it uses for the bootstrap and its host
// operations).
#include "tests/cuda_emu/cuda_shims.h"

#include "tests/cuda_emu/cuemu.h"

#include "kernels/cuda/collective_nccl.cu"
