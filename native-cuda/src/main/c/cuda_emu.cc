/* fst4j CUDA host emulator (libfst4j_cuda_emu.so): the back end of cuda_backend.h that runs on the CPU, so that the
 * kernels can be tested where there is no GPU. It exports the same C API as libfst4j_cuda.so (fst4j_cuda.h; the
 * kernel entry points are the same cuda_ops.c), and Java selects it with -Dfst4j.cuda.emulate=true.
 *
 * What is the same as on the device: the kernel bodies (src/main/cuda/fst4j_bodies.cuh, compiled here by g++ and
 * there by nvcc), the argument structs, the grid (blocks of FST_BLOCK threads, rounded up) and the global index
 * computation (fst_gidx), and every argument check of cuda_ops.c. A launch runs every thread of every block, one
 * after the other, before it returns; in reverse order (last block, last thread first), so that a kernel whose result
 * depends on threads running in index order (a race on the device) does not pass here by luck.
 * What is stricter than the device: "device memory" is a registry of host blocks; every range a kernel is given
 * must lie inside one live block (cuda_ops.c asks fst_backend_owns), copies check their direction (a host->device
 * copy must write a block and read outside all blocks), and fresh blocks are filled with 0xff bytes (NaN) so that a
 * kernel that reads memory nobody wrote shows it.
 * What it cannot show: races between threads (threads run one at a time), timing, and anything of cuBLAS or
 * cuSPARSELt (those calls answer FST_EUNAVAIL here). */
#include "cuda_backend.h"
#include "../cuda/fst4j_bodies.cuh"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

static std::mutex lock;
static std::map<uintptr_t, size_t> blocks;   /* live allocations: base -> size */
static const char *const STATUS = "ok: host emulator (libfst4j_cuda_emu.so runs the kernel bodies of fst4j_kernels.cu on the CPU; no device)";

extern "C" {

int fst_cuda_init(const char *, int) { return FST_OK; }
const char *fst_cuda_status(void) { return STATUS; }
const char *fst_cuda_runtime_path(void) { return ""; }
int fst_backend_ready(void) { return FST_OK; }

int fst_backend_owns(const void *p, size_t bytes) {
    const uintptr_t a = (uintptr_t)p;
    std::lock_guard<std::mutex> g(lock);
    auto it = blocks.upper_bound(a);
    if (it == blocks.begin()) return 0;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

int fst_backend_launch(int k, int64_t nblocks, const void *args) {
    switch (k) {
#define FST_EMULATE(name, Args)                                                         \
    case FST_K_##name: {                                                                \
        const Args &a = *(const Args *)args;                                            \
        for (int64_t b = nblocks - 1; b >= 0; b--)                                      \
            for (int t = FST_BLOCK - 1; t >= 0; t--) k_##name(fst_gidx((unsigned)b, FST_BLOCK, (unsigned)t), a); \
        return FST_OK;                                                                  \
    }
        FST_KERNELS(FST_EMULATE)
    }
    return fst_cuda_fail("emulator: unknown kernel %d", k);
}

int fst_cuda_device_count(int *count) {
    if (!count) return FST_ENULL;
    *count = 1;
    return FST_OK;
}

int fst_cuda_malloc(void **p, size_t bytes) {
    if (!p) return FST_ENULL;
    const size_t size = bytes ? (bytes + 255) / 256 * 256 : 256;   /* cudaMalloc's 256-byte alignment */
    void *m = aligned_alloc(256, size);
    if (!m) return fst_cuda_fail("fst_cuda_malloc: cudaMalloc(%zu): out of memory (emulator)", bytes);
    memset(m, 0xff, size);
    std::lock_guard<std::mutex> g(lock);
    blocks[(uintptr_t)m] = bytes ? bytes : 1;
    *p = m;
    return FST_OK;
}

int fst_cuda_free(void *p) {
    if (!p) return FST_OK;
    {
        std::lock_guard<std::mutex> g(lock);
        auto it = blocks.find((uintptr_t)p);
        if (it == blocks.end()) return fst_cuda_fail("cudaFree: invalid argument (emulator: %p is not a live allocation)", p);
        blocks.erase(it);
    }
    free(p);
    return FST_OK;
}

int fst_cuda_memcpy(void *dst, const void *src, size_t bytes, int kind) {
    if (kind < 1 || kind > 3) return FST_EINVAL;
    if (bytes == 0) return FST_OK;
    if (!dst || !src) return FST_ENULL;
    const bool dev_dst = fst_backend_owns(dst, bytes), dev_src = fst_backend_owns(src, bytes);
    const bool want_dst = kind != 2, want_src = kind != 1;
    if (dev_dst != want_dst || dev_src != want_src)
        return fst_cuda_fail("cudaMemcpy(%zu bytes, kind %d): invalid argument (emulator: destination %s device memory, source %s)",
                             bytes, kind, dev_dst ? "is" : "is not", dev_src ? "is" : "is not");
    memmove(dst, src, bytes);
    return FST_OK;
}

int fst_cuda_memset(void *p, int value, size_t bytes) {
    if (bytes == 0) return FST_OK;
    if (!p) return FST_ENULL;
    if (!fst_backend_owns(p, bytes)) return fst_cuda_fail("cudaMemset(%zu): invalid argument (emulator: not device memory)", bytes);
    memset(p, value, bytes);
    return FST_OK;
}

int fst_cuda_sync(void) { return FST_OK; }

/* ---- not emulated: the vendor libraries ---- */
static int no_vendor(const char *what) {
    snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s is not emulated (host emulator: fst4j kernels only)", what);
    return FST_EUNAVAIL;
}
const char *fst_cuda_blas_status(void) { return "not emulated (host emulator: fst4j kernels only)"; }
const char *fst_cuda_splt_status(void) { return "not emulated (host emulator: fst4j kernels only)"; }
int fst_cuda_sgemm(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t, float, float *, int64_t) {
    return no_vendor("cuBLAS");
}
int fst_cuda_splt_plan(int64_t, int64_t, int64_t, int, int, void **, size_t *) { return no_vendor("cuSPARSELt"); }
int fst_cuda_splt_compress(void *, const void *, void *, void *) { return no_vendor("cuSPARSELt"); }
int fst_cuda_splt_matmul(void *, float, const void *, const void *, float, void *, void *) { return no_vendor("cuSPARSELt"); }
int fst_cuda_splt_plan_free(void *) { return FST_OK; }

}
