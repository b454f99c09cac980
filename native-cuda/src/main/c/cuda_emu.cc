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
 * Block kernels (FST_BLOCK_KERNELS: shared memory, barriers, warp shuffles, mma, mma.sp) run each thread as a fiber,
 * below. What it cannot show: races between threads on global memory (threads run one at a time; shared-memory races
 * show through the thread orders, below), device timing, and cuBLAS SGEMM (it answers FST_EUNAVAIL here). cublasGemmEx (fst_cuda_gemm_ex) and cuSPARSELt (fst_cuda_splt_*) are emulated by host
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
#include <atomic>
#include <memory>
#include <utility>
#include <vector>
#include <sys/mman.h>

static std::mutex lock;

/* ======================= block kernels: every thread of a block is a fiber =======================
 * A block runs its threads as fibers on one OS thread: each runs until it reaches a barrier (c.sync()), a warp operation
 * (c.shfl, c.mma16816, c.mma_sp16832) or its end, then the next one runs. When every thread of the block waits at the
 * barrier they all go on; when the 32 lanes of a warp wait at the same warp operation (the same count of them so far,
 * called from the same line of the body) it is carried out for the warp, by a functional model for mma and mma.sp, and
 * they go on. Anything else, when no thread can run, is the error a device would hang or go wrong on
 * (a barrier or warp operation inside divergent code). Between two barriers the warps run one at a time, each as far as
 * it can go, so that a warp that reads shared memory before another has written it (or overwrites it while another still
 * needs it) sees the difference; warps, the lanes of a warp and the blocks run in reverse order by default, or in the
 * order fst_cuda_emu_order sets. Shared memory starts as NaN bytes, and so does a guard past its end that must be intact
 * when the block ends. The context switch saves the callee-saved registers and the floating-point control words only
 * (x86-64 System V), so it costs nanoseconds: a block of a GEMM switches at every tensor-core product. */
#if !defined(__x86_64__)
#error "the emulator's fibers switch stacks with x86-64 code"
#endif
extern "C" void fst_emu_switch(void **save_sp, void *to_sp);
asm(".text\n.p2align 4\n.globl fst_emu_switch\n.hidden fst_emu_switch\n.type fst_emu_switch,@function\nfst_emu_switch:\n"
    "pushq %rbp\npushq %rbx\npushq %r12\npushq %r13\npushq %r14\npushq %r15\n"
    "subq $8, %rsp\nstmxcsr (%rsp)\nfnstcw 4(%rsp)\n"
    "movq %rsp, (%rdi)\nmovq %rsi, %rsp\n"
    "ldmxcsr (%rsp)\nfldcw 4(%rsp)\naddq $8, %rsp\n"
    "popq %r15\npopq %r14\npopq %r13\npopq %r12\npopq %rbx\npopq %rbp\nret\n"
    ".size fst_emu_switch, .-fst_emu_switch\n");

enum { F_READY, F_BARRIER, F_WARP, F_DONE };
enum { OP_SHFL = 1, OP_MMA = 2, OP_MMA_SP = 3, OP_WGMMA = 4, OP_WGMMA_SP = 5, OP_WGMMA_T = 6 };
struct FstFiber {
    void *sp;             /* its stack pointer while it is suspended */
    int state, op;
    int64_t seq;          /* warp operations so far: the 32 lanes must meet at the same one ... */
    int site;             /* ... called from the same line of the body */
    uint32_t val, result; int src;      /* shfl */
    const uint32_t *a, *b; float *d;    /* mma16816, mma_sp16832 */
    uint32_t e;                         /* mma_sp16832's metadata */
    unsigned long long da, db;          /* wgmma64's descriptors (and d) */
    FstCtx ctx;
};
namespace {
const size_t FIBER_STACK = 64 * 1024;
const int SMEM_GUARD = 1024;   /* bytes past a block's shared memory that must stay untouched */
const int MAX_THREADS = 1024;
struct Sched {
    void *sp = nullptr;                 /* the scheduler's own stack pointer while a fiber runs */
    FstFiber fib[MAX_THREADS];
    unsigned char *stacks = nullptr;    /* MAX_THREADS stacks, mapped once per OS thread */
    int cur = -1;
    void (*fn)(FstCtx &, const void *) = nullptr;
    const void *args = nullptr;
    unsigned char *smem = nullptr;
    size_t smem_size = 0;
    ~Sched() {
        if (stacks) munmap(stacks, FIBER_STACK * MAX_THREADS);
        free(smem);
    }
};
thread_local Sched *sched_tls;
std::atomic<int> emu_order{0};
std::atomic<uint64_t> emu_seed{1};

uint64_t xorshift(uint64_t &x) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; return x; }

/* order[i] = the i-th index of n to run under the current order (rng advanced for the shuffled one) */
void run_order(int *order, int n, int mode, uint64_t &rng) {
    for (int i = 0; i < n; i++) order[i] = mode == 1 ? i : n - 1 - i;
    if (mode == 2)
        for (int i = n - 1; i > 0; i--) { const int j = (int)(xorshift(rng) % (uint64_t)(i + 1)); std::swap(order[i], order[j]); }
}
}

extern "C" void fst_emu_fiber_entry(void) {
    Sched &s = *sched_tls;
    FstFiber &f = s.fib[s.cur];
    s.fn(f.ctx, s.args);
    f.state = F_DONE;
    fst_emu_switch(&f.sp, s.sp);
    abort();   /* a finished fiber is never resumed */
}

static void park(FstFiber *f, int state) {
    f->state = state;
    fst_emu_switch(&f->sp, sched_tls->sp);
}

void FstCtx::sync() const { park(fiber, F_BARRIER); }

uint32_t FstCtx::shfl(uint32_t v, int src, int line) const {
    fiber->op = OP_SHFL;
    fiber->val = v;
    fiber->src = src & 31;   /* the device takes srcLane modulo the width */
    fiber->site = line;
    park(fiber, F_WARP);
    fiber->seq++;
    return fiber->result;
}

void FstCtx::mma16816(float d[4], const uint32_t a[4], const uint32_t b[2], int line) const {
    fiber->op = OP_MMA;
    fiber->a = a; fiber->b = b; fiber->d = d;
    fiber->site = line;
    park(fiber, F_WARP);
    fiber->seq++;
}

void FstCtx::mma_sp16832(float d[4], const uint32_t a[4], const uint32_t b[4], uint32_t e, int line) const {
    fiber->op = OP_MMA_SP;
    fiber->a = a; fiber->b = b; fiber->d = d; fiber->e = e;
    fiber->site = line;
    park(fiber, F_WARP);
    fiber->seq++;
}

/* a thread arriving at a warpgroup operation: what it carries, then wait for the group (wg_op carries it out) */
static void wg_arrive(FstFiber *f, int op, float *d, unsigned long long da, unsigned long long db, uint32_t e, int line) {
    f->op = op;
    f->da = da; f->db = db; f->d = d; f->e = e;
    f->site = line;
    park(f, F_WARP);
    f->seq++;
}

void FstCtx::wgmma64(float d[32], unsigned long long da, unsigned long long db, int line) const { wg_arrive(fiber, OP_WGMMA, d, da, db, 0, line); }

void FstCtx::wgmma64_tb(float d[32], unsigned long long da, unsigned long long db, int line) const {
    wg_arrive(fiber, OP_WGMMA_T, d, da, db, 0, line);
}

void FstCtx::wgmma_sp64(float d[32], unsigned long long da, unsigned long long db, uint32_t e, int line) const {
    wg_arrive(fiber, OP_WGMMA_SP, d, da, db, e, line);
}

static inline float bf16_lo(uint32_t r, int hi) { uint32_t u = hi ? r & 0xffff0000u : r << 16; float f; memcpy(&f, &u, 4); return f; }

static const char *op_name(int op) {
    return op == OP_SHFL ? "shuffle" : op == OP_MMA ? "mma" : op == OP_MMA_SP ? "mma.sp" : op == OP_WGMMA ? "wgmma"
         : op == OP_WGMMA_T ? "wgmma (B transposed)" : "wgmma.sp";
}

/* the warp's 32 lanes, all waiting at a warp operation, carry it out: FST_OK, or the error when they wait at different ones */
static int warp_op(const char *name, int64_t b, int w, FstFiber *lane) {
    for (int l = 1; l < 32; l++)
        if (lane[l].op != lane[0].op || lane[l].seq != lane[0].seq || lane[l].site != lane[0].site)
            return fst_cuda_fail("%s: block %lld, warp %d: lanes 0 and %d are at different warp operations (%s #%lld at line %d, "
                                 "%s #%lld at line %d of the body): a warp operation in divergent code (emulator)", name, (long long)b, w, l,
                                 op_name(lane[0].op), (long long)lane[0].seq, lane[0].site, op_name(lane[l].op), (long long)lane[l].seq, lane[l].site);
    if (lane[0].op == OP_SHFL) {
        for (int l = 0; l < 32; l++) lane[l].result = lane[lane[l].src].val;
        return FST_OK;
    }
    /* mma and mma.sp: A's (kept) values V in mma.m16n8k16's A layout, B (16 x 8, or 32 x 8 for mma.sp) from the lanes'
     * fragments, and for each row the k of its 16 values: 0..15 for mma, from the metadata of lanes r = 0, 1 (selector 0)
     * for mma.sp. Each element of D is d + its 16 products in that order, in float. */
    const bool sp = lane[0].op == OP_MMA_SP;
    const int bregs = sp ? 4 : 2;
    float V[16][16], B[32][8], D[32][4];
    int col[16][16];
    for (int l = 0; l < 32; l++) {
        const int q = l >> 2, r = l & 3;
        for (int j = 0; j < 4; j++)
            for (int h = 0; h < 2; h++) V[q + 8 * (j & 1)][2 * r + 8 * (j >> 1) + h] = bf16_lo(lane[l].a[j], h);
        for (int j = 0; j < bregs; j++)
            for (int h = 0; h < 2; h++) B[2 * r + 8 * j + h][q] = bf16_lo(lane[l].b[j], h);
        if (sp && r < 2)
            for (int half = 0; half < 2; half++) {
                const uint32_t m16 = half ? lane[l].e >> 16 : lane[l].e & 0xffffu;
                for (int c = 0; c < 8; c++) {   /* kept column 8 r + c: group c / 2 of the chunk, slot c % 2 */
                    const int idx = (int)((m16 >> (4 * (c / 2) + 2 * (c % 2))) & 3u);
                    col[q + 8 * half][8 * r + c] = 16 * r + 4 * (c / 2) + idx;
                }
            }
    }
    for (int row = 0; row < 16; row++)
        for (int c = 0; c < 16; c++) {
            if (!sp) col[row][c] = c;
            else if (c % 2 == 1 && col[row][c - 1] >= col[row][c])
                return fst_cuda_fail("%s: block %lld, warp %d: mma.sp metadata of row %d, group %d names positions %d and %d: they must "
                                     "increase (emulator; undefined on a device)", name, (long long)b, w, row, c / 2, col[row][c - 1] & 3,
                                     col[row][c] & 3);
        }
    for (int l = 0; l < 32; l++) {
        const int q = l >> 2, r = l & 3;
        for (int x = 0; x < 4; x++) {
            const int row = q + 8 * (x >> 1), cn = 2 * r + (x & 1);
            float acc = lane[l].d[x];
            for (int c = 0; c < 16; c++) acc += V[row][c] * B[col[row][c]][cn];
            D[l][x] = acc;
        }
    }
    for (int l = 0; l < 32; l++)
        for (int x = 0; x < 4; x++) lane[l].d[x] = D[l][x];
    return FST_OK;
}

/* The 128 threads of warpgroup g (warps 4g .. 4g + 3), all waiting at wgmma64 (or wgmma_sp64), carry it out: A (64 x 16:
 * for wgmma.sp the kept values) and B^T (64 x 16, or 64 x 32) read from the block's shared memory through the descriptors (no swizzle: K-major core matrices of 8 rows x 16 bytes,
 * lbo bytes apart along K, sbo bytes apart every 8 rows), and per element of D, d + its 16 products in k order, in float.
 * Each thread holds d[4 j + x] = D[16 w + q + 8 (x >> 1)][8 j + 2 r + (x & 1)] (warp w of the group, lane q * 4 + r). */
static int wg_op(const char *name, int64_t b, int g, FstFiber *th, const unsigned char *smem, int smem_size) {
    for (int l = 1; l < 128; l++)
        if (th[l].op != th[0].op || th[l].seq != th[0].seq || th[l].site != th[0].site || th[l].da != th[0].da || th[l].db != th[0].db)
            return fst_cuda_fail("%s: block %lld, warpgroup %d: threads 0 and %d are at different warpgroup operations or pass different "
                                 "descriptors (%s #%lld at line %d, %s #%lld at line %d of the body; emulator)", name, (long long)b, g, l,
                                 op_name(th[0].op), (long long)th[0].seq, th[0].site, op_name(th[l].op), (long long)th[l].seq, th[l].site);
    /* A: 64 rows of 16 values (the kept ones for wgmma.sp); B^T: 64 rows of kb = 16 (32 for wgmma.sp) values */
    const bool sp = th[0].op == OP_WGMMA_SP;
    const int kb = sp ? 32 : 16;
    float A[64][16], Bt[64][32];
    for (int which = 0; which < 2; which++) {
        const unsigned long long desc = which ? th[0].db : th[0].da;
        const int64_t start = (int64_t)(desc & 0x3fff) << 4, lbo = (int64_t)((desc >> 16) & 0x3fff) << 4, sbo = (int64_t)((desc >> 32) & 0x3fff) << 4;
        const int kn = which ? kb : 16;
        for (int m = 0; m < 64; m++)
            for (int k = 0; k < kn; k++) {
                /* B MN-major (wgmma's imm-trans-b, modelled as this project reads the PTX ISA's canonical no-swizzle layout:
                 * a core matrix is 8 rows along K of 16 bytes = 8 consecutive n; lbo between core matrices along K, sbo along
                 * N; CudaBlockKernelsTest.wgmmaTransposedBProbe asks a device which of lbo / sbo it takes along K) */
                const bool mn = which && th[0].op == OP_WGMMA_T;
                const int64_t off = mn ? start + (m / 8) * sbo + (k / 8) * lbo + (k % 8) * 16 + (m % 8) * 2
                                       : start + (m / 8) * sbo + (k / 8) * lbo + (m % 8) * 16 + (k % 8) * 2;
                if (off < 0 || off + 2 > smem_size)
                    return fst_cuda_fail("%s: block %lld, warpgroup %d: %s's %s descriptor (start %lld, lbo %lld, sbo %lld) reaches byte %lld "
                                         "of %d bytes of shared memory (emulator)", name, (long long)b, g, op_name(th[0].op), which ? "B" : "A",
                                         (long long)start, (long long)lbo, (long long)sbo, (long long)off, smem_size);
                uint16_t v;
                memcpy(&v, smem + off, 2);
                (which ? Bt[m][k] : A[m][k]) = bf16_lo((uint32_t)v, 0);
            }
    }
    /* the k of each row's 16 values: 0..15, or for wgmma.sp from each warp's metadata as mma.sp.m16n8k32's (lanes r = 0, 1:
     * the low half row q's positions for kept columns 8 r .. 8 r + 7, the high half row q + 8's) */
    int col[64][16];
    for (int row = 0; row < 64; row++)
        for (int c = 0; c < 16; c++) col[row][c] = c;
    if (sp) {
        for (int l = 0; l < 128; l++) {
            const int w = l >> 5, q = (l & 31) >> 2, r = l & 3;
            if (r >= 2) continue;
            for (int half = 0; half < 2; half++) {
                const uint32_t m16 = half ? th[l].e >> 16 : th[l].e & 0xffffu;
                for (int c = 0; c < 8; c++)
                    col[16 * w + q + 8 * half][8 * r + c] = 16 * r + 4 * (c / 2) + (int)((m16 >> (4 * (c / 2) + 2 * (c % 2))) & 3u);
            }
        }
        for (int row = 0; row < 64; row++)
            for (int c = 1; c < 16; c += 2)
                if (col[row][c - 1] >= col[row][c])
                    return fst_cuda_fail("%s: block %lld, warpgroup %d: wgmma.sp metadata of row %d, group %d names positions %d and %d: they "
                                         "must increase (emulator; undefined on a device)", name, (long long)b, g, row, c / 2, col[row][c - 1] & 3,
                                         col[row][c] & 3);
    }
    std::vector<float> D(128 * 32);
    for (int l = 0; l < 128; l++) {
        const int w = l >> 5, q = (l & 31) >> 2, r = l & 3;
        for (int j = 0; j < 8; j++)
            for (int x = 0; x < 4; x++) {
                const int row = 16 * w + q + 8 * (x >> 1), cn = 8 * j + 2 * r + (x & 1);
                float acc = th[l].d[4 * j + x];
                for (int c = 0; c < 16; c++) acc += A[row][c] * Bt[cn][col[row][c]];
                D[(size_t)l * 32 + 4 * j + x] = acc;
            }
    }
    for (int l = 0; l < 128; l++)
        for (int i = 0; i < 32; i++) th[l].d[i] = D[(size_t)l * 32 + i];
    return FST_OK;
}

static int run_blocks(int k, int64_t nblocks, int threads, int smem, const void *args) {
    const char *name = fst_cuda_kernel_name(k);
    if (threads <= 0 || threads > MAX_THREADS || threads % 32 != 0 || smem < 0)
        return fst_cuda_fail("%s: %d threads per block, %d bytes of shared memory (emulator)", name, threads, smem);
    if (!sched_tls) {
        static thread_local std::unique_ptr<Sched> owner;
        owner.reset(new Sched());
        sched_tls = owner.get();
    }
    Sched &s = *sched_tls;
    if (!s.stacks) {
        void *m = mmap(nullptr, FIBER_STACK * MAX_THREADS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) return fst_cuda_fail("%s: no memory for the emulator's fiber stacks", name);
        s.stacks = (unsigned char *)m;
    }
    if ((size_t)smem > s.smem_size) {
        free(s.smem);
        s.smem = (unsigned char *)aligned_alloc(64, ((size_t)smem + SMEM_GUARD + 63) / 64 * 64);
        s.smem_size = s.smem ? (size_t)smem : 0;
        if (!s.smem) return fst_cuda_fail("%s: no memory for %d bytes of shared memory (emulator)", name, smem);
    }
    switch (k) {
#define FST_EMU_THUNK(kname, Args, T, S) \
    case FST_K_##kname: s.fn = [](FstCtx &c, const void *p) { kb_##kname(c, *(const Args *)p); }; break;
        FST_BLOCK_KERNELS(FST_EMU_THUNK)
    default: return fst_cuda_fail("emulator: unknown block kernel %d", k);
    }
    s.args = args;
    static std::once_flag from_env;   /* FST4J_CUDA_EMU_ORDER=order[:seed] sets the order from the start (whole test suites) */
    std::call_once(from_env, [] {
        const char *e = getenv("FST4J_CUDA_EMU_ORDER");
        if (e && *e >= '0' && *e <= '2') {
            const char *colon = strchr(e, ':');
            fst_cuda_emu_order(*e - '0', colon ? atoll(colon + 1) : 1);
        }
    });
    const int mode = emu_order.load();
    uint64_t rng = emu_seed.fetch_add(0x9e3779b97f4a7c15ull) | 1;
    unsigned mxcsr; unsigned short fpucw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    std::vector<int> border((size_t)nblocks);
    for (int64_t i = 0; i < nblocks; i++) border[(size_t)i] = (int)(mode == 1 ? i : nblocks - 1 - i);
    if (mode == 2)
        for (int64_t i = nblocks - 1; i > 0; i--) std::swap(border[(size_t)i], border[(size_t)(xorshift(rng) % (uint64_t)(i + 1))]);
    const int nwarps = threads / 32;
    std::vector<int> order(32), worder((size_t)nwarps);
    for (int64_t bi = 0; bi < nblocks; bi++) {
        const int64_t b = border[(size_t)bi];
        memset(s.smem, 0xff, (size_t)smem + SMEM_GUARD);   /* unwritten shared memory reads as NaN, and so does the guard past it */
        for (int t = 0; t < threads; t++) {
            FstFiber &f = s.fib[t];
            unsigned char *top = s.stacks + FIBER_STACK * (size_t)(t + 1);
            void **sp = (void **)(top - 72);   /* as if fst_emu_switch had saved it: control words, 6 registers, return address */
            memset(sp, 0, 72);
            memcpy(sp, &mxcsr, 4);
            memcpy((char *)sp + 4, &fpucw, 2);
            sp[7] = (void *)&fst_emu_fiber_entry;
            f.sp = sp;
            f.state = F_READY;
            f.seq = 0;
            f.ctx = FstCtx{s.smem, b, t, &f};
        }
        for (;;) {
            /* warp by warp, each as far as it can go (through its warp operations) before the next starts: a warp that
             * reads shared memory another warp has not written yet, or overwrites what another still reads, sees it */
            bool ran = false;
            run_order(worder.data(), nwarps, mode, rng);
            for (int wi = 0; wi < nwarps; wi++) {
                const int w = worder[(size_t)wi];
                FstFiber *lane = &s.fib[w * 32];
                for (;;) {
                    run_order(order.data(), 32, mode, rng);
                    for (int i = 0; i < 32; i++) {
                        const int t = w * 32 + order[(size_t)i];
                        if (s.fib[t].state != F_READY) continue;
                        s.cur = t;
                        fst_emu_switch(&s.sp, s.fib[t].sp);
                        ran = true;
                    }
                    int n = 0;
                    for (int l = 0; l < 32; l++) n += lane[l].state == F_WARP;
                    if (n != 32) break;
                    bool wg = false;   /* a warpgroup operation waits for the group's other warps (below) */
                    for (int l = 0; l < 32; l++) wg = wg || lane[l].op == OP_WGMMA || lane[l].op == OP_WGMMA_SP || lane[l].op == OP_WGMMA_T;
                    if (wg) break;
                    if (int rc = warp_op(name, b, w, lane)) return rc;
                    for (int l = 0; l < 32; l++) lane[l].state = F_READY;
                }
            }
            /* warpgroups (4 warps) whose 128 threads all wait at wgmma: carried out now */
            for (int g = 0; g < nwarps / 4; g++) {
                FstFiber *th = &s.fib[g * 128];
                bool all = true;
                for (int l = 0; l < 128 && all; l++)
                    all = th[l].state == F_WARP && (th[l].op == OP_WGMMA || th[l].op == OP_WGMMA_SP || th[l].op == OP_WGMMA_T);
                if (!all) continue;
                if (int rc = wg_op(name, b, g, th, s.smem, smem)) return rc;
                for (int l = 0; l < 128; l++) th[l].state = F_READY;
                ran = true;
            }
            int waiting = 0, at_warp = 0, done = 0;
            for (int t = 0; t < threads; t++) {
                waiting += s.fib[t].state == F_BARRIER;
                at_warp += s.fib[t].state == F_WARP;
                done += s.fib[t].state == F_DONE;
            }
            if (done == threads) {
                for (int i = 0; i < SMEM_GUARD; i++)
                    if (s.smem[smem + i] != 0xff)
                        return fst_cuda_fail("%s: block %lld wrote past its %d bytes of shared memory (byte %d after the end; emulator)",
                                             name, (long long)b, smem, i);
                break;
            }
            if (waiting == threads) {
                for (int t = 0; t < threads; t++) s.fib[t].state = F_READY;
                continue;
            }
            if (!ran)
                return fst_cuda_fail("%s: block %lld: %d threads wait at a barrier, %d at a warp operation, %d have returned: a barrier or "
                                     "warp operation that not every thread of the block (or lane of the warp) reaches (emulator; a device "
                                     "would hang or compute garbage)", name, (long long)b, waiting, at_warp, done);
        }
    }
    return FST_OK;
}

extern "C" int fst_cuda_emu_order(int order, int64_t seed) {
    if (order < 0 || order > 2) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "fst_cuda_emu_order: invalid argument (order %d: 0 reverse, 1 forward, 2 shuffled)", order);
        return FST_EINVAL;
    }
    emu_order.store(order);
    emu_seed.store((uint64_t)seed * 0x9e3779b97f4a7c15ull + 1);
    return FST_OK;
}
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

int fst_backend_emulated(void) { return 1; }

int fst_backend_launch(int k, int64_t nblocks, int threads, int smem, const void *args) {
    if (k >= FST_N_THREAD_KERNELS) return run_blocks(k, nblocks, threads, smem, args);
    (void)threads; (void)smem;
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
    /* in the kernel profile as on the device (cuda.c), so that a test can see what an op copies between host and device */
    static const char *const kinds[4] = { "", "h2d", "d2h", "d2d" };
    const double t0 = fst_kprof_begin();
    memmove(dst, src, bytes);
    fst_kprof_end("cudaMemcpy", kinds[kind], (int64_t)bytes, t0);
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
    int rc = fst_gemm_ex_check("fst_cuda_gemm_ex", transA, transB, M, N, K, A, atype, lda, B, btype, ldb, C, ctype, ldc, tf32, &nothing);
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

int fst_cuda_gemm_ex_batched(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int atype,
                             int64_t lda, int64_t strideA, const void *B, int btype, int64_t ldb, int64_t strideB, float beta,
                             void *C, int ctype, int64_t ldc, int64_t strideC, int64_t batch, int tf32) {
    int nothing = 0;
    int rc = fst_gemm_ex_batched_check(transA, transB, M, N, K, A, atype, lda, strideA, B, btype, ldb, strideB, C, ctype, ldc, strideC,
                                       batch, tf32, &nothing);
    if (rc || nothing) return rc;
    const int ea = fst_type_bytes(atype), ec = fst_type_bytes(ctype);
    for (int64_t b = 0; b < batch && rc == FST_OK; b++)   /* each product as fst_cuda_gemm_ex computes it */
        rc = fst_cuda_gemm_ex(transA, transB, M, N, K, alpha, (const char *)A + b * strideA * ea, atype, lda,
                              (const char *)B + b * strideB * ea, btype, ldb, beta, (char *)C + b * strideC * ec, ctype, ldc, tf32);
    return rc;
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
