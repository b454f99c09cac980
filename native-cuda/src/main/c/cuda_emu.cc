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
 * What it cannot show: races between threads (threads run one at a time), device timing, and cuBLAS SGEMM (it
 * answers FST_EUNAVAIL here). cublasGemmEx (fst_cuda_gemm_ex) and cuSPARSELt (fst_cuda_splt_*) are emulated by host
 * reference loops (fp32 accumulation), stricter than the libraries (see below); events read the host's clock. */
#include "cuda_backend.h"
#include "../cuda/fst4j_bodies.cuh"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <ctime>

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

/* ---- cuBLAS: not emulated except GemmEx (fst_cuda_sgemm stays "not emulated", so that the tensor ops keep
 * testing fst4j's own gemm kernel here) ---- */
static int no_vendor(const char *what) {
    snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s is not emulated (host emulator: fst4j kernels only)", what);
    return FST_EUNAVAIL;
}
const char *fst_cuda_blas_status(void) { return "not emulated (host emulator: fst4j kernels only; fst_cuda_gemm_ex is emulated)"; }
int fst_cuda_sgemm(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *, int64_t, float, float *, int64_t) {
    return no_vendor("cuBLAS SGEMM");
}

static inline float bf16_to_f(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static inline uint16_t f_to_bf16(float f) { uint32_t u; memcpy(&u, &f, 4); return bf16_bits(u); }
/* IEEE half <-> float without _Float16 (which needs a recent libgcc): half -> float exact, float -> half rounded to
 * nearest even (NaN stays NaN, overflow to infinity); checked against GCC's _Float16 conversions for all 65536 halves
 * and a dense sample of floats when written. */
static inline float f16_to_f(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    uint32_t u;
    if (e == 0x1f) u = sign | 0x7f800000u | (m << 13);                  /* inf, NaN (payload kept) */
    else if (e != 0) u = sign | ((e + 112) << 23) | (m << 13);          /* normal: rebias 15 -> 127 */
    else if (m == 0) u = sign;                                            /* +-0 */
    else {                                                                /* subnormal: m * 2^-24, exact in float */
        float f = (float)m * 5.9604644775390625e-8f;
        memcpy(&u, &f, 4);
        u |= sign;
    }
    float f; memcpy(&f, &u, 4); return f;
}
static inline uint16_t f_to_f16(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff));   /* NaN stays NaN (quiet) */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);   /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                      /* below 2^-14: subnormal half (or 0) */
        /* value / 2^-24 rounded to nearest even, as an integer mantissa; the float arithmetic is exact up to the rounding */
        uint32_t m = a >> 23 == 0 ? 0 : ((a & 0x7fffff) | 0x800000);
        int shift = 126 - (int)(a >> 23);   /* value = m * 2^(e - 150); half units 2^-24: m >> (126 - e) */
        if (m == 0 || shift > 24) return sign;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a - 0x38000000u;   /* rebias 127 -> 15 in place */
    r = r + 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
}
/* element e of a matrix of cudaDataType t as float (exact for all three) */
static inline float load(const void *p, int t, int64_t e) {
    if (t == 0) return ((const float *)p)[e];
    const uint16_t h = ((const uint16_t *)p)[e];
    return t == 14 ? bf16_to_f(h) : f16_to_f(h);
}
static inline void store(void *p, int t, int64_t e, float v) {
    if (t == 0) ((float *)p)[e] = v;
    else ((uint16_t *)p)[e] = t == 14 ? f_to_bf16(v) : f_to_f16(v);
}

int fst_cuda_gemm_ex(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int atype, int64_t lda,
                     const void *B, int btype, int64_t ldb, float beta, void *C, int ctype, int64_t ldc, int tf32) {
    int nothing = 0;
    int rc = fst_gemm_ex_check(transA, transB, M, N, K, A, atype, lda, B, btype, ldb, C, ctype, ldc, tf32, &nothing);
    if (rc || nothing) return rc;
    /* fp32 accumulation in k order; tf32 is computed as fp32 (the device rounds the inputs to 10-bit mantissas) */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float acc = 0.0f;
            for (int64_t k = 0; k < K; k++)
                acc += load(A, atype, transA ? k * lda + i : i * lda + k) * load(B, btype, transB ? j * ldb + k : k * ldb + j);
            float v = alpha * acc;
            if (beta != 0.0f) v += beta * load(C, ctype, i * ldc + j);
            store(C, ctype, i * ldc + j, v);
        }
    return FST_OK;
}

/* ---- events: host monotonic clock (launches here finish before they return, so the clock at the call is the
 * time the stream reaches the event) ---- */
struct emu_event { double ms; bool recorded; };
static std::set<emu_event *> events;
static int bad_event(const char *fn, const void *e) {
    snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid resource handle (emulator: %p is not a live event)", fn, e);
    return FST_EINVAL;
}
int fst_cuda_event_create(void **event) {
    if (!event) { snprintf(fst_cuda_err, sizeof fst_cuda_err, "fst_cuda_event_create: null pointer (event)"); return FST_ENULL; }
    emu_event *e = new emu_event{ 0.0, false };
    std::lock_guard<std::mutex> g(lock);
    events.insert(e);
    *event = e;
    return FST_OK;
}
int fst_cuda_event_record(void *event) {
    if (!event) { snprintf(fst_cuda_err, sizeof fst_cuda_err, "fst_cuda_event_record: null pointer (event)"); return FST_ENULL; }
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    std::lock_guard<std::mutex> g(lock);
    auto it = events.find((emu_event *)event);
    if (it == events.end()) return bad_event("fst_cuda_event_record", event);
    (*it)->ms = ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
    (*it)->recorded = true;
    return FST_OK;
}
int fst_cuda_event_elapsed_ms(void *start, void *stop, float *ms) {
    if (!start || !stop || !ms) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "fst_cuda_event_elapsed_ms: null pointer (start, stop or ms)");
        return FST_ENULL;
    }
    std::lock_guard<std::mutex> g(lock);
    auto a = events.find((emu_event *)start), b = events.find((emu_event *)stop);
    if (a == events.end()) return bad_event("fst_cuda_event_elapsed_ms", start);
    if (b == events.end()) return bad_event("fst_cuda_event_elapsed_ms", stop);
    if (!(*a)->recorded || !(*b)->recorded) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "fst_cuda_event_elapsed_ms: invalid resource handle (emulator: %s event was never recorded)",
                 (*a)->recorded ? "the stop" : "the start");
        return FST_EINVAL;
    }
    *ms = (float)((*b)->ms - (*a)->ms);
    return FST_OK;
}
int fst_cuda_event_destroy(void *event) {
    if (!event) return FST_OK;
    std::lock_guard<std::mutex> g(lock);
    auto it = events.find((emu_event *)event);
    if (it == events.end()) return bad_event("fst_cuda_event_destroy", event);
    events.erase(it);
    delete (emu_event *)event;
    return FST_OK;
}

/* ---- cuSPARSELt, emulated (host reference), stricter than the library: the shared up-front checks (types, sizes
 * multiples of 16, 16-byte alignment), A must be 2:4 along K, every pointer must lie in a live device block of at
 * least the size the plan reported (compressed, buffer and workspace are non-zero here and really used), and the
 * compressed A must come from fst_cuda_splt_compress with a plan of the same shape. Compressed layout (ours, opaque
 * to callers): a header, then per row the K/2 kept values (16-bit, in k order), then one byte per group of 4
 * (i0 | i1 << 2, i0 < i1). The buffer holds the per-group non-zero counts while compressing; the workspace holds
 * the float accumulators of the product. ---- */
static const uint64_t SPLT_MAGIC = 0x4c54505354463334ull;   /* "43FTSPTL" */
struct emu_plan { uint64_t magic; int64_t M, N, K; int ab, cd; size_t sizes[3]; };
struct splt_header { uint64_t magic; int64_t M, K; int ab, pad; uint64_t pad2[4]; };
static_assert(sizeof(splt_header) == 64, "header");
static std::set<emu_plan *> plans;

const char *fst_cuda_splt_status(void) { return "ok: emulated cuSPARSELt (host reference)"; }

static emu_plan *live_plan(const char *fn, void *plan) {
    std::lock_guard<std::mutex> g(lock);
    if (plan && plans.count((emu_plan *)plan)) return (emu_plan *)plan;
    snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (emulator: plan %p is not a live plan from fst_cuda_splt_plan)", fn, plan);
    return nullptr;
}

int fst_cuda_splt_plan(int64_t M, int64_t N, int64_t K, int ab_type, int cd_type, void **plan, size_t sizes[3]) {
    int rc = fst_splt_check_plan(M, N, K, ab_type, cd_type);
    if (rc) return rc;
    if (!plan || !sizes) { snprintf(fst_cuda_err, sizeof fst_cuda_err, "fst_cuda_splt_plan: null pointer (plan or sizes)"); return FST_ENULL; }
    emu_plan *p = new emu_plan{ SPLT_MAGIC, M, N, K, ab_type, cd_type, { 0, 0, 0 } };
    p->sizes[0] = sizeof(splt_header) + (size_t)(M * (K / 2) * 2) + (size_t)(M * (K / 4));
    p->sizes[1] = (size_t)(M * (K / 4));
    p->sizes[2] = (size_t)(M * N * 4);
    {
        std::lock_guard<std::mutex> g(lock);
        plans.insert(p);
    }
    memcpy(sizes, p->sizes, sizeof p->sizes);
    *plan = p;
    return FST_OK;
}

int fst_cuda_splt_compress(void *plan, const void *dense_a, void *compressed, void *buffer) {
    const char *fn = "fst_cuda_splt_compress";
    emu_plan *p = live_plan(fn, plan);
    if (!p) return FST_EINVAL;
    const int64_t M = p->M, K = p->K, G = K / 4;
    int rc;
    if ((rc = fst_splt_check_ptr(fn, "dense_a", dense_a, (size_t)(M * K * 2))) != 0
        || (rc = fst_splt_check_ptr(fn, "compressed", compressed, p->sizes[0])) != 0
        || (rc = fst_splt_check_ptr(fn, "buffer", buffer, p->sizes[1])) != 0) return rc;
    const uint16_t *a = (const uint16_t *)dense_a;
    uint8_t *count = (uint8_t *)buffer;
    for (int64_t r = 0; r < M; r++)
        for (int64_t g = 0; g < G; g++) {
            int n = 0;
            for (int j = 0; j < 4; j++) n += (a[r * K + 4 * g + j] & 0x7fff) != 0;   /* +-0 are zero */
            count[r * G + g] = (uint8_t)n;
            if (n > 2) {
                const uint16_t *v = a + r * K + 4 * g;
                snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (A is not 2:4 along K: row %lld, group %lld (columns %lld..%lld) "
                         "has %d non-zero values (16-bit patterns 0x%04x 0x%04x 0x%04x 0x%04x); prune it first)", fn, (long long)r, (long long)g,
                         (long long)(4 * g), (long long)(4 * g + 3), n, v[0], v[1], v[2], v[3]);
                return FST_EINVAL;
            }
        }
    splt_header h{};
    h.magic = SPLT_MAGIC; h.M = M; h.K = K; h.ab = p->ab;
    memcpy(compressed, &h, sizeof h);
    uint16_t *vals = (uint16_t *)((char *)compressed + sizeof h);
    uint8_t *meta = (uint8_t *)(vals + M * (K / 2));
    for (int64_t r = 0; r < M; r++)
        for (int64_t g = 0; g < G; g++) {
            const uint16_t *v = a + r * K + 4 * g;
            int idx[2], n = 0;
            for (int j = 0; j < 4 && n < 2; j++) if ((v[j] & 0x7fff) != 0) idx[n++] = j;
            for (int j = 0; j < 4 && n < 2; j++) if ((v[j] & 0x7fff) == 0 && (n == 0 || idx[0] != j)) idx[n++] = j;   /* pad with zeros */
            if (idx[0] > idx[1]) { int t = idx[0]; idx[0] = idx[1]; idx[1] = t; }
            vals[r * (K / 2) + 2 * g] = v[idx[0]];
            vals[r * (K / 2) + 2 * g + 1] = v[idx[1]];
            meta[r * G + g] = (uint8_t)(idx[0] | idx[1] << 2);
        }
    return FST_OK;
}

int fst_cuda_splt_matmul(void *plan, float alpha, const void *compressed_a, const void *b, float beta, void *c, void *workspace) {
    const char *fn = "fst_cuda_splt_matmul";
    emu_plan *p = live_plan(fn, plan);
    if (!p) return FST_EINVAL;
    const int64_t M = p->M, N = p->N, K = p->K, G = K / 4;
    int rc;
    if ((rc = fst_splt_check_ptr(fn, "compressed_a", compressed_a, p->sizes[0])) != 0
        || (rc = fst_splt_check_ptr(fn, "b", b, (size_t)(K * N * 2))) != 0
        || (rc = fst_splt_check_ptr(fn, "c", c, (size_t)(M * N * fst_type_bytes(p->cd)))) != 0
        || (rc = fst_splt_check_ptr(fn, "workspace", workspace, p->sizes[2])) != 0) return rc;
    splt_header h;
    memcpy(&h, compressed_a, sizeof h);
    if (h.magic != SPLT_MAGIC || h.M != M || h.K != K || h.ab != p->ab) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (emulator: compressed_a does not hold an A of %lld x %lld type %d "
                 "compressed by fst_cuda_splt_compress)", fn, (long long)M, (long long)K, p->ab);
        return FST_EINVAL;
    }
    const uint16_t *vals = (const uint16_t *)((const char *)compressed_a + sizeof h);
    const uint8_t *meta = (const uint8_t *)(vals + M * (K / 2));
    float *acc = (float *)workspace;
    for (int64_t r = 0; r < M; r++) {
        float *row = acc + r * N;
        for (int64_t j = 0; j < N; j++) row[j] = 0.0f;
        for (int64_t g = 0; g < G; g++)   /* kept entries in increasing k: a float sum in k order per element */
            for (int t = 0; t < 2; t++) {
                const int64_t k = 4 * g + ((meta[r * G + g] >> (2 * t)) & 3);
                const float av = load(vals, p->ab, r * (K / 2) + 2 * g + t);
                for (int64_t j = 0; j < N; j++) row[j] += av * load(b, p->ab, k * N + j);
            }
        for (int64_t j = 0; j < N; j++) {
            float v = alpha * row[j];
            if (beta != 0.0f) v += beta * load(c, p->cd, r * N + j);
            store(c, p->cd, r * N + j, v);
        }
    }
    return FST_OK;
}

int fst_cuda_splt_plan_free(void *plan) {
    if (!plan) return FST_OK;
    std::lock_guard<std::mutex> g(lock);
    auto it = plans.find((emu_plan *)plan);
    if (it == plans.end()) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "fst_cuda_splt_plan_free: invalid argument (emulator: %p is not a live plan)", plan);
        return FST_EINVAL;
    }
    plans.erase(it);
    delete (emu_plan *)plan;
    return FST_OK;
}

}
