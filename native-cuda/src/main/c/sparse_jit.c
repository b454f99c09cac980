/* The AVX-512 2:4 product with each kept value's operand compiled into the code (fst_spmm24 and fst_spmm24_lowered
 * for small S and wide B; sparse.c decides where).
 *
 * Why: the register kernel of sparse_kernel.c chooses a kept value's B row at run time, so every FMA takes its B
 * operand from memory: one 512-bit load per multiply-add. Here each register block of JR rows holds the four B rows of
 * a group in registers (two vectors each: 32 columns), and the code for that block has one FMA per kept value and
 * vector whose register operand is the B row its 2-bit index names, the value broadcast from memory inside the FMA:
 * 8 vector loads per 48 FMAs. The indices are data, so the code is written at run time from the metadata (about 10
 * bytes per kept value and vector); the calling thread keeps it for its next call with the same S.
 *
 * Layout: K in blocks of JKB rows (16 groups), rows in register blocks of JR, columns in blocks. B is read three ways:
 * - implicit lowering: per column block (JW) and K block, B[k0:k0+JKB, jn:jn+JW] is staged into buf (row stride JW
 *   floats, zeros past K and past the columns);
 * - a materialised B in place (JWD columns per block, the next K block prefetched from inside the code);
 * - a stride-1 "same" convolution from a zero-padded copy of each image, each tap at its own displacement
 *   (fst_jit24_conv_range): no lowering at all.
 * Every register block's code runs over the block's 32-column pieces, accumulating into a tile [rows][columns] that
 * holds the running sums over K (loaded back for every K block after the first); after the last K block the tile goes
 * to C (alpha, beta). Every element of C is one chain of FMAs in k order, independent of the column blocking and of how
 * threads split the columns, so the bits do not depend on the thread count.
 *
 * The values are repacked per register block as [group][row][2], so that each FMA's displacement fits a byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <errno.h>
#include <cpuid.h>
#include <pthread.h>
#include <immintrin.h>
#include "fst4j.h"
#include "alloc.h"
#include "lowering.h"
#include "sparse_jit.h"

#define JR 12                 /* rows per register block: 24 accumulators + 8 B registers = all 32 */
#ifndef JKB
#define JKB 64                /* K rows per block (16 groups) */
#endif
#ifndef JW
#define JW 256                /* columns per block (8 pieces of 32) */
#endif
#ifndef JWD
#define JWD 512               /* columns per block when the code reads a materialised B in place (no staging buffer) */
#endif
#define JTILE (256 << 10)     /* bytes of tile per pass (rows x columns per block): larger S take several row slabs */

struct fst_jit24 {
    int64_t M, K, Kp, G, nrb, nkb;
    int64_t ldb;              /* > 0: the code reads B in place, rows ldb floats apart; 0: from the staging buffer */
    int64_t jw;               /* columns per block: the tile's row stride */
    /* a convolution read straight from a zero-padded copy of x (fst_jit24_get_conv): its geometry */
    int conv;
    fst_lowering low;         /* x not kept: each call passes its own */
    int64_t hpad, wpad, rp, pieces;   /* padded plane, output rows per 32-column piece (1 or 2), pieces per image */
    float *vals;              /* repacked values: register block rb at voff[rb], [g][row][2] */
    int64_t *gord;            /* the groups in the order the code takes them (NULL: 0, 1, 2, ...) */
    int64_t *voff;
    uint8_t *code;            /* all blocks' code, in the calling thread's mapping (its executable view) */
    uint64_t gen;             /* its number in code_gen's count (sync_code) */
    uint32_t *entry;          /* [rb][kb] offset into code */
};

/* ---- a few AVX-512 and x86-64 instructions ---- */
typedef struct { uint8_t *p; size_t n; } emitter;
static void b1(emitter *e, uint8_t x) { e->p[e->n++] = x; }
static void b4(emitter *e, int32_t x) { memcpy(e->p + e->n, &x, 4); e->n += 4; }

/* EVEX prefix, opcode and ModRM for a 512-bit op: reg (0-31), vvvv (0-31, 0 when unused), and either a vector register
 * rm (mem == 0) or a memory operand [base + disp] (base a general register other than rsp/rbp/r12/r13), whose one-byte
 * displacement is scaled by n (EVEX disp8*N: 64 for a full vector, 4 for a broadcast float). */
static void evex(emitter *e, int map, int pp, int op, int reg, int vvvv, int mem, int rm, int32_t disp, int bcast, int n) {
    const int R = (reg >> 3) & 1, R2 = (reg >> 4) & 1, B = (rm >> 3) & 1, X = mem ? 0 : (rm >> 4) & 1;
    b1(e, 0x62);
    b1(e, (uint8_t)((!R << 7) | (!X << 6) | (!B << 5) | (!R2 << 4) | map));
    b1(e, (uint8_t)((0 << 7) | ((~vvvv & 15) << 3) | (1 << 2) | pp));
    b1(e, (uint8_t)((2 << 5) | (bcast << 4) | (!((vvvv >> 4) & 1) << 3)));
    b1(e, (uint8_t)op);
    if (!mem) { b1(e, (uint8_t)(0xC0 | ((reg & 7) << 3) | (rm & 7))); return; }
    if (disp == 0) b1(e, (uint8_t)(((reg & 7) << 3) | (rm & 7)));
    else if (disp % n == 0 && disp / n >= -128 && disp / n <= 127) {
        b1(e, (uint8_t)(0x40 | ((reg & 7) << 3) | (rm & 7)));
        b1(e, (uint8_t)(int8_t)(disp / n));
    } else {
        b1(e, (uint8_t)(0x80 | ((reg & 7) << 3) | (rm & 7)));
        b4(e, disp);
    }
}
enum { RCX = 1, RDX = 2, RSI = 6, RDI = 7, R8 = 8, R10 = 10, R11 = 11 };
static void vload(emitter *e, int z, int base, int32_t d) { evex(e, 1, 0, 0x10, z, 0, 1, base, d, 0, 64); }    /* vmovups */
static void vstore(emitter *e, int z, int base, int32_t d) { evex(e, 1, 0, 0x11, z, 0, 1, base, d, 0, 64); }   /* vmovups */
static void vzero(emitter *e, int z) { evex(e, 1, 1, 0xEF, z, z, 0, z, 0, 0, 0); }                            /* vpxord */
/* vfmadd231ps zacc, zb, dword [base + d]{1to16} */
static void vfma_bcast(emitter *e, int zacc, int zb, int base, int32_t d) { evex(e, 2, 1, 0xB8, zacc, zb, 1, base, d, 1, 4); }
static void rex_w(emitter *e, int reg, int rm) { b1(e, (uint8_t)(0x48 | ((reg >> 3) << 2) | (rm >> 3))); }
static void mov_rr(emitter *e, int dst, int src) { rex_w(e, src, dst); b1(e, 0x89); b1(e, (uint8_t)(0xC0 | ((src & 7) << 3) | (dst & 7))); }
static void add_ri(emitter *e, int dst, int32_t imm) {
    rex_w(e, 0, dst);
    if (imm >= -128 && imm <= 127) { b1(e, 0x83); b1(e, (uint8_t)(0xC0 | (dst & 7))); b1(e, (uint8_t)(int8_t)imm); }
    else { b1(e, 0x81); b1(e, (uint8_t)(0xC0 | (dst & 7))); b4(e, imm); }
}
static void test_rr(emitter *e, int r) { rex_w(e, r, r); b1(e, 0x85); b1(e, (uint8_t)(0xC0 | ((r & 7) << 3) | (r & 7))); }
static void dec_r(emitter *e, int r) { rex_w(e, 0, r); b1(e, 0xFF); b1(e, (uint8_t)(0xC8 | (r & 7))); }
static size_t jcc32(emitter *e, int cc) { b1(e, 0x0F); b1(e, (uint8_t)(0x80 | cc)); b4(e, 0); return e->n; }   /* returns the end, to patch */
static size_t jmp32(emitter *e) { b1(e, 0xE9); b4(e, 0); return e->n; }
static void patch(emitter *e, size_t end, size_t target) { int32_t rel = (int32_t)((int64_t)target - (int64_t)end); memcpy(e->p + end - 4, &rel, 4); }

/* Upper bound of one block's code: fixed part, then per group 8 loads, 2 * 2 * rows FMAs and two adds. */
static size_t block_bound(int rows, int64_t groups) { return 256 + (size_t)rows * 2 * 2 * 11 + (size_t)groups * (16 * 11 + (size_t)rows * 4 * 11 + 16); }

static void prefetch_t1(emitter *e, int base, int32_t d) {   /* prefetcht1 [base + d32] */
    if (base >= 8) b1(e, 0x41);
    b1(e, 0x0F); b1(e, 0x18); b1(e, (uint8_t)(0x80 | (2 << 3) | (base & 7))); b4(e, d);
}

/* The four FMAs of one row of a register block and one group (two kept values, two vectors each) depend only on the
 * row r and the group's 4-bit index of that row: their bytes are written once per process (6 or 7 bytes each) and copied
 * per row and group instead of emitted byte by byte. The same bytes as vfma_bcast writes (it writes the templates). */
typedef struct { uint8_t n, b[31]; } fma4;
static fma4 fma_tmpl[JR][16];
static pthread_once_t tmpl_once = PTHREAD_ONCE_INIT;
static void tmpl_init(void) {
    for (int r = 0; r < JR; r++)
        for (int nib = 0; nib < 16; nib++) {
            emitter t = { fma_tmpl[r][nib].b, 0 };
            for (int s = 0; s < 2; s++)
                for (int j = 0; j < 2; j++) vfma_bcast(&t, 2 * r + j, 24 + 2 * (s ? nib >> 2 : nib & 3) + j, RSI, (2 * r + s) * 4);
            fma_tmpl[r][nib].n = (uint8_t)t.n;
        }
}

/* Where a block's code finds row k of B, vector j (of the piece's two) relative to the piece's base register:
 * - rows bstride bytes apart and vectors 64 bytes apart (a matrix or the staging buffer; the base then advances four
 *   rows per group);
 * - or, for a convolution read from a padded x, tap (ky, kx) of channel c at koff(k), the vectors vstride apart (64:
 *   the two halves of one output row; one padded row: two output rows).
 * pf != 0: after each group's loads, prefetch the two lines of each of its four rows in the block that comes next (pf
 * bytes further on). The first register block's code does it for the whole K block, spread over its groups, so that a
 * materialised B read in place arrives from memory while the previous block computes. */
typedef struct {
    int32_t bstride, vstride, piece;   /* piece: bytes the base advances per piece */
    int64_t pf;
    const fst_jit24 *conv;             /* non-NULL: taps of a convolution */
} baddr;
static int32_t koff(const fst_jit24 *j, int64_t k) {
    int64_t ch, tap;
    fst_lowering_rc(&j->low, k, &ch, &tap);
    return (int32_t)(((ch * j->hpad + tap / j->low.kw) * j->wpad + tap % j->low.kw) * 4);
}

/* Code of register block (rows r0.., rows of them) and K block (groups g0..g0+ng):
 *   void f(const float *base, const float *vals, float *tile, int64_t pieces, int64_t accumulate)
 * for each of `pieces` 32-column pieces (base advancing ba->piece bytes, tile 32 floats): acc = accumulate ? tile : 0;
 * over the groups, acc[r] += v[g][r][s] * B[4 (g - g0) + t(r, g, s)]; tile = acc. */
static void emit_block(emitter *e, const uint32_t *meta, int64_t ldm, int64_t r0, int rows, int64_t g0, int64_t ng,
                       const baddr *ba, int32_t tstride, int64_t K, const int64_t *gord) {
    const int64_t pf = ba->pf;
    mov_rr(e, R10, RDI);
    mov_rr(e, R11, RSI);
    const size_t top = e->n;
    mov_rr(e, RDI, R10);
    mov_rr(e, RSI, R11);
    test_rr(e, R8);
    const size_t to_zero = jcc32(e, 0x4);   /* jz: the first K block starts from zeros */
    for (int r = 0; r < rows; r++) for (int j = 0; j < 2; j++) vload(e, 2 * r + j, RDX, r * tstride + 64 * j);
    const size_t to_body = jmp32(e);
    patch(e, to_zero, e->n);
    for (int z = 0; z < 2 * rows; z++) vzero(e, z);
    patch(e, to_body, e->n);
    for (int64_t i = g0; i < g0 + ng; i++) {
        const int64_t g = gord ? gord[i] : i;
        /* rows of B past K (the padded positions of the last group) are never read: a kept index there stands for a
         * zero, so its FMA is left out */
        for (int t = 0; t < 4 && 4 * g + t < K; t++)
            for (int j = 0; j < 2; j++)
                vload(e, 24 + 2 * t + j, RDI, ba->conv ? koff(ba->conv, 4 * g + t) + j * ba->vstride : t * ba->bstride + 64 * j);
        if (pf) for (int t = 0; t < 4; t++) for (int j = 0; j < 2; j++) prefetch_t1(e, RDI, (int32_t)(pf + t * ba->bstride + 64 * j));
        const uint32_t *mg = meta + r0 * ldm + g / 8;
        const int shift = 4 * (int)(g % 8);
        if (4 * g + 3 < K) {   /* a whole group: the row's four FMAs from the template (block_bound leaves room for 31 bytes) */
            for (int r = 0; r < rows; r++) {
                const fma4 *f = &fma_tmpl[r][(mg[r * ldm] >> shift) & 15u];
                memcpy(e->p + e->n, f->b, sizeof f->b);
                e->n += f->n;
            }
        } else for (int r = 0; r < rows; r++) {
            const uint32_t nib = (mg[r * ldm] >> shift) & 15u;
            for (int s = 0; s < 2; s++) {
                const int t = s ? (int)(nib >> 2) : (int)(nib & 3u);
                if (4 * g + t < K)
                    for (int j = 0; j < 2; j++) vfma_bcast(e, 2 * r + j, 24 + 2 * t + j, RSI, (2 * r + s) * 4);
            }
        }
        if (!ba->conv) add_ri(e, RDI, 4 * ba->bstride);
        add_ri(e, RSI, rows * 2 * 4);
    }
    for (int r = 0; r < rows; r++) for (int j = 0; j < 2; j++) vstore(e, 2 * r + j, RDX, r * tstride + 64 * j);
    add_ri(e, R10, ba->piece);
    add_ri(e, RDX, 32 * 4);
    dec_r(e, RCX);
    patch(e, jcc32(e, 0x5), top);           /* jnz top */
    b1(e, 0xC5); b1(e, 0xF8); b1(e, 0x77);  /* vzeroupper */
    b1(e, 0xC3);                            /* ret */
}

/* The code lives in one mapping per calling thread, kept between calls and grown as needed: a fresh mapping per call
 * cost ~20 % of a 128 x 6272 x 1152 product in page faults. A call writes it (writable view), runs it (executable view) and is
 * done with it before the thread's next call, so one mapping per thread suffices. The thread also keeps the last S it
 * compiled (a copy of its values and metadata): the training step multiplies one weight by several column blocks of a
 * layer in a row, and writing the code anew for each cost more than it saved. All of it is freed when the thread ends. */
typedef struct {
    uint8_t *p, *x; size_t cap;   /* the code's pages mapped twice: written through p, run through x */
    float *scratch; size_t scratch_floats;
    fst_jit24 *last; float *vkey; uint32_t *mkey;   /* the code now in p, and the S it was written for */
} code_cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static void jit_free(fst_jit24 *j);
static void cache_forget(code_cache *c) { jit_free(c->last); free(c->vkey); free(c->mkey); c->last = NULL; c->vkey = NULL; c->mkey = NULL; }
/* Lets go of both views of the code pages (none left afterwards). */
static void cache_unmap(code_cache *c) {
    if (c->p) { munmap(c->p, c->cap); munmap(c->x, c->cap); }
    c->p = c->x = NULL;
    c->cap = 0;
}
static void cache_drop(void *v) {
    code_cache *c = v;
    cache_forget(c);
    cache_unmap(c);
    free(c->scratch);
    free(c);
}
/* In a child of fork() the code pages are still shared with the parent (MAP_SHARED): the child's thread lets go of its
 * view of them (and of the S they were written for) so that its next S is written into pages of its own. */
static void cache_after_fork(void) {
    code_cache *c = pthread_getspecific(cache_key);
    if (!c) return;
    cache_forget(c);
    cache_unmap(c);
}
static void cache_init(void) {
    (void)pthread_key_create(&cache_key, cache_drop);
    (void)pthread_atfork(NULL, NULL, cache_after_fork);
}
static code_cache *thread_cache(void) {
    (void)pthread_once(&cache_once, cache_init);
    code_cache *c = pthread_getspecific(cache_key);
    if (!c) {
        if (!(c = fst_calloc(1, sizeof *c))) return NULL;
        if (pthread_setspecific(cache_key, c) != 0) { free(c); return NULL; }
    }
    return c;
}
/* The calling thread's scratch (tile and staging buffer, 64-byte aligned), kept between calls for the same reason as
 * the code: a fresh 128-320 KB allocation per call is a fresh mapping, and its page faults cost ~15 % of a call. */
static float *thread_scratch(size_t floats) {
    code_cache *c = thread_cache();
    if (!c) return NULL;
    if (c->scratch_floats < floats) {
        free(c->scratch);
        c->scratch = fst_aligned_alloc(64, (floats * 4 + 63) & ~(size_t)63);
        c->scratch_floats = c->scratch ? floats : 0;
    }
    return c->scratch;
}
/* Room for the code: its pages mapped twice, writable and executable, so that writing a new S's code changes no page
 * protection: switching one mapping between the two (mprotect, twice per S) flushed the other threads' TLBs by
 * interrupts, costly in a VM. A new 64 x 576 S (ResNet-18's 64-channel Eq. 2, 4 images of 32 x 32) cost 15-18 ns per
 * kept value more than the same S on 2 threads (7-12 on one); with the templates above and this, 9-10 (5.5-6): NOTES v30.
 * Returns the writable view (NULL: no executable memory here) and sets *exec to the executable one. */
#ifdef MFD_EXEC
#define FST_MFD_EXEC MFD_EXEC
#else
#define FST_MFD_EXEC 0x0010U   /* linux/memfd.h from 6.3 */
#endif
static int exec_denied;   /* set once memfd_create or an executable mapping was refused: no retry on every call */
static uint8_t *writable_code(size_t bytes, uint8_t **exec) {
    code_cache *c = thread_cache();
    if (!c || __atomic_load_n(&exec_denied, __ATOMIC_RELAXED)) return NULL;
    if (c->cap < bytes) {
        cache_unmap(c);
        const size_t cap = (bytes + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
        /* executable on purpose (kernels from 6.3 under vm.memfd_noexec = 1 make it non-executable otherwise); older
         * kernels do not know the flag (EINVAL) */
        int fd = memfd_create("fst4j-jit", MFD_CLOEXEC | FST_MFD_EXEC);
        if (fd < 0 && errno == EINVAL) fd = memfd_create("fst4j-jit", MFD_CLOEXEC);
        if (fd < 0) { if (errno != EMFILE && errno != ENFILE && errno != ENOMEM) __atomic_store_n(&exec_denied, 1, __ATOMIC_RELAXED); return NULL; }
        void *w = ftruncate(fd, (off_t)cap) == 0 ? mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
        void *x = w == MAP_FAILED ? MAP_FAILED : mmap(NULL, cap, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
        const int denied = w != MAP_FAILED && x == MAP_FAILED && (errno == EPERM || errno == EACCES);
        close(fd);
        if (x == MAP_FAILED) {
            if (w != MAP_FAILED) munmap(w, cap);
            if (denied) __atomic_store_n(&exec_denied, 1, __ATOMIC_RELAXED);   /* e.g. vm.memfd_noexec, SELinux, seccomp */
            return NULL;
        }
        c->p = w; c->x = x; c->cap = cap;
    }
    *exec = c->x;
    return c->p;
}

/* Code written since this thread last serialised its instruction stream is run only after it does so again (SERIALIZE
 * where the CPU has it, else CPUID): the other threads of a call run the code the calling thread wrote, and x86 asks a
 * core to serialise before running code another core modified. code_gen counts the codes written. */
static uint64_t code_gen;
static _Thread_local uint64_t code_synced;
static int has_serialize = -1;   /* CPUID.(7,0):EDX[14], read once (CPUID leaves a VM) */
static void sync_code(const fst_jit24 *j) {
    if (j->gen <= code_synced) return;
    const uint64_t g = __atomic_load_n(&code_gen, __ATOMIC_ACQUIRE);
    int ser = __atomic_load_n(&has_serialize, __ATOMIC_RELAXED);
    unsigned a, b, c, d;
    if (ser < 0) {
        ser = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 14));   /* these CPUIDs serialise too */
        __atomic_store_n(&has_serialize, ser, __ATOMIC_RELAXED);
    } else if (ser) {
        __asm__ volatile(".byte 0x0f, 0x01, 0xe8" ::: "memory");   /* serialize */
    } else {
        unsigned l = 0, z = 0;
        __asm__ volatile("cpuid" : "+a"(l), "=b"(b), "+c"(z), "=d"(d) :: "memory");
    }
    code_synced = g;
}

static fst_jit24 *jit_build(int64_t M, int64_t K, const float *values, const uint32_t *meta, int64_t ldb,
                            const fst_lowering *conv) {
    fst_jit24 *j = fst_calloc(1, sizeof *j);
    if (!j) return NULL;
    /* the code's displacements are 32-bit: four rows of B (a group's advance) must fit */
    if (ldb < 0 || (double)(JKB + 8) * (double)ldb * 4 + JWD * 4 > INT32_MAX) { free(j); return NULL; }
    j->ldb = ldb; j->jw = ldb ? JWD : JW;
    if (conv) {   /* geometry checked by fst_jit24_conv_fits */
        j->conv = 1; j->low = *conv; j->low.x = NULL;
        j->rp = conv->w > 16 ? 1 : 2;
        j->wpad = (j->rp == 1 ? 32 : 16) + conv->kw - 1;
        j->hpad = conv->h + conv->kh - 1 + (j->rp - 1);
        j->pieces = (conv->h + j->rp - 1) / j->rp;
        j->jw = j->pieces * 32;
        if ((double)conv->c * (double)j->hpad * (double)j->wpad * 4 > INT32_MAX / 2) { free(j); return NULL; }
    }
    /* the tile's rows are jw floats apart, addressed by 32-bit displacements r * jw * 4 + 64: a plane of some 1.6 million
     * rows (jw = 32 per row) wrapped them, and the code read and wrote 2 GB away from the tile (audit, session 44); the
     * register kernel takes such products */
    if ((double)(JR - 1) * (double)j->jw * 4 + 128 > INT32_MAX) { free(j); return NULL; }
    j->M = M; j->K = K; j->Kp = (K + 3) & ~(int64_t)3; j->G = j->Kp / 4;
    /* Tap-major rows (Eq. 2 as a convolution of dY): a group is four channels at one tap, and in K order a K block's 16
     * groups are one tap of 64 channels, 64 planes of x that every register block reads again (past L1 at 64 channels:
     * 0.93x of the register kernel on the Zen 5, NOTES v17). The code takes the groups channel group by channel group,
     * all taps of four channels before the next four, so a K block reads a few planes, as in im2col's order: 1.31-1.37x
     * faster at 64 x 576 on 32 x 32 planes (Intel, NOTES v30). Each element still sums in one fixed order. */
    if (conv && conv->order == 1 && conv->c % 4 == 0) {
        const int64_t cg = conv->c / 4, kk = conv->kh * conv->kw;
        if (!(j->gord = fst_malloc(sizeof(int64_t) * (size_t)j->G))) { free(j); return NULL; }
        for (int64_t q = 0, i = 0; q < cg; q++) for (int64_t t = 0; t < kk; t++) j->gord[i++] = t * cg + q;
    }
    j->nrb = (M + JR - 1) / JR; j->nkb = (j->Kp + JKB - 1) / JKB;
    const int64_t ldv = j->Kp / 2, ldm = (j->Kp + 31) / 32;
    j->vals = fst_aligned_alloc(64, (size_t)((M * ldv * 4 + 63) & ~(int64_t)63));
    j->voff = fst_malloc(sizeof(int64_t) * (size_t)j->nrb);
    j->entry = fst_malloc(sizeof(uint32_t) * (size_t)(j->nrb * j->nkb));
    size_t bound = 0;
    for (int64_t rb = 0; rb < j->nrb; rb++) {
        const int rows = (int)(M - rb * JR < JR ? M - rb * JR : JR);
        for (int64_t kb = 0; kb < j->nkb; kb++) bound += block_bound(rows, JKB / 4);
    }
    if (!j->vals || !j->voff || !j->entry || bound > UINT32_MAX) { jit_free(j); return NULL; }
    uint8_t *rw = writable_code(bound, &j->code);
    if (!rw) { jit_free(j); return NULL; }
    (void)pthread_once(&tmpl_once, tmpl_init);   /* emit_block copies the FMA templates */
    emitter e = { rw, 0 };
    for (int64_t rb = 0; rb < j->nrb; rb++) {
        const int64_t r0 = rb * JR;
        const int rows = (int)(M - r0 < JR ? M - r0 : JR);
        j->voff[rb] = r0 * ldv;
        float *d = j->vals + r0 * ldv;
        for (int64_t i = 0; i < j->G; i++) {
            const int64_t g = j->gord ? j->gord[i] : i;
            for (int r = 0; r < rows; r++) { d[(i * rows + r) * 2] = values[(r0 + r) * ldv + 2 * g]; d[(i * rows + r) * 2 + 1] = values[(r0 + r) * ldv + 2 * g + 1]; }
        }
        for (int64_t kb = 0; kb < j->nkb; kb++) {
            const int64_t g0 = kb * (JKB / 4), ng = j->G - g0 < JKB / 4 ? j->G - g0 : JKB / 4;
            e.n = (e.n + 63) & ~(size_t)63;
            j->entry[rb * j->nkb + kb] = (uint32_t)e.n;
            /* in place: the first register block prefetches the next K block, or after the last one the next column
             * block's first */
            baddr ba = { (int32_t)((ldb ? ldb : JW) * 4), 64, 32 * 4, 0, NULL };
            if (ldb && !rb) ba.pf = kb + 1 < j->nkb ? JKB * ldb * 4 : -g0 * 4 * ldb * 4 + JWD * 4;
            if (j->conv) {
                ba.conv = j;
                ba.vstride = j->rp == 1 ? 64 : (int32_t)(j->wpad * 4);
                ba.piece = (int32_t)(j->rp * j->wpad * 4);
            }
            emit_block(&e, meta, ldm, r0, rows, g0, ng, &ba, (int32_t)(j->jw * 4), K, j->gord);
        }
    }
    j->gen = __atomic_add_fetch(&code_gen, 1, __ATOMIC_RELEASE);   /* after the last byte */
    return j;
}

static void jit_free(fst_jit24 *j) {
    if (!j) return;
    free(j->vals); free(j->voff); free(j->entry); free(j->gord); free(j);
}

/* The code depends on an image's geometry, not on how many images a call brings. */
static int same_geometry(const fst_lowering *a, const fst_lowering *b) {
    return a->c == b->c && a->h == b->h && a->w == b->w && a->kh == b->kh && a->kw == b->kw && a->sh == b->sh &&
           a->sw == b->sw && a->ph == b->ph && a->pw == b->pw && a->ho == b->ho && a->wo == b->wo && a->order == b->order;
}

static fst_jit24 *jit_get(int64_t M, int64_t K, const float *values, const uint32_t *meta, int64_t ldb, const fst_lowering *conv) {
    code_cache *c = thread_cache();
    if (!c) return NULL;
    const int64_t Kp = (K + 3) & ~(int64_t)3;
    const size_t vbytes = (size_t)(M * (Kp / 2)) * 4, mbytes = (size_t)(M * ((Kp + 31) / 32)) * 4;
    fst_jit24 *l = c->last;
    if (l && l->M == M && l->K == K && l->ldb == ldb && l->conv == (conv != NULL) && (!conv || same_geometry(&l->low, conv)) &&
        memcmp(c->vkey, values, vbytes) == 0 && memcmp(c->mkey, meta, mbytes) == 0)
        return l;
    cache_forget(c);   /* its code is about to be overwritten */
    fst_jit24 *j = jit_build(M, K, values, meta, ldb, conv);
    if (!j) return NULL;
    c->vkey = fst_malloc(vbytes);
    c->mkey = fst_malloc(mbytes);
    if (!c->vkey || !c->mkey) { c->last = j; cache_forget(c); return NULL; }
    memcpy(c->vkey, values, vbytes);
    memcpy(c->mkey, meta, mbytes);
    return c->last = j;
}

fst_jit24 *fst_jit24_get(int64_t M, int64_t K, const float *values, const uint32_t *meta, int64_t ldb) {
    return jit_get(M, K, values, meta, ldb, NULL);
}

int fst_jit24_conv_fits(const fst_lowering *low) {
    return low->sh == 1 && low->sw == 1 && low->kh % 2 == 1 && low->kw % 2 == 1 && low->ph == low->kh / 2 &&
           low->pw == low->kw / 2 && low->ho == low->h && low->wo == low->w && low->w >= 14 && low->w <= 32;
}

fst_jit24 *fst_jit24_get_conv(int64_t M, const float *values, const uint32_t *meta, const fst_lowering *low) {
    if (!fst_jit24_conv_fits(low)) return NULL;
    return jit_get(M, low->c * low->kh * low->kw, values, meta, 0, low);
}

int64_t fst_jit24_conv_pieces(const fst_jit24 *j) { return j->pieces; }

typedef void block_fn(const float *buf, const float *vals, float *tile, int64_t pieces, int64_t accumulate);

/* Floats of scratch (tile and staging buffer) fst_jit24_range takes from the calling thread's own. */
static size_t buf_floats(const fst_jit24 *j) {
    const int64_t slab = JTILE / (j->jw * 4) / JR * JR, rows = j->M < slab ? (j->nrb * JR) : slab;
    return (size_t)((j->ldb ? 0 : JKB * JW) + rows * j->jw);
}

/* C = r + beta * C (beta == 0 never reads C) on the lanes of k: the register kernel's store. Masked loads and stores
 * only where k is partial: on Zen 5 the masked forms cost more than the unmasked ones. */
static inline void store_c(float *c, __mmask16 k, __m512 r, float beta, __m512 vb) {
    if (k == 0xFFFF) {
        if (beta == 1.0f) r = _mm512_add_ps(r, _mm512_loadu_ps(c));
        else if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_loadu_ps(c), r);
        _mm512_storeu_ps(c, r);
        return;
    }
    if (beta == 1.0f) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, c));
    else if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k, c), r);
    _mm512_mask_storeu_ps(c, k, r);
}

int fst_jit24_range(const fst_jit24 *j, int64_t n0, int64_t n1, float alpha, float beta, const float *B, int64_t ldb,
                    float *C, int64_t ldc, const fst_lowering *low) {
    sync_code(j);
    const int64_t M = j->M, K = j->K, jw = j->jw;
    const int direct = j->ldb > 0;
    /* in place: B a matrix with the row stride the code was written for, and whole 32-column pieces only */
    if (direct && (low || ldb != j->ldb || (n1 - n0) % 32 != 0)) return FST_EINVAL;
    const int64_t slab = JTILE / (jw * 4) / JR * JR;       /* rows per pass, whole register blocks */
    float *mem = thread_scratch(buf_floats(j));
    if (!mem) return FST_ENOMEM;
    float *buf = mem, *tile = direct ? mem : mem + JKB * JW;
    char *plan_mem = NULL;
    if (low) {
        plan_mem = fst_aligned_alloc(64, (fst_lplan_bytes(low, JW / 16) + 63) & ~(size_t)63);
        if (!plan_mem) return FST_ENOMEM;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t jn = n0; jn < n1; jn += jw) {
        const int n = (int)(n1 - jn < jw ? n1 - jn : jw), nq = (n + 31) / 32;
        fst_lplan plan;
        const int planned = low && fst_lplan_build(&plan, low, jn, n, 2 * nq, plan_mem);
        for (int64_t s0 = 0; s0 < M; s0 += slab) {
            const int64_t s1 = M - s0 < slab ? M : s0 + slab;
            for (int64_t kb = 0; kb < j->nkb; kb++) {
                const int64_t k0 = kb * JKB, kr = j->Kp - k0 < JKB ? j->Kp - k0 : JKB;
                const float *src = B + k0 * ldb + jn;
                if (!direct) {
                    fst_stage_rows(planned ? &plan : NULL, low, B, ldb, K, k0, kr, jn, n, nq * 32, buf, JW);
                    src = buf;
                }
                /* a materialised B: the next block's rows towards the caches while this one computes (rows of B are
                 * ldb apart, which the hardware prefetchers follow only after a few lines each) */
                int64_t pk0 = k0 + JKB, pjn = jn;
                if (pk0 >= K) { pk0 = 0; pjn = s1 < M ? jn : jn + jw; }
                const int64_t prow = !low && !direct && pjn < n1 ? (K - pk0 < JKB ? K - pk0 : JKB) : 0;
                const int64_t plines = (((pjn + jw < n1 ? pjn + jw : n1) - pjn) * 4 + 63) / 64;
                const int64_t nblk = (s1 - s0 + JR - 1) / JR, per = (prow * plines + nblk - 1) / nblk;
                int64_t pr = 0, pl = 0;
                for (int64_t rb = s0 / JR; rb * JR < s1; rb++) {
                    for (int64_t i = 0; i < per && pr < prow; i++) {
                        __builtin_prefetch(B + (pk0 + pr) * ldb + pjn + pl * 16, 0, 2);
                        if (++pl == plines) { pl = 0; pr++; }
                    }
                    block_fn *f = (block_fn *)(void *)(j->code + j->entry[rb * j->nkb + kb]);
                    const int rows = (int)(M - rb * JR < JR ? M - rb * JR : JR);
                    f(src, j->vals + j->voff[rb] + k0 / 4 * rows * 2, tile + (rb * JR - s0) * jw, nq, kb > 0);
                }
            }
            /* C = alpha * sums + beta * C (beta == 0 never reads C), as the register kernel stores it */
            for (int64_t i = s0; i < s1; i++) {
                const float *t = tile + (i - s0) * jw;
                float *c = C + i * ldc + jn;
                for (int v = 0; v * 16 < n; v++) {
                    const int rem = n - v * 16;
                    const __mmask16 k = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
                    store_c(c + v * 16, k, _mm512_mul_ps(_mm512_load_ps(t + v * 16), va), beta, vb);
                }
            }
        }
    }
    free(plan_mem);
    return FST_OK;
}

/* The convolution flavour over pieces [u0, u1) of the call's images (piece u: image u / pieces, piece u % pieces, so
 * that threads share out even a block of two or three images evenly). Per image, x is copied into a zero-padded plane
 * per channel (rows of wpad floats, the padding and the margin past the last columns zero), every register block's
 * code runs over the image's pieces in the range (one output row of up to 32 columns, or two of up to 16) reading its
 * taps straight from that copy, and the tile goes to C's columns of those pieces (lanes past a row's width are never
 * stored). */
int fst_jit24_conv_range(const fst_jit24 *j, int64_t u0, int64_t u1, float alpha, float beta, const float *x, float *C,
                         int64_t ldc, int64_t ld_img) {
    sync_code(j);
    if (!j->conv) return FST_EINVAL;
    const fst_lowering *g = &j->low;
    const int64_t M = j->M, plane = j->hpad * j->wpad, hw = g->h * g->w, tstride = j->jw, np = j->pieces;
    float *mem = thread_scratch((size_t)(g->c * plane + M * tstride));
    if (!mem) return FST_ENOMEM;
    float *xp = mem + M * tstride, *tile = mem;
    memset(xp, 0, (size_t)(g->c * plane) * 4);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int64_t img = u0 / np; img * np < u1; img++) {
        const int64_t q0 = u0 > img * np ? u0 - img * np : 0, q1 = u1 < (img + 1) * np ? u1 - img * np : np;
        /* the input rows those output rows read */
        const int64_t y0 = q0 * j->rp - g->ph, y1 = q1 * j->rp + g->kh - 1 - g->ph;
        const float *xi = x + img * g->c * hw;
        for (int64_t ch = 0; ch < g->c; ch++)
            for (int64_t y = y0 < 0 ? 0 : y0; y < g->h && y < y1; y++)
                memcpy(xp + ch * plane + (y + g->ph) * j->wpad + g->pw, xi + ch * hw + y * g->w, (size_t)g->w * 4);
        for (int64_t kb = 0; kb < j->nkb; kb++)
            for (int64_t rb = 0; rb < j->nrb; rb++) {
                block_fn *f = (block_fn *)(void *)(j->code + j->entry[rb * j->nkb + kb]);
                const int rows = (int)(M - rb * JR < JR ? M - rb * JR : JR);
                f(xp + q0 * j->rp * j->wpad, j->vals + j->voff[rb] + kb * JKB / 4 * rows * 2, tile + rb * JR * tstride + q0 * 32,
                  q1 - q0, kb > 0);
            }
        /* piece q, vector v: output row q (columns 16 v..) when a piece is one row, else row 2 q + v (columns 0..) */
        for (int64_t i = 0; i < M; i++) {
            const float *t = tile + i * tstride;
            float *c = C + i * ldc + img * ld_img;
            for (int64_t q = q0; q < q1; q++)
                for (int v = 0; v < 2; v++) {
                    const int64_t y = j->rp == 1 ? q : 2 * q + v, x0 = j->rp == 1 ? 16 * v : 0;
                    if (y >= g->h || x0 >= g->w) continue;
                    const int rem = (int)(g->w - x0);
                    const __mmask16 k = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
                    float *d = c + y * g->w + x0;
                    store_c(d, k, _mm512_mul_ps(_mm512_load_ps(t + q * 32 + v * 16), va), beta, vb);
                }
        }
    }
    return FST_OK;
}
