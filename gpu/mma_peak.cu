// Tensor-core ceilings of the instructions fst4j's block kernels use (gpu/mma_peak.sh builds and runs it on a lent GPU):
// warp-level mma.sync.m16n8k16 (bf16 -> f32, the dense implicit GEMMs) against mma.sp::ordered_metadata.m16n8k32
// (2:4 A, the 2:4 implicit GEMMs), operands in registers, no memory traffic, several independent accumulators per warp
// so that the instruction's latency is hidden. The question it answers for native-cuda/CUDA.md's plan: how far the
// warp-level instructions can go on this GPU, dense and 2:4, before shared memory, the gather or wgmma enter, and
// whether mma.sp gives its 2x over mma there. Rates are dense-equivalent (an m16n8k32 2:4 product counts as 2*16*8*32
// flops, as a dense m16n8k32 would), so sparse / dense is the speed-up a 2:4 GEMM could see at the same work.
// Output: one line per (kind, accumulators, warps per SM): "MMA kind=.. acc=.. warps_per_sm=.. ms=.. tflops=..", and a
// "MMA best" line per kind with the ratio.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { \
    printf("MMA FAILED %s: %s\n", #x, cudaGetErrorString(e_)); exit(1); } } while (0)

typedef unsigned int u32;

// finite, small bf16 pairs that differ per lane (the accumulators stay finite over every run below)
__device__ __forceinline__ u32 pair(u32 lane, u32 i) { return 0x3c003c00u | ((lane * 7u + i) & 0x7fu) | (((lane * 3u + i) & 0x7fu) << 16); }

template <int ACC> __global__ void k_dense(long iters, float *out) {
    const u32 lane = threadIdx.x & 31;
    u32 a[4], b[2];
    for (int i = 0; i < 4; i++) a[i] = pair(lane, i);
    for (int i = 0; i < 2; i++) b[i] = pair(lane, i + 4);
    float d[ACC][4];
    for (int j = 0; j < ACC; j++) for (int k = 0; k < 4; k++) d[j][k] = 0.f;
    for (long it = 0; it < iters; it++) {
#pragma unroll
        for (int j = 0; j < ACC; j++)
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                         : "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    float s = 0.f;
    for (int j = 0; j < ACC; j++) for (int k = 0; k < 4; k++) s += d[j][k];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

template <int ACC> __global__ void k_sparse(long iters, float *out) {
    const u32 lane = threadIdx.x & 31;
    u32 a[4], b[4];
    for (int i = 0; i < 4; i++) a[i] = pair(lane, i);
    for (int i = 0; i < 4; i++) b[i] = pair(lane, i + 4);
    const u32 e = 0x44444444u;   // every group keeps positions 0 and 1 (valid, increasing)
    float d[ACC][4];
    for (int j = 0; j < ACC; j++) for (int k = 0; k < 4; k++) d[j][k] = 0.f;
    for (long it = 0; it < iters; it++) {
#pragma unroll
        for (int j = 0; j < ACC; j++)
            asm volatile("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                         "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;"
                         : "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
    }
    float s = 0.f;
    for (int j = 0; j < ACC; j++) for (int k = 0; k < 4; k++) s += d[j][k];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
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
        { "dense", 2, k_dense<2>, 2.0 * 16 * 8 * 16 }, { "dense", 4, k_dense<4>, 2.0 * 16 * 8 * 16 },
        { "dense", 8, k_dense<8>, 2.0 * 16 * 8 * 16 },
        { "sparse", 2, k_sparse<2>, 2.0 * 16 * 8 * 32 }, { "sparse", 4, k_sparse<4>, 2.0 * 16 * 8 * 32 },
        { "sparse", 8, k_sparse<8>, 2.0 * 16 * 8 * 32 } };
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
    CK(cudaFree(out));
    return 0;
}
