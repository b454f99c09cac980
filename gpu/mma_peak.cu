// Tensor-core ceilings of the instructions fst4j's block kernels use (gpu/mma_peak.sh builds and runs it on a lent GPU):
// warp-level mma.sync.m16n8k16 (bf16 -> f32, the dense implicit GEMMs) against mma.sp::ordered_metadata.m16n8k32
// (2:4 A, the 2:4 implicit GEMMs), operands in registers, no memory traffic, several independent accumulators per warp
// so that the instruction's latency is hidden. The question it answers for native-cuda/CUDA.md's plan: how far the
// warp-level instructions can go on this GPU, dense and 2:4, before shared memory, the gather or wgmma enter, and
// whether mma.sp gives its 2x over mma there. Rates are dense-equivalent (an m16n8k32 2:4 product counts as 2*16*8*32
// flops, as a dense m16n8k32 would), so sparse / dense is the speed-up a 2:4 GEMM could see at the same work.
// On Hopper also the warpgroup instructions the vendor libraries use, wgmma.m64n256k16 against wgmma.sp.m64n256k32
// (A and B from shared memory, no swizzle), with constant and with random values: the ceiling of a kernel on the path
// CUDA.md's plan names (run 28: dense wgmma is ~10 % slower on random data, 2:4 hardly changes).
// Output: one line per (kind, accumulators, warps per SM): "MMA kind=.. acc=.. warps_per_sm=.. ms=.. tflops=..", and a
// "MMA best" line per family with the ratio.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    printf("MMA FAILED %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)

typedef unsigned int u32;

// finite, small bf16 pairs that differ per lane (the accumulators stay finite over every run below)
__device__ __forceinline__ u32 pair(u32 lane, u32 i) { return 0x3c003c00u | ((lane * 7u + i) & 0x7fu) | (((lane * 3u + i) & 0x7fu) << 16); }

// SP: mma.sp.m16n8k32 (every group keeps positions 0 and 1: valid, increasing), else mma.m16n8k16 (B's first two registers)
template <bool SP, int ACC> __global__ void k_mma(long iters, float *out) {
    const u32 lane = threadIdx.x & 31;
    u32 a[4], b[4];
    for (int i = 0; i < 4; i++) a[i] = pair(lane, i);
    for (int i = 0; i < 4; i++) b[i] = pair(lane, i + 4);
    const u32 e = 0x44444444u;
    float d[ACC][4];
    for (int j = 0; j < ACC; j++) for (int k = 0; k < 4; k++) d[j][k] = 0.f;
    for (long it = 0; it < iters; it++) {
#pragma unroll
        for (int j = 0; j < ACC; j++)
            if (SP)
                asm volatile("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                             "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;"
                             : "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
                             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
            else
                asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                             : "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
                             : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    float s = 0.f;
    for (int j = 0; j < ACC; j++) for (int k = 0; k < 4; k++) s += d[j][k];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

// ---- Hopper's warpgroup instructions (sm_90a): wgmma.m64n256k16 dense and wgmma.sp.m64n256k32, A and B from shared
// memory by descriptor (no swizzle), f32 accumulators in registers (128 per thread). Compiled only for sm_90a. ----
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FST_WGMMA 1
__device__ __forceinline__ void wgmma_dense(float d[128], unsigned long long da, unsigned long long db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(da), "l"(db));
}
__device__ __forceinline__ void wgmma_sparse(float d[128], unsigned long long da, unsigned long long db, unsigned e) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sp.sync.aligned.m64n256k32.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, %130, 0, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                 : "l"(da), "l"(db), "r"(e));
}
// a shared-memory matrix descriptor without swizzle: start address, leading and stride byte offsets, each >> 4
__device__ __forceinline__ unsigned long long wg_desc(const void *p, unsigned lbo, unsigned sbo) {
    const unsigned a = (unsigned) __cvta_generic_to_shared(p);
    return (unsigned long long) ((a >> 4) & 0x3fff) | ((unsigned long long) ((lbo >> 4) & 0x3fff) << 16)
         | ((unsigned long long) ((sbo >> 4) & 0x3fff) << 32);
}
#endif

// one warpgroup per block; per iteration 4 instructions into the same accumulators, one group kept in flight
// RND: shared memory holds hashed values in +-[0.5, 1) (the tensor cores' power, and so their clock, depends on the data)
template <bool SP, bool RND> __global__ void __launch_bounds__(128) k_wgmma(long iters, float *out) {
#ifdef FST_WGMMA
    __shared__ __align__(128) unsigned short sm[20480];   // 40 KB: A (kept) values, then B
    for (int i = threadIdx.x; i < 20480; i += blockDim.x) {
        const unsigned h = (unsigned) (i + 1) * 2654435761u + blockIdx.x * 40503u;
        sm[i] = RND ? (unsigned short) (0x3f00 | ((h >> 9) & 0x7f) | (((h >> 20) & 1) << 15)) : (unsigned short) (0x3c00 | (i & 0x7f));
    }
    __syncthreads();
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    float d[128];
    for (int i = 0; i < 128; i++) d[i] = 0.f;
    const unsigned long long da = wg_desc(sm, 128, 256), db = wg_desc(sm + 4096, 128, 256);
    const unsigned e = 0x44444444u;
    for (long it = 0; it < iters; it++) {
        asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (SP) wgmma_sparse(d, da, db, e);
            else wgmma_dense(d, da, db);
        }
        asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 1;" ::: "memory");
    }
    asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory");
    float s = 0.f;
    for (int i = 0; i < 128; i++) s += d[i];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
#else
    if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = -1.f;   // not built for sm_90a: the host reports it
#endif
}

typedef void (*Kern)(long, float *);

// one timed launch after one warm-up; returns ms, writes the dense-equivalent TFLOP/s
static double run(Kern k, int sms, int warps, long iters, int acc, double flop_per_mma, float *out, double *tflops) {
    const int threads = 128, blocks = sms * warps / 4;
    cudaEvent_t t0, t1;
    CK(cudaEventCreate(&t0));
    CK(cudaEventCreate(&t1));
    k<<<blocks, threads>>>(iters / 8, out);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaEventRecord(t0));
    k<<<blocks, threads>>>(iters, out);
    CK(cudaEventRecord(t1));
    CK(cudaEventSynchronize(t1));
    CK(cudaGetLastError());
    float ms = 0.f;
    CK(cudaEventElapsedTime(&ms, t0, t1));
    CK(cudaEventDestroy(t0));
    CK(cudaEventDestroy(t1));
    const double flop = (double) blocks * (threads / 32) * iters * acc * flop_per_mma;
    *tflops = flop / (ms * 1e-3) / 1e12;
    return ms;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 4000;   // per warp at 32 warps per SM and 8 accumulators; scaled for the others
    int dev = 0;
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, dev));
    printf("MMA device %s, sm_%d%d, %d SMs; %ld x 256 mma per warp at 32 warps per SM (the same work in every row); rates dense-equivalent (2:4 m16n8k32 = 2*16*8*32 flops)\n",
           p.name, p.major, p.minor, p.multiProcessorCount, iters);
    if (p.major < 8) { printf("MMA skipped: mma.sp needs sm_80 or later\n"); return 0; }
    const int sms = p.multiProcessorCount;
    float *out;
    CK(cudaMalloc(&out, (size_t) sms * 64 * 32 * sizeof(float)));
    struct { const char *kind; int acc; Kern k; double flop; } ks[] = {
        { "dense", 2, k_mma<false, 2>, 2.0 * 16 * 8 * 16 }, { "dense", 4, k_mma<false, 4>, 2.0 * 16 * 8 * 16 },
        { "dense", 8, k_mma<false, 8>, 2.0 * 16 * 8 * 16 },
        { "sparse", 2, k_mma<true, 2>, 2.0 * 16 * 8 * 32 }, { "sparse", 4, k_mma<true, 4>, 2.0 * 16 * 8 * 32 },
        { "sparse", 8, k_mma<true, 8>, 2.0 * 16 * 8 * 32 } };
    const int warps[] = { 4, 8, 16, 32 };
    double best[2] = { 0, 0 };
    for (auto &k : ks)
        for (int w : warps) {
            const long it = iters * 32 / (w * k.acc) > 64 ? iters * 32 / (w * k.acc) : 64;   // the same work in every row
            double tf = 0, ms = run(k.k, sms, w, it, k.acc, k.flop, out, &tf);
            printf("MMA kind=%s acc=%d warps_per_sm=%d iters=%ld ms=%.3f tflops=%.1f\n", k.kind, k.acc, w, it, ms, tf);
            int i = strcmp(k.kind, "dense") == 0 ? 0 : 1;
            if (tf > best[i]) best[i] = tf;
        }
    printf("MMA best dense=%.1f sparse=%.1f sparse/dense=%.2f (TFLOP/s, dense-equivalent)\n", best[0], best[1],
           best[0] > 0 ? best[1] / best[0] : 0.0);
    if (p.major == 9) {   // Hopper: the warpgroup instructions, one warpgroup per block, 1-4 blocks per SM
        const Kern wk[2][2] = { { k_wgmma<false, false>, k_wgmma<true, false> }, { k_wgmma<false, true>, k_wgmma<true, true> } };
        for (int rnd = 0; rnd < 2; rnd++) {
            double wbest[2] = { 0, 0 };
            for (int sp = 0; sp < 2; sp++)
                for (int bps = 1; bps <= 4; bps++) {
                    const long it = 100000 / bps;
                    const double per_wg = sp ? 2.0 * 64 * 256 * 32 : 2.0 * 64 * 256 * 16;   // dense-equivalent flops per instruction
                    double tf = 0, ms = run(wk[rnd][sp], sms, 4 * bps, it, 4, per_wg / 4, out, &tf);
                    float flag = 0.f;
                    CK(cudaMemcpy(&flag, out, sizeof flag, cudaMemcpyDeviceToHost));
                    if (flag == -1.f) { printf("MMA wgmma skipped: this binary was not built for sm_90a\n"); CK(cudaFree(out)); return 0; }
                    printf("MMA kind=wgmma_%s data=%s m64n256 blocks_per_sm=%d iters=%ld ms=%.3f tflops=%.1f\n", sp ? "sparse" : "dense",
                           rnd ? "random" : "constant", bps, it, ms, tf);
                    if (tf > wbest[sp]) wbest[sp] = tf;
                }
            printf("MMA best wgmma_dense=%.1f wgmma_sparse=%.1f sparse/dense=%.2f (TFLOP/s, dense-equivalent; %s data)\n", wbest[0],
                   wbest[1], wbest[1] / wbest[0], rnd ? "random" : "constant");
        }
    }
    CK(cudaFree(out));
    return 0;
}
