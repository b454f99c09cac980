/* fst4j CUDA kernels: one __global__ wrapper per body of fst4j_bodies.cuh (the list is FST_KERNELS in
 * fst4j_kargs.h). Compiled by nvcc into a fatbin only (no host code, no CUDA runtime linked): cuda.c embeds it and
 * launches the kernels through the driver API (cuModuleLoadData + cuLaunchKernel), see native-cuda/CUDA.md.
 * Every kernel is extern "C" (cuda.c finds it by its plain name fst_k_<name>), takes its argument struct by value
 * and runs k_<name> for its global thread index; the host emulator (src/main/c/cuda_emu.cc) runs the same bodies
 * with the same index computation over the same grid. Built with -fmad=false: no FMA contraction, as on the CPU. */
#include "fst4j_bodies.cuh"

#define FST_GLOBAL(name, Args) \
    extern "C" __global__ void __launch_bounds__(FST_BLOCK) fst_k_##name(const Args a) { k_##name(fst_gidx(blockIdx.x, blockDim.x, threadIdx.x), a); }
FST_KERNELS(FST_GLOBAL)

/* block kernels: their own block size, and dynamic shared memory of the size the list gives (<= 48 KB, the default
 * limit without cuFuncSetAttribute) */
#define FST_GLOBAL_BLOCK(name, Args, threads, smem)                                                         \
    static_assert((smem) <= 48 * 1024 && (threads) % 32 == 0, #name ": shared memory or block size");        \
    extern "C" __global__ void __launch_bounds__(threads) fst_k_##name(const Args a) {                       \
        extern __shared__ __align__(16) unsigned char fst_smem[];                                            \
        FstCtx c{fst_smem};                                                                                  \
        kb_##name(c, a);                                                                                     \
    }
FST_BLOCK_KERNELS(FST_GLOBAL_BLOCK)
