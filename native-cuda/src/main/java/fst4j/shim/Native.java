package fst4j.shim;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The one class that owns every downcall handle of fst4j: libc's allocator and the C shim
 * {@code libfst4j.so}. The shim is packaged in this jar and extracted once to a temporary file;
 * {@code -Dfst4j.native.lib=/path/libfst4j.so} (or env {@code FST4J_NATIVE_LIB}) points at another build.
 * If loading fails, every shim call throws {@link NativeLibraryException} naming the path tried and the
 * reason; allocation (libc) keeps working, so pure-Java paths stay usable.
 * The CUDA shim {@code libfst4j_cuda.so} (built only where nvcc was found) has its handles in the separate,
 * lazily initialised holder {@code CudaHandles}; {@link Cuda} is its public face (native-cuda/CUDA.md).
 */
public final class Native {
    private Native() {}

    public static final int OK = 0, EINVAL = -1, ENULL = -2, EINDEX = -5, ENOMEM = -6;
    /** fst_spmm24_lowered_nchw: not for these shapes (nothing written). */
    static final int NO_NCHW = 1;
    private static final String RESOURCE = "/native/linux-x86_64/libfst4j.so";

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle MALLOC, FREE;
    static {
        SymbolLookup libc = LINKER.defaultLookup();
        MALLOC = LINKER.downcallHandle(libc.find("aligned_alloc").orElseThrow(), FunctionDescriptor.of(ADDRESS, JAVA_LONG, JAVA_LONG), Linker.Option.critical(false));
        FREE = LINKER.downcallHandle(libc.find("free").orElseThrow(), FunctionDescriptor.ofVoid(ADDRESS), Linker.Option.critical(false));
        tuneMalloc(libc);
    }

    /**
     * Tensors of a training step are freed and allocated again at the next step with the same sizes. glibc
     * serves big blocks with mmap and returns them with munmap, so every step would page-fault its buffers
     * in again (zeroed by the kernel). Keeping big blocks on the heap (M_MMAP_MAX = 0) and not trimming
     * it (M_TRIM_THRESHOLD) lets the next step reuse them. Opt out with -Dfst4j.malloc.tune=false.
     */
    private static void tuneMalloc(SymbolLookup libc) {
        if (!Boolean.parseBoolean(System.getProperty("fst4j.malloc.tune", "true"))) return;
        libc.find("mallopt").ifPresent(sym -> {
            try {
                MethodHandle mallopt = LINKER.downcallHandle(sym, FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
                int mMmapMax = -4, mTrimThreshold = -1;
                int ok1 = (int) mallopt.invokeExact(mMmapMax, 0);
                int ok2 = (int) mallopt.invokeExact(mTrimThreshold, Integer.MAX_VALUE);
                assert ok1 == 1 && ok2 == 1;
            } catch (Throwable ignored) {
                // not glibc, or a malloc without mallopt: keep its defaults
            }
        });
    }

    private static final String LOAD_ERROR;
    private static final String LIB_PATH;
    /** The shim's symbols (null when it failed to load); the lazily bound handle groups below use it too. */
    private static final SymbolLookup LIB;
    private static final MethodHandle VERSION, ISA, MAX_THREADS, SGEMM, SHIFT_ADD;
    private static final MethodHandle SPMM24, SPMM24_ISA;
    private static final MethodHandle PRUNE24, PRUNE24_T, SHIFT_GATHER, SHIFT_GATHER_AT, SHIFT_GATHER_IMAGES;

    static {
        String path = null, error = null;
        SymbolLookup lib = null;
        MethodHandle version = null, isa = null, maxThreads = null, sgemm = null, shift = null;
        MethodHandle spmm24 = null, spmm24Isa = null;
        MethodHandle prune24 = null, prune24t = null, shiftGather = null, shiftGatherAt = null, shiftGatherImages = null;
        try {
            path = locate();
            lib = SymbolLookup.libraryLookup(Path.of(path), Arena.global());
            version = bind(lib, "fst_version", FunctionDescriptor.of(JAVA_INT), true);
            isa = bind(lib, "fst_isa", FunctionDescriptor.of(ADDRESS), true);
            maxThreads = bind(lib, "fst_max_threads", FunctionDescriptor.of(JAVA_INT), true);
            sgemm = bind(lib, "fst_sgemm", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_FLOAT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG, JAVA_INT), false);
            shift = bind(lib, "fst_shift_add", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_INT, JAVA_FLOAT, JAVA_INT, JAVA_INT), false);
            spmm24 = bind(lib, "fst_spmm24", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_FLOAT,
                    ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG, JAVA_INT), false);
            spmm24Isa = bind(lib, "fst_spmm24_isa", FunctionDescriptor.of(ADDRESS), true);
            prune24 = bind(lib, "fst_prune24_compress", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG,
                    ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), false);
            prune24t = bind(lib, "fst_prune24_compress_t", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG,
                    ADDRESS, ADDRESS, JAVA_INT), false);
            shiftGather = bind(lib, "fst_shift_gather", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_INT, JAVA_FLOAT, JAVA_INT, JAVA_INT), false);
            shiftGatherAt = bind(lib, "fst_shift_gather_at", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_FLOAT, JAVA_INT, JAVA_INT), false);
            shiftGatherImages = bind(lib, "fst_shift_gather_images", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_FLOAT, JAVA_INT, JAVA_INT), false);
        } catch (Throwable t) {
            error = t instanceof NativeLibraryException && path == null ? t.getMessage()
                    : "cannot load the fst4j native library from " + (path == null ? RESOURCE + " (class path)" : path) + ": " + t.getMessage();
        }
        LIB_PATH = path; LOAD_ERROR = error; LIB = error == null ? lib : null;
        VERSION = version; ISA = isa; MAX_THREADS = maxThreads; SGEMM = sgemm; SHIFT_ADD = shift;
        SPMM24 = spmm24; SPMM24_ISA = spmm24Isa;
        PRUNE24 = prune24; PRUNE24_T = prune24t; SHIFT_GATHER = shiftGather; SHIFT_GATHER_AT = shiftGatherAt;
        SHIFT_GATHER_IMAGES = shiftGatherImages;
    }

    private static MethodHandle bind(SymbolLookup lib, String name, FunctionDescriptor fd, boolean critical) {
        MemorySegment sym = lib.find(name).orElseThrow(() -> new NativeLibraryException("symbol " + name + " not found"));
        return critical ? LINKER.downcallHandle(sym, fd, Linker.Option.critical(false)) : LINKER.downcallHandle(sym, fd);
    }

    private static String locate() throws IOException {
        String override = System.getProperty("fst4j.native.lib", System.getenv("FST4J_NATIVE_LIB"));
        if (override != null && !override.isBlank()) {
            if (!Files.isReadable(Path.of(override))) throw new NativeLibraryException("cannot load the fst4j native library from " + override + ": file not found");
            return override;
        }
        String os = System.getProperty("os.name"), arch = System.getProperty("os.arch");
        if (!os.toLowerCase().contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64")))
            throw new NativeLibraryException("no fst4j native build for " + os + "/" + arch + " (only linux-x86_64 is packaged)");
        try (InputStream in = Native.class.getResourceAsStream(RESOURCE)) {
            if (in == null) throw new IOException("resource " + RESOURCE + " is missing from the class path (was native-cuda built with make?)");
            Path tmp = Files.createTempFile("libfst4j", ".so");
            tmp.toFile().deleteOnExit();
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            return tmp.toString();
        }
    }

    /** Throws {@link NativeLibraryException} with the load failure, if any. */
    public static void ensureLoaded() {
        if (LOAD_ERROR != null) throw new NativeLibraryException(LOAD_ERROR);
    }

    public static boolean isLoaded() { return LOAD_ERROR == null; }

    /** Path of the loaded shim, or null when it failed to load. */
    public static String libraryPath() { return LOAD_ERROR == null ? LIB_PATH : null; }

    // ---- libc allocation: 64-byte aligned, counted by the caller ----

    public static MemorySegment malloc(long bytes) {
        long size = Math.max(64, (bytes + 63) & ~63L);
        try {
            MemorySegment p = (MemorySegment) MALLOC.invokeExact(64L, size);
            if (p.equals(MemorySegment.NULL)) throw new OutOfMemoryError("native allocation of " + bytes + " bytes failed");
            return p.reinterpret(bytes);
        } catch (Error | RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    public static void free(MemorySegment p) {
        try {
            FREE.invokeExact(p);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    // ---- the shim ----

    public static int version() {
        ensureLoaded();
        try { return (int) VERSION.invokeExact(); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Kernel family chosen for this CPU: avx512, avx2 or generic. */
    public static String isa() {
        ensureLoaded();
        try { return ((MemorySegment) ISA.invokeExact()).reinterpret(64).getString(0); } catch (Throwable t) { throw rethrow(t); }
    }

    public static int maxThreads() {
        ensureLoaded();
        try { return (int) MAX_THREADS.invokeExact(); } catch (Throwable t) { throw rethrow(t); }
    }

    private static final class DebugHandles {
        static final MethodHandle FAIL_ALLOCS = bind(LIB, "fst_debug_fail_allocs", FunctionDescriptor.ofVoid(JAVA_LONG), false);
    }

    /**
     * Tests only: after {@code after} more working-memory allocations of the CPU shim, every one fails (the call that
     * needed it throws {@link OutOfMemoryError}, or takes a path that needs no memory) until this is called again;
     * a negative value lifts the limit. Process-wide.
     */
    public static void debugFailAllocs(long after) {
        ensureLoaded();
        try { DebugHandles.FAIL_ALLOCS.invokeExact(after); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Raw SGEMM; callers (fst4j.tensor.Blas) must have bounds-checked every argument. */
    public static void sgemm(boolean transA, boolean transB, long m, long n, long k, float alpha,
                             MemorySegment a, long lda, MemorySegment b, long ldb, float beta,
                             MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        if (m > 0 && n > 0) {   // C returns at once for an empty C: its operands are not read
            need("fst_sgemm", "a", a, transA ? matrix("fst_sgemm", k, m, lda) : matrix("fst_sgemm", m, k, lda), false);
            need("fst_sgemm", "b", b, transB ? matrix("fst_sgemm", n, k, ldb) : matrix("fst_sgemm", k, n, ldb), false);
            need("fst_sgemm", "c", c, matrix("fst_sgemm", m, n, ldc), false);
        }
        int rc;
        try {
            rc = (int) SGEMM.invokeExact(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgemm");
    }

    public static void shiftAdd(MemorySegment dy, MemorySegment out, long rows, long len, long seg,
                                int shift, float coeff, boolean circular, int threads) {
        ensureLoaded();
        need("fst_shift_add", "dy", dy, product("fst_shift_add", 4, rows, len), false);
        need("fst_shift_add", "out", out, product("fst_shift_add", 4, rows, len), false);
        int rc;
        try {
            rc = (int) SHIFT_ADD.invokeExact(dy, out, rows, len, seg, shift, coeff, circular ? 1 : 0, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_shift_add");
    }

    /**
     * Raw 2:4 sparse x dense GEMM, C = alpha * S * B + beta * C, S M x K compressed (values M x Kp/2,
     * meta M x ceil(Kp/32) uint32 words, Kp = K rounded up to 4; layout in sparse/FORMAT.md).
     * Callers (fst4j.sparse.SparseGemm) must have bounds-checked every argument.
     */
    public static void spmm24(long m, long n, long k, float alpha, MemorySegment values, MemorySegment meta,
                              MemorySegment b, long ldb, float beta, MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        if (k < 0 || k > Long.MAX_VALUE - 32) throw new IllegalArgumentException("fst_spmm24: K = " + k);
        long kp = (k + 3) / 4 * 4;
        if (m > 0 && n > 0) {   // C returns at once for an empty C: its operands are not read
            need("fst_spmm24", "values", values, product("fst_spmm24", 4, m, kp / 2), false);
            need("fst_spmm24", "meta", meta, product("fst_spmm24", 4, m, (kp + 31) / 32), false);
            need("fst_spmm24", "b", b, matrix("fst_spmm24", k, n, ldb), false);
            need("fst_spmm24", "c", c, matrix("fst_spmm24", m, n, ldc), false);
        }
        int rc;
        try {
            rc = (int) SPMM24.invokeExact(m, n, k, alpha, values, meta, b, ldb, beta, c, ldc, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_spmm24");
    }

    /** Kernel family fst_spmm24 uses on this CPU: avx512, avx2 or generic. */
    public static String spmm24Isa() {
        ensureLoaded();
        try { return ((MemorySegment) SPMM24_ISA.invokeExact()).reinterpret(64).getString(0); } catch (Throwable t) { throw rethrow(t); }
    }

    // ---- the planned lowering switch (conv.c); bound on first use ----

    private static final class LoweringHandles {
        static final MethodHandle PLAN = bind(LIB, "fst_lowering_plan", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle SEG = bind(LIB, "fst_lowering_seg", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle WIN = bind(LIB, "fst_lowering_win", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle COL2IM_S2 = bind(LIB, "fst_col2im_s2", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle SPIN = bind(LIB, "fst_parallel_spin", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle MAXPOOL_VEC = bind(LIB, "fst_maxpool_vec", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
    }

    /**
     * Max pooling's 2x2 / stride 2 window with vectors instead of the scalar loops (16 windows forward and backward on AVX-512,
     * 8 forward on AVX2): mode 0 off, 1 on where the CPU allows, -1 only asks. Returns whether it is in use. The same outputs,
     * indices and gradients either way; tests and A/B timings switch it.
     */
    public static boolean maxPoolVector(int mode) {
        ensureLoaded();
        try { return (int) LoweringHandles.MAXPOOL_VEC.invokeExact(mode) != 0; } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * PAUSE instructions a shim helper thread spins waiting for the next parallel call before it sleeps (default 20000,
     * about 1 ms): iters >= 0 sets it, -1 only asks. Returns the value in use. For A/B timing; results do not depend on it.
     */
    public static int parallelSpin(int iters) {
        ensureLoaded();
        try { return (int) LoweringHandles.SPIN.invokeExact(iters); } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * col2im at stride 2 as a gather (each plane row written once, AVX-512) instead of the scatter: mode 0 off, 1 on where
     * the CPU has AVX-512, -1 only asks. Returns whether it is in use. Both give the same bits; tests and A/B timings
     * switch it.
     */
    public static boolean col2imStride2(int mode) {
        ensureLoaded();
        try { return (int) LoweringHandles.COL2IM_S2.invokeExact(mode) != 0; } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * The implicit-im2col GEMMs' planned lowering (AVX-512 masked loads, one plan per column block): mode 0 off, 1 on
     * where the CPU has AVX-512, -1 only asks. Returns whether it is in use. Both paths give the same bits; tests and
     * A/B timings switch it.
     */
    public static boolean loweringPlan(int mode) {
        ensureLoaded();
        try { return (int) LoweringHandles.PLAN.invokeExact(mode) != 0; } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * The planned lowering's segment plan for strided geometries (vertical stride > 1 or output rows narrower than the plane,
     * at horizontal stride 1, 2 or 4, output rows of 5 columns or more: sw masked loads and a permute or two per output-row run
     * of a vector): mode 1 on (the default), 0 those geometries take the gather plan, -1 only asks. Returns the mode in
     * use. The same bits either way.
     */
    public static int loweringSeg(int mode) {
        ensureLoaded();
        try { return (int) LoweringHandles.SEG.invokeExact(mode); } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * The planned lowering's window plan for selected columns ({@link #sgemmLoweredAt}: each vector read from one 32-float
     * window per image by two masked loads and a permute): mode 1 on (the default), 0 they take the segment or gather
     * plans, -1 only asks. Returns the mode in use. The same bits either way.
     */
    public static int loweringWin(int mode) {
        ensureLoaded();
        try { return (int) LoweringHandles.WIN.invokeExact(mode); } catch (Throwable t) { throw rethrow(t); }
    }

    /** The shim's A/B switches (sparse.c: the 2:4 product; gemm.c: Eq. 3 without packing): each sets a mode or value (-1
     * only asks) and returns the one in use. */
    private static final class SwitchHandles {
        static final MethodHandle GROUPING = bind(LIB, "fst_spmm24_grouping", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle PREFETCH = bind(LIB, "fst_spmm24_prefetch", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle KBLOCKS = bind(LIB, "fst_spmm24_kblocks", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle JIT = bind(LIB, "fst_spmm24_jit", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle WGRAD_MAX = bind(LIB, "fst_wgrad_direct_max", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
        static final MethodHandle WGRAD_CHUNK = bind(LIB, "fst_wgrad_chunk", FunctionDescriptor.of(JAVA_INT, JAVA_INT), true);
    }

    private static int abSwitch(MethodHandle h, int mode) {
        ensureLoaded();
        try { return (int) h.invokeExact(mode); } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * The 2:4 product's blocking for large weights (sparse_kernel.c): 1 (default) column blocks grouped per K block,
     * one chunk per thread; 0 the earlier order; -1 only asks. Returns the mode in use. Same bits; for A/B timings.
     */
    public static int spmm24Grouping(int mode) { return abSwitch(SwitchHandles.GROUPING, mode); }

    /**
     * The 2:4 product's K blocks where K does not fit one L1-sized block and S has at least 32 rows (sparse_kernel.c):
     * 1 (default) the larger blocks (256 rows from a 96 KB L2 buffer on Zen 4, 96 rows from 36 KB on other cores), 0 the
     * 64-row L1 blocks, -1 only asks. Returns the mode in
     * use. The last bits of C differ between the modes (where partial sums are rounded); for A/B timings.
     */
    public static int spmm24KBlocks(int mode) { return abSwitch(SwitchHandles.KBLOCKS, mode); }

    /**
     * The 2:4 product compiled per call (sparse_jit.c, AVX-512 CPUs), where B has at least 2048 columns: 1 (default)
     * writes x86-64 code for the compressed S where it measured faster (a materialised B with 24-32 rows and at most 40960
     * entries; stride-1 "same" convolutions read straight from x, in either row order, up to 64 rows and 40960 entries on
     * AMD, 128 rows and 73728 entries elsewhere), 2 there and wherever v15's rule let it (at most 40960 entries in at
     * most 64 rows, at least 24 on a materialised B, staged lowerings too), 0 always the register kernel, -1 only asks. Returns
     * the mode in use. The last bits differ between them (other K blocks and orders); for tests and A/B timings
     * (jmh/NOTES-step-cpu.md v15, v17, v30).
     */
    public static int spmm24Jit(int mode) { return abSwitch(SwitchHandles.JIT, mode); }

    /**
     * The 2:4 product's software prefetch of a large compressed S read in short K blocks (sparse_kernel.c): 1 (default)
     * on, 0 off, -1 only asks. Returns the mode in use. Same bits; for A/B timings.
     */
    public static int spmm24Prefetch(int mode) { return abSwitch(SwitchHandles.PREFETCH, mode); }

    /**
     * Eq. 3 of a convolution (the lowered GEMM with B transposed, gemm.c) runs without packing, as dot products over the
     * positions (wgrad_avx512.c), for at most this many output rows: rows >= 0 sets it, -1 only asks; returns the value
     * in use (by default 128 on an AMD CPU, 48 on others: gemm.c has the measurements). The two paths sum in different
     * orders (results within float rounding); for A/B timings.
     */
    public static int wgradDirectMax(int rows) { return abSwitch(SwitchHandles.WGRAD_MAX, rows); }

    /**
     * The direct Eq. 3 kernel's chunk of positions (wgrad_avx512.c), in vectors of 16: vectors > 0 sets it, 0 restores
     * the default (sized for L1 and L2 from the row count), -1 only asks; returns the setting (0 = the default). Chunks
     * change the order of the sums; tests draw small ones to cross their boundaries at small sizes.
     */
    public static int wgradChunk(int vectors) { return abSwitch(SwitchHandles.WGRAD_CHUNK, vectors); }

    // ---- batch norm (norm.c); bound on first use ----

    private static final class NormHandles {
        static final MethodHandle TRAIN, BACKWARD;
        static {
            SymbolLookup lib = LIB;
            TRAIN = bind(lib, "fst_bn_train", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_DOUBLE, JAVA_DOUBLE, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT), false);
            BACKWARD = bind(lib, "fst_bn_backward", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), false);
        }
    }

    /**
     * Training-mode batch norm of contiguous float32 x [n, c, hw] (plus add, a contiguous float32 tensor of x's size,
     * when not NULL; then ReLU when relu); optional vectors may be MemorySegment.NULL. affine (or NULL; not with add):
     * 2c doubles, each channel's scale and shift (BN(x) = (float)(x * scale + shift)), for {@link #bnBackward}'s mask.
     */
    public static void bnTrain(MemorySegment x, MemorySegment gamma, MemorySegment beta, MemorySegment runningMean, MemorySegment runningVar,
                               long n, long c, long hw, double momentum, double eps, MemorySegment add, MemorySegment y, MemorySegment mean,
                               MemorySegment invStd, MemorySegment affine, boolean relu, int threads) {
        ensureLoaded();
        String fn = "fst_bn_train";
        long all = product(fn, 4, n, c, hw), vec = product(fn, 4, c);   // bytes
        need(fn, "x", x, all, false);
        need(fn, "y", y, all, false);
        need(fn, "add", add, all, true);
        need(fn, "affine", affine, 4 * vec, true);
        need(fn, "mean", mean, vec, false);
        need(fn, "invStd", invStd, vec, false);
        need(fn, "gamma", gamma, vec, true);
        need(fn, "beta", beta, vec, true);
        need(fn, "runningMean", runningMean, vec, true);
        need(fn, "runningVar", runningVar, vec, true);
        int rc;
        try { rc = (int) NormHandles.TRAIN.invokeExact(x, gamma, beta, runningMean, runningVar, n, c, hw, momentum, eps, add, y, mean, invStd, affine, relu ? 1 : 0, threads); }
        catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_bn_train");
    }

    // batch norm + ReLU + 2x2 max pool: the argmax indices are a Java int[] (as fst_maxpool2d's), passed by critical downcalls
    private static final class NormPoolHandles {
        static final MethodHandle TRAIN, BACKWARD;
        static {
            SymbolLookup lib = LIB;
            TRAIN = LINKER.downcallHandle(lib.find("fst_bn_relu_maxpool2_train").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_DOUBLE, JAVA_DOUBLE, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), Linker.Option.critical(true));
            BACKWARD = LINKER.downcallHandle(lib.find("fst_bn_relu_maxpool2_backward").orElseThrow(), FunctionDescriptor.of(JAVA_INT,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS,
                    ADDRESS, ADDRESS, JAVA_INT), Linker.Option.critical(true));
        }
    }

    /**
     * Batch norm (training) of contiguous float32 x [n, c, h, w], ReLU, then the 2x2 / stride 2 max pool, the ReLU's
     * output never stored: pooled [n, c, h/2, w/2] and idx (one per pooled value) as {@link #maxPool2d} gives them,
     * affine (2c doubles) for {@link #bnReluMaxPool2Backward}. h, w >= 2.
     */
    public static void bnReluMaxPool2Train(MemorySegment x, MemorySegment gamma, MemorySegment beta, MemorySegment runningMean,
                                           MemorySegment runningVar, long n, long c, long h, long w, double momentum, double eps,
                                           MemorySegment pooled, int[] idx, MemorySegment mean, MemorySegment invStd, MemorySegment affine,
                                           int threads) {
        ensureLoaded();
        String fn = "fst_bn_relu_maxpool2_train";
        long outs = product(fn, n, c, h / 2, w / 2), all = product(fn, 4, n, c, h, w), vec = product(fn, 4, c);
        if (idx.length != outs)
            throw new IllegalArgumentException(fn + ": " + idx.length + " indices for [" + n + ", " + c + ", " + h + ", " + w + "] (" + outs + " pooled)");
        need(fn, "x", x, all, false);
        need(fn, "pooled", pooled, product(fn, 4, outs), false);
        need(fn, "affine", affine, 4 * vec, false);
        need(fn, "mean", mean, vec, false);
        need(fn, "invStd", invStd, vec, false);
        need(fn, "gamma", gamma, vec, true);
        need(fn, "beta", beta, vec, true);
        need(fn, "runningMean", runningMean, vec, true);
        need(fn, "runningVar", runningVar, vec, true);
        int rc;
        try { rc = (int) NormPoolHandles.TRAIN.invokeExact(x, gamma, beta, runningMean, runningVar, n, c, h, w, momentum, eps, pooled,
                MemorySegment.ofArray(idx), mean, invStd, affine, threads); }
        catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_bn_relu_maxpool2_train");
    }

    /** Backward of {@link #bnReluMaxPool2Train} from the pooled gradient dyp and its indices; refuses an index outside its plane. */
    public static void bnReluMaxPool2Backward(MemorySegment dyp, int[] idx, MemorySegment x, MemorySegment gamma, MemorySegment mean,
                                              MemorySegment invStd, MemorySegment affine, long n, long c, long h, long w, MemorySegment dx,
                                              MemorySegment dgamma, MemorySegment dbeta, int threads) {
        ensureLoaded();
        String fn = "fst_bn_relu_maxpool2_backward";
        long outs = product(fn, n, c, h / 2, w / 2), all = product(fn, 4, n, c, h, w), vec = product(fn, 4, c);
        if (idx.length != outs)
            throw new IllegalArgumentException(fn + ": " + idx.length + " indices for [" + n + ", " + c + ", " + h + ", " + w + "] (" + outs + " pooled)");
        need(fn, "dy", dyp, product(fn, 4, outs), false);
        need(fn, "x", x, all, false);
        need(fn, "dx", dx, all, false);
        need(fn, "affine", affine, 4 * vec, false);
        need(fn, "mean", mean, vec, false);
        need(fn, "invStd", invStd, vec, false);
        need(fn, "gamma", gamma, vec, true);
        need(fn, "dgamma", dgamma, vec, false);
        need(fn, "dbeta", dbeta, vec, false);
        int rc;
        try { rc = (int) NormPoolHandles.BACKWARD.invokeExact(dyp, MemorySegment.ofArray(idx), x, gamma, mean, invStd, affine, n, c, h, w,
                dx, dgamma, dbeta, threads); }
        catch (Throwable t) { throw rethrow(t); }
        if (rc == EINDEX)
            throw new IllegalArgumentException("fst_bn_relu_maxpool2_backward: a max-pool index lies outside its " + h + " x " + w
                    + " plane (corrupt indices); nothing trustworthy was written to dx");
        check(rc, "fst_bn_relu_maxpool2_backward");
    }

    /**
     * Backward of {@link #bnTrain}; gamma may be MemorySegment.NULL. The fused ReLU's mask: reluOut (the fused output;
     * dy counts where it is > 0) or reluAffine (the forward's affine; the same positions recomputed from x), at most
     * one of them, or both NULL for a plain batch norm. dMask (or NULL): n * c * hw floats that get dy so masked.
     */
    public static void bnBackward(MemorySegment dy, MemorySegment x, MemorySegment gamma, MemorySegment mean, MemorySegment invStd,
                                  MemorySegment reluOut, MemorySegment reluAffine, long n, long c, long hw, MemorySegment dx,
                                  MemorySegment dgamma, MemorySegment dbeta, MemorySegment dMask, int threads) {
        ensureLoaded();
        String fn = "fst_bn_backward";
        long all = product(fn, 4, n, c, hw), vec = product(fn, 4, c);
        need(fn, "dy", dy, all, false);
        need(fn, "x", x, all, false);
        need(fn, "dx", dx, all, false);
        need(fn, "reluOut", reluOut, all, true);
        need(fn, "dMask", dMask, all, true);
        need(fn, "reluAffine", reluAffine, 4 * vec, true);
        need(fn, "mean", mean, vec, false);
        need(fn, "invStd", invStd, vec, false);
        need(fn, "gamma", gamma, vec, true);
        need(fn, "dgamma", dgamma, vec, false);
        need(fn, "dbeta", dbeta, vec, false);
        int rc;
        try { rc = (int) NormHandles.BACKWARD.invokeExact(dy, x, gamma, mean, invStd, reluOut, reluAffine, n, c, hw, dx, dgamma, dbeta, dMask, threads); }
        catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_bn_backward");
    }

    // ---- SR-STE decay (prune.c); bound on first use ----

    private static final class SrSteHandle {
        static final MethodHandle DECAY = bind(LIB, "fst_srste_decay",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, JAVA_INT), false);
    }

    /** g += lambda * w where magnitude 2:4 along each row of w [rows, k] prunes (both contiguous float32). */
    public static void srsteDecay(MemorySegment w, MemorySegment g, long rows, long k, float lambda, int threads) {
        ensureLoaded();
        int rc;
        try { rc = (int) SrSteHandle.DECAY.invokeExact(w, g, rows, k, lambda, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_srste_decay");
    }

    // ---- activations (act.c) and magnitude N:M (nm.c); bound on first use ----

    private static final class ActNmHandles {
        static final MethodHandle ACT = bind(LIB, "fst_act_f32", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_DOUBLE, JAVA_DOUBLE,
                ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), false);
        static final MethodHandle ACT_BWD = bind(LIB, "fst_act_bwd_f32", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_DOUBLE, JAVA_DOUBLE,
                ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), false);
        static final MethodHandle PRUNE_NM = bind(LIB, "fst_prune_nm", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT), false);
        static final MethodHandle DECAY_NM = bind(LIB, "fst_srste_decay_nm", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG,
                JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_FLOAT, JAVA_INT), false);
    }

    /** Every segment holds n floats (the C loops trust their pointers). */
    private static void floats(String fn, long n, MemorySegment... segs) {
        if (n < 0) throw new IllegalArgumentException(fn + ": negative element count " + n);
        long bytes;
        try { bytes = Math.multiplyExact(n, 4L); } catch (ArithmeticException e) { throw new IllegalArgumentException(fn + ": " + n + " floats overflow"); }
        for (MemorySegment s : segs)
            if (s.byteSize() < bytes) throw new IndexOutOfBoundsException(fn + ": a segment of " + s.byteSize() + " bytes for " + n + " floats");
    }

    /**
     * y = f_op(x) over n contiguous floats (fst_act_f32: op, s0, s1 as fst4j_kargs.h's FST_ACT_*, the CUDA kernel k_act's
     * formula in double, rounded once); y may be x.
     */
    public static void act(int op, double s0, double s1, MemorySegment x, MemorySegment y, long n, int threads) {
        ensureLoaded();
        floats("fst_act_f32", n, x, y);
        int rc;
        try { rc = (int) ActNmHandles.ACT.invokeExact(op, s0, s1, x, y, n, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_act_f32");
    }

    /** out = b_op(a, b) over n contiguous floats (fst_act_bwd_f32, FST_ACTB_*: a the incoming gradient, b the forward's input). */
    public static void actBackward(int op, double s0, double s1, MemorySegment a, MemorySegment b, MemorySegment out, long n, int threads) {
        ensureLoaded();
        floats("fst_act_bwd_f32", n, a, b, out);
        int rc;
        try { rc = (int) ActNmHandles.ACT_BWD.invokeExact(op, s0, s1, a, b, out, n, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_act_bwd_f32");
    }

    /**
     * Magnitude n:m along the middle axis of contiguous float32 [outer, len, inner] (fst_prune_nm): out = x where kept, +0.0
     * elsewhere (fst4j.sparse.Sparsifier.MagnitudeNM's rule, bit for bit).
     */
    public static void pruneNM(MemorySegment x, MemorySegment out, long outer, long len, long inner, int n, int m, int threads) {
        ensureLoaded();
        long total;
        try { total = Math.multiplyExact(Math.multiplyExact(outer, len), inner); } catch (ArithmeticException e) {
            throw new IllegalArgumentException("fst_prune_nm: " + outer + " x " + len + " x " + inner + " floats overflow");
        }
        if (outer < 0 || len < 0 || inner < 0) throw new IllegalArgumentException("fst_prune_nm: negative extent " + outer + " x " + len + " x " + inner);
        floats("fst_prune_nm", total, x, out);
        int rc;
        try { rc = (int) ActNmHandles.PRUNE_NM.invokeExact(x, out, outer, len, inner, n, m, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_prune_nm");
    }

    /** g += lambda * w where magnitude n:m along each row of w [rows, k] prunes (fst_srste_decay_nm; both contiguous float32). */
    public static void srsteDecayNM(MemorySegment w, MemorySegment g, long rows, long k, int n, int m, float lambda, int threads) {
        ensureLoaded();
        if (rows < 0 || k < 0) throw new IllegalArgumentException("fst_srste_decay_nm: negative extent " + rows + " x " + k);
        long total;
        try { total = Math.multiplyExact(rows, k); } catch (ArithmeticException e) {
            throw new IllegalArgumentException("fst_srste_decay_nm: " + rows + " x " + k + " floats overflow");
        }
        floats("fst_srste_decay_nm", total, w, g);
        int rc;
        try { rc = (int) ActNmHandles.DECAY_NM.invokeExact(w, g, rows, k, n, m, lambda, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_srste_decay_nm");
    }

    // ---- implicit im2col products (lowering.h: gemm.c, sparse.c); bound on first use ----

    private static final class LoweredHandles {
        static final MethodHandle SGEMM, SGEMM_NCHW, SGEMM_IMAGES, SGEMM_IMAGES_SHIFT, SGEMM_IMAGES_B, SGEMM_AT, SPMM24, SPMM24_NCHW, TCONV, PRUNE_TCONV;
        static {
            SymbolLookup lib = LIB;
            SGEMM_AT = bind(lib, "fst_sgemm_lowered_at", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG, JAVA_INT), false);
            SGEMM = bind(lib, "fst_sgemm_lowered", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT), false);
            SGEMM_NCHW = bind(lib, "fst_sgemm_lowered_nchw", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_INT, JAVA_INT), false);
            SGEMM_IMAGES = bind(lib, "fst_sgemm_lowered_images", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS,
                    ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT), false);
            SGEMM_IMAGES_SHIFT = bind(lib, "fst_sgemm_lowered_images_shift", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_FLOAT,
                    ADDRESS, JAVA_LONG, JAVA_INT, JAVA_FLOAT, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG, JAVA_INT,
                    JAVA_INT), false);
            SGEMM_IMAGES_B = bind(lib, "fst_sgemm_images_b", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_FLOAT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG, JAVA_INT), false);
            SPMM24 = bind(lib, "fst_spmm24_lowered", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, ADDRESS,
                    ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT), false);
            SPMM24_NCHW = bind(lib, "fst_spmm24_lowered_nchw", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, ADDRESS,
                    ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_INT), false);
            TCONV = bind(lib, "fst_tconv_weight", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_LONG, JAVA_INT), false);
            PRUNE_TCONV = bind(lib, "fst_prune24_compress_tconv", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT), false);
        }
    }

    /**
     * A' [cin, kk*cout] = W [cout, cin*kk] laid out as its transposed convolution's weight (taps reversed, tap-major;
     * fst_tconv_weight): Eq. 2 of a stride-1 convolution as a convolution of dY.
     */
    public static void tconvWeight(long cout, long cin, long kk, MemorySegment w, long ldw, MemorySegment out, long ldo, int threads) {
        ensureLoaded();
        need("fst_tconv_weight", "w", w, matrix("fst_tconv_weight", cout, product("fst_tconv_weight", cin, kk), ldw), false);
        need("fst_tconv_weight", "out", out, matrix("fst_tconv_weight", cin, product("fst_tconv_weight", kk, cout), ldo), false);
        int rc;
        try { rc = (int) LoweredHandles.TCONV.invokeExact(cout, cin, kk, w, ldw, out, ldo, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_tconv_weight");
    }

    /** S(W^T) in the layout of {@link #tconvWeight}, compressed 2:4 along kk*cout (fst_prune24_compress_tconv); cout % 4 == 0. */
    public static void prune24CompressTconv(long cout, long cin, long kk, MemorySegment w, long ldw, MemorySegment values,
                                            MemorySegment meta, int threads) {
        ensureLoaded();
        String fn = "fst_prune24_compress_tconv";
        long g4 = cout / 4, kkg = product(fn, kk, g4);
        need(fn, "w", w, matrix(fn, cout, product(fn, cin, kk), ldw), false);
        need(fn, "values", values, product(fn, 4, cin, 2, kkg), false);
        need(fn, "meta", meta, product(fn, 4, cin, (kkg + 7) / 8), false);
        int rc;
        try { rc = (int) LoweredHandles.PRUNE_TCONV.invokeExact(cout, cin, kk, w, ldw, values, meta, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_prune24_compress_tconv");
    }

    /**
     * C [m, N] = alpha * A [m, K] * op(im2col(x)) + beta * C (fst_sgemm_lowered in fst4j.h); g = {n, c, h, w, kh, kw, sh, sw,
     * ph, pw, ho, wo, order} (order 1: tap-major rows).
     */
    public static void sgemmLowered(boolean transB, long m, float alpha, MemorySegment a, long lda, MemorySegment x, long[] g,
                                    float beta, MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        String fn = "fst_sgemm_lowered";
        long rows = loweredRows(fn, g), cols = loweredCols(fn, g), kk = transB ? cols : rows, nn = transB ? rows : cols;
        if (m > 0 && nn > 0) {
            need(fn, "a", a, matrix(fn, m, kk, lda), false);
            need(fn, "x", x, loweredX(fn, g), false);
            need(fn, "c", c, matrix(fn, m, nn, ldc), false);
        }
        int rc;
        try {
            rc = (int) LoweredHandles.SGEMM.invokeExact(transB ? 1 : 0, m, alpha, a, lda, x, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                    g[8], g[9], g[10], g[11], beta, c, ldc, threads, (int) g[12]);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgemm_lowered");
    }

    /**
     * Y [n, m, ho*wo] (NCHW) = alpha * A [m, K] * im2col(x) + beta * Y (fst_sgemm_lowered_nchw in fst4j.h): Eq. 1 written
     * as the convolution's output; g as {@link #sgemmLowered}.
     */
    public static void sgemmLoweredNchw(long m, float alpha, MemorySegment a, long lda, MemorySegment x, long[] g, float beta,
                                        MemorySegment y, int threads) {
        ensureLoaded();
        String fn = "fst_sgemm_lowered_nchw";
        if (m > 0 && loweredCols(fn, g) > 0) {
            need(fn, "a", a, matrix(fn, m, loweredRows(fn, g), lda), false);
            need(fn, "x", x, loweredX(fn, g), false);
            need(fn, "y", y, product(fn, 4, g[0], m, g[10], g[11]), false);
        }
        int rc;
        try {
            rc = (int) LoweredHandles.SGEMM_NCHW.invokeExact(m, alpha, a, lda, x, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                    g[8], g[9], g[10], g[11], beta, y, threads, (int) g[12]);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgemm_lowered_nchw");
    }

    /**
     * C [m, K] = alpha * A * im2col(x)^T + beta * C with A the NCHW batch [n, m, ho*wo] read in place (fst_sgemm_lowered_images
     * in fst4j.h): Eq. 3 from dY as the convolution's output gradient; g as {@link #sgemmLowered}.
     */
    public static void sgemmLoweredImages(long m, float alpha, MemorySegment a, MemorySegment x, long[] g, float beta,
                                          MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        String fn = "fst_sgemm_lowered_images";
        if (m > 0 && loweredRows(fn, g) > 0) {
            need(fn, "a", a, product(fn, 4, g[0], m, g[10], g[11]), false);
            need(fn, "x", x, loweredX(fn, g), false);
            need(fn, "c", c, matrix(fn, m, loweredRows(fn, g), ldc), false);
        }
        int rc;
        try {
            rc = (int) LoweredHandles.SGEMM_IMAGES.invokeExact(m, alpha, a, x, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                    g[8], g[9], g[10], g[11], beta, c, ldc, threads, (int) g[12]);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgemm_lowered_images");
    }

    /**
     * C [m, K] = alpha * G * im2col(x)^T + beta * C with G the IR shift of dY [n, m, seg] (NCHW, read in place) at Eq. 7's
     * kept positions, computed while packing (fst_sgemm_lowered_images_shift in fst4j.h); g as {@link #sgemmLowered}.
     */
    public static void sgemmLoweredImagesShift(long m, float alpha, MemorySegment dy, long seg, int shift, float coeff, boolean circular,
                                               MemorySegment x, long[] g, float beta, MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        String fn = "fst_sgemm_lowered_images_shift";
        if (m > 0 && loweredRows(fn, g) > 0) {
            need(fn, "dy", dy, product(fn, 4, g[0], m, seg), false);
            need(fn, "x", x, loweredX(fn, g), false);
            need(fn, "c", c, matrix(fn, m, loweredRows(fn, g), ldc), false);
        }
        int rc;
        try {
            rc = (int) LoweredHandles.SGEMM_IMAGES_SHIFT.invokeExact(m, alpha, dy, seg, shift, coeff, circular ? 1 : 0, x, g[0], g[1], g[2], g[3],
                    g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], beta, c, ldc, threads, (int) g[12]);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgemm_lowered_images_shift");
    }

    /**
     * C [m, n] = alpha * op(A) [m, k] * B + beta * C with B the NCHW batch [n / bl, k, bl] read in place (fst_sgemm_images_b
     * in fst4j.h): Eq. 2's W^T dY from the convolution's output gradient.
     */
    public static void sgemmImagesB(boolean transA, long m, long n, long k, float alpha, MemorySegment a, long lda, MemorySegment b,
                                    long bl, float beta, MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        String fn = "fst_sgemm_images_b";
        if (m > 0 && n > 0) {
            need(fn, "a", a, transA ? matrix(fn, k, m, lda) : matrix(fn, m, k, lda), false);
            need(fn, "b", b, product(fn, 4, k, n), false);
            need(fn, "c", c, matrix(fn, m, n, ldc), false);
        }
        int rc;
        try {
            rc = (int) LoweredHandles.SGEMM_IMAGES_B.invokeExact(transA ? 1 : 0, m, n, k, alpha, a, lda, b, bl, beta, c, ldc, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgemm_images_b");
    }

    /**
     * C [m, nrows] = alpha * A [m, ncols] * B^T + beta * C with B[r][q] = im2col(x)[row0 + r * rstep][cols[q]]
     * (fst_sgemm_lowered_at in fst4j.h; cols int32[ncols]); g as {@link #sgemmLowered}, order 0.
     */
    public static void sgemmLoweredAt(long m, float alpha, MemorySegment a, long lda, MemorySegment x, long[] g, MemorySegment cols,
                                      long ncols, long row0, long rstep, long nrows, float beta, MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        String fn = "fst_sgemm_lowered_at";
        loweredRows(fn, g);
        if (m > 0 && nrows > 0) {
            need(fn, "a", a, matrix(fn, m, ncols, lda), false);
            need(fn, "cols", cols, product(fn, 4, ncols), false);
            need(fn, "x", x, loweredX(fn, g), false);
            need(fn, "c", c, matrix(fn, m, nrows, ldc), false);
        }
        int rc;
        try {
            rc = (int) LoweredHandles.SGEMM_AT.invokeExact(m, alpha, a, lda, x, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                    g[8], g[9], g[10], g[11], cols, ncols, row0, rstep, nrows, beta, c, ldc, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgemm_lowered_at");
    }

    /** C [m, n*ho*wo] = alpha * S * im2col(x) + beta * C for S 2:4-compressed along c*kh*kw (fst_spmm24_lowered). */
    public static void spmm24Lowered(long m, float alpha, MemorySegment values, MemorySegment meta, MemorySegment x, long[] g,
                                     float beta, MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        String fn = "fst_spmm24_lowered";
        if (loweredSpmmOperands(fn, m, values, meta, x, g)) need(fn, "c", c, matrix(fn, m, loweredCols(fn, g), ldc), false);
        int rc;
        try {
            rc = (int) LoweredHandles.SPMM24.invokeExact(m, alpha, values, meta, x, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                    g[8], g[9], g[10], g[11], beta, c, ldc, threads, (int) g[12]);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_spmm24_lowered");
    }

    /**
     * y [n, m, ho*wo] (NCHW, contiguous) = S * im2col(x) where the compiled 2:4 convolution runs or ho*wo is a multiple of
     * 16 (fst_spmm24_lowered_nchw): true; false, with nothing written, elsewhere (the caller then takes {@link #spmm24Lowered}).
     */
    public static boolean spmm24LoweredNchw(long m, MemorySegment values, MemorySegment meta, MemorySegment x, long[] g,
                                            MemorySegment y, int threads) {
        ensureLoaded();
        String fn = "fst_spmm24_lowered_nchw";
        if (loweredSpmmOperands(fn, m, values, meta, x, g)) need(fn, "y", y, product(fn, 4, g[0], m, g[10], g[11]), false);
        int rc;
        try {
            rc = (int) LoweredHandles.SPMM24_NCHW.invokeExact(m, 1f, values, meta, x, g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7],
                    g[8], g[9], g[10], g[11], y, threads, (int) g[12]);
        } catch (Throwable t) { throw rethrow(t); }
        if (rc == NO_NCHW) return false;
        check(rc, "fst_spmm24_lowered_nchw");
        return true;
    }

    // ---- max pooling and whole-activation elementwise ops (pool.c); bound on first use ----

    private static final class PoolHandles {
        static final MethodHandle MAXPOOL, MAXPOOL_BWD, AAVG, AAVG_BWD, RELU, RELU_BWD, ADD, ADD_RELU, SGD, SGD_SRSTE, COPY;
        static {
            SymbolLookup lib = LIB;
            // the argmax indices are a Java int[]: critical downcalls with heap access pass it without a copy
            MAXPOOL = LINKER.downcallHandle(lib.find("fst_maxpool2d").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    ADDRESS, ADDRESS, JAVA_INT), Linker.Option.critical(true));
            MAXPOOL_BWD = LINKER.downcallHandle(lib.find("fst_maxpool2d_backward").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS,
                    ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT), Linker.Option.critical(true));
            AAVG = bind(lib, "fst_adaptive_avgpool2d", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT), false);
            AAVG_BWD = bind(lib, "fst_adaptive_avgpool2d_backward", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT), false);
            RELU = bind(lib, "fst_relu", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), false);
            RELU_BWD = bind(lib, "fst_relu_backward", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), false);
            ADD = bind(lib, "fst_add", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), false);
            ADD_RELU = bind(lib, "fst_add_relu", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), false);
            // shape and strides are small Java long[]: passed without a copy, as the max-pool indices
            COPY = LINKER.downcallHandle(lib.find("fst_copy_f32").orElseThrow(), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), Linker.Option.critical(true));
            SGD = bind(lib, "fst_sgd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT,
                    JAVA_FLOAT, JAVA_FLOAT, JAVA_INT, JAVA_INT, JAVA_INT), false);
            SGD_SRSTE = bind(lib, "fst_sgd_srste", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                    JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_INT, JAVA_INT, JAVA_INT), false);
        }
    }

    /** Max pool of contiguous float32 planes [planes, h, w] into y [planes, ho, wo]; idx (length planes*ho*wo) gets the argmaxes. */
    public static void maxPool2d(MemorySegment x, long planes, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                 long ho, long wo, MemorySegment y, int[] idx, int threads) {
        ensureLoaded();
        long outs = product("maxPool2d", planes, ho, wo);
        if (idx.length != outs) throw new IllegalArgumentException("maxPool2d: " + idx.length + " indices for " + outs + " outputs");
        need("maxPool2d", "x", x, product("maxPool2d", 4, planes, h, w), false);
        need("maxPool2d", "y", y, product("maxPool2d", 4, outs), false);
        int rc;
        try { rc = (int) PoolHandles.MAXPOOL.invokeExact(x, planes, h, w, kh, kw, sh, sw, ph, pw, ho, wo, y, MemorySegment.ofArray(idx), threads); }
        catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_maxpool2d");
    }

    /** dx [planes, h, w] = max-pool backward of dy [planes, ho, wo] at idx; false when an index lies outside its plane. */
    public static boolean maxPool2dBackward(MemorySegment dy, int[] idx, long planes, long h, long w, long ho, long wo, MemorySegment dx, int threads) {
        ensureLoaded();
        long outs = product("maxPool2dBackward", planes, ho, wo);
        if (idx.length != outs) throw new IllegalArgumentException("maxPool2dBackward: " + idx.length + " indices for " + outs + " outputs");
        need("maxPool2dBackward", "dy", dy, product("maxPool2dBackward", 4, outs), false);
        need("maxPool2dBackward", "dx", dx, product("maxPool2dBackward", 4, planes, h, w), false);
        int rc;
        try { rc = (int) PoolHandles.MAXPOOL_BWD.invokeExact(dy, MemorySegment.ofArray(idx), planes, h, w, ho, wo, dx, threads); }
        catch (Throwable t) { throw rethrow(t); }
        if (rc == EINDEX) return false;
        check(rc, "fst_maxpool2d_backward");
        return true;
    }

    /** Adaptive average pool of contiguous float32 planes x [planes, h, w] into y [planes, ho, wo] (PyTorch's windows). */
    public static void adaptiveAvgPool2d(MemorySegment x, long planes, long h, long w, long ho, long wo, MemorySegment y, int threads) {
        ensureLoaded();
        if (x.byteSize() < planes * h * w * 4 || y.byteSize() < planes * ho * wo * 4)
            throw new IndexOutOfBoundsException("adaptiveAvgPool2d: " + planes + " planes of " + h + "x" + w + " -> " + ho + "x" + wo
                    + " exceed x (" + x.byteSize() + " bytes) or y (" + y.byteSize() + " bytes)");
        int rc;
        try { rc = (int) PoolHandles.AAVG.invokeExact(x, planes, h, w, ho, wo, y, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_adaptive_avgpool2d");
    }

    /** dx [planes, h, w] (overwritten) = adaptive average pool backward of dy [planes, ho, wo]. */
    public static void adaptiveAvgPool2dBackward(MemorySegment dy, long planes, long h, long w, long ho, long wo, MemorySegment dx, int threads) {
        ensureLoaded();
        if (dy.byteSize() < planes * ho * wo * 4 || dx.byteSize() < planes * h * w * 4)
            throw new IndexOutOfBoundsException("adaptiveAvgPool2dBackward: " + planes + " planes of " + ho + "x" + wo + " -> " + h + "x" + w
                    + " exceed dy (" + dy.byteSize() + " bytes) or dx (" + dx.byteSize() + " bytes)");
        int rc;
        try { rc = (int) PoolHandles.AAVG_BWD.invokeExact(dy, planes, h, w, ho, wo, dx, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_adaptive_avgpool2d_backward");
    }

    /** y = max(x, 0) over n contiguous floats (NaN stays NaN, -0 becomes +0). */
    public static void relu(MemorySegment x, MemorySegment y, long n, int threads) {
        ensureLoaded();
        floats("fst_relu", n, x, y);
        int rc;
        try { rc = (int) PoolHandles.RELU.invokeExact(x, y, n, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_relu");
    }

    /** dx = a > 0 ? dy : 0 over n contiguous floats. */
    public static void reluBackward(MemorySegment dy, MemorySegment a, MemorySegment dx, long n, int threads) {
        ensureLoaded();
        floats("fst_relu_backward", n, dy, a, dx);
        int rc;
        try { rc = (int) PoolHandles.RELU_BWD.invokeExact(dy, a, dx, n, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_relu_backward");
    }

    /** One SGD step over n contiguous floats (fst_sgd in fst4j.h); buf may be MemorySegment.NULL (no momentum). */
    public static void sgd(MemorySegment w, MemorySegment g, MemorySegment buf, long n, float lr, float wd, float mom, float damp,
                           boolean nesterov, boolean first, int threads) {
        ensureLoaded();
        long bytes = product("fst_sgd", 4, n);
        need("fst_sgd", "w", w, bytes, false); need("fst_sgd", "g", g, bytes, false); need("fst_sgd", "buf", buf, bytes, true);
        int rc;
        try { rc = (int) PoolHandles.SGD.invokeExact(w, g, buf, n, lr, wd, mom, damp, nesterov ? 1 : 0, first ? 1 : 0, threads); }
        catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgd");
    }

    /**
     * {@link #srsteDecay} over rows of k floats, then {@link #sgd}, in one pass with the same bits (fst_sgd_srste); g is
     * left unchanged. Needs k % 4 == 0 and n % k == 0.
     */
    public static void sgdSrste(MemorySegment w, MemorySegment g, MemorySegment buf, long n, long k, float lambda, float lr, float wd,
                                float mom, float damp, boolean nesterov, boolean first, int threads) {
        ensureLoaded();
        if (k <= 0 || k % 4 != 0 || n % k != 0) throw new IllegalArgumentException("sgdSrste: rows of " + k + " floats (a multiple of 4 dividing " + n + ") expected");
        if (n < 0 || n > Long.MAX_VALUE / 4 || w.byteSize() < 4 * n || g.byteSize() < 4 * n || (!buf.equals(MemorySegment.NULL) && buf.byteSize() < 4 * n))
            throw new IndexOutOfBoundsException("sgdSrste: " + n + " floats exceed w, g or the momentum buffer");
        int rc;
        try { rc = (int) PoolHandles.SGD_SRSTE.invokeExact(w, g, buf, n, k, lambda, lr, wd, mom, damp, nesterov ? 1 : 0, first ? 1 : 0, threads); }
        catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgd_srste");
    }

    // ---- AdamW and gradient clipping (optim.c); bound on first use ----

    private static final class OptimHandles {
        static final MethodHandle ADAMW = bind(LIB, "fst_adamw", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_INT), false);
        static final MethodHandle SUMSQ = bind(LIB, "fst_sumsq_parts", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT), false);
        static final MethodHandle SCALE = bind(LIB, "fst_scale_f32", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_FLOAT, JAVA_INT), false);
    }

    /** The partial sums of {@link #sumsqParts} (FST_NORM_PARTS in fst4j.h, FST_PARTS of the CUDA kernels). */
    public static final int NORM_PARTS = 256;

    /**
     * One AdamW step over n contiguous floats (fst_adamw in fst4j.h: the scalars of fst4j.nn.AdamW.Scalars); vmax may be
     * MemorySegment.NULL (no amsgrad).
     */
    public static void adamw(MemorySegment w, MemorySegment g, MemorySegment m, MemorySegment v, MemorySegment vmax, long n, float decay,
                             float beta1, float c1, float beta2, float c2, float step, float bc2, float eps, int threads) {
        ensureLoaded();
        if (n < 0 || n > Long.MAX_VALUE / 4 || w.byteSize() < 4 * n || g.byteSize() < 4 * n || m.byteSize() < 4 * n || v.byteSize() < 4 * n
                || (!vmax.equals(MemorySegment.NULL) && vmax.byteSize() < 4 * n))
            throw new IndexOutOfBoundsException("adamw: " + n + " floats exceed w, g, a moment or the max of the second moments");
        int rc;
        try { rc = (int) OptimHandles.ADAMW.invokeExact(w, g, m, v, vmax, n, decay, beta1, c1, beta2, c2, step, bc2, eps, threads); }
        catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_adamw");
    }

    /** parts[p] (NORM_PARTS doubles) = the sum of x[r * NORM_PARTS + p]^2 in double over r ascending, n contiguous floats. */
    public static void sumsqParts(MemorySegment x, long n, MemorySegment parts, int threads) {
        ensureLoaded();
        if (n < 0 || n > Long.MAX_VALUE / 4 || x.byteSize() < 4 * n || parts.byteSize() < 8L * NORM_PARTS)
            throw new IndexOutOfBoundsException("sumsqParts: " + n + " floats exceed x, or parts holds fewer than " + NORM_PARTS + " doubles");
        int rc;
        try { rc = (int) OptimHandles.SUMSQ.invokeExact(x, n, parts, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sumsq_parts");
    }

    /** x *= s over n contiguous floats. */
    public static void scale(MemorySegment x, long n, float s, int threads) {
        ensureLoaded();
        if (n < 0 || n > Long.MAX_VALUE / 4 || x.byteSize() < 4 * n) throw new IndexOutOfBoundsException("scale: " + n + " floats exceed x");
        int rc;
        try { rc = (int) OptimHandles.SCALE.invokeExact(x, n, s, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_scale_f32");
    }

    /** y = max(a + b, 0) over n contiguous floats. */
    public static void addRelu(MemorySegment a, MemorySegment b, MemorySegment y, long n, int threads) {
        ensureLoaded();
        floats("fst_add_relu", n, a, b, y);
        int rc;
        try { rc = (int) PoolHandles.ADD_RELU.invokeExact(a, b, y, n, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_add_relu");
    }

    /** y = a + b over n contiguous floats. */
    public static void add(MemorySegment a, MemorySegment b, MemorySegment y, long n, int threads) {
        ensureLoaded();
        floats("fst_add", n, a, b, y);
        int rc;
        try { rc = (int) PoolHandles.ADD.invokeExact(a, b, y, n, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_add");
    }

    /**
     * Float32 strided copy: dst[dstOff + sum i_d dstStrides[d]] = src[srcOff + sum i_d srcStrides[d]] for every index of
     * shape (element offsets and strides into the two segments' first float), on the shim's threads. The caller
     * guarantees both views lie inside their segments (fst4j.tensor.Tensor checks it).
     */
    public static void copyF32(MemorySegment dst, long dstOff, MemorySegment src, long srcOff, long[] shape, long[] dstStrides,
                               long[] srcStrides, int threads) {
        ensureLoaded();
        int rank = shape.length;
        if (dstStrides.length != rank || srcStrides.length != rank)
            throw new IllegalArgumentException("copyF32: rank " + rank + " with " + dstStrides.length + " / " + srcStrides.length + " strides");
        int rc;
        try {
            rc = (int) PoolHandles.COPY.invokeExact(dst, dstOff, src, srcOff, rank, MemorySegment.ofArray(shape),
                    MemorySegment.ofArray(dstStrides), MemorySegment.ofArray(srcStrides), threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_copy_f32");
    }

    // ---- convolution lowering (conv.c); bound on first use, after the library loaded ----

    private static final class ConvHandles {
        static final MethodHandle IM2COL, COL2IM, IM2COL_AT, IM2COL_AT_CSR;
        static {
            SymbolLookup lib = LIB;
            FunctionDescriptor geom = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT);
            IM2COL = bind(lib, "fst_im2col", geom, false);
            COL2IM = bind(lib, "fst_col2im", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT), false);
            IM2COL_AT = bind(lib, "fst_im2col_at", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT), false);
            IM2COL_AT_CSR = bind(lib, "fst_im2col_at_csr", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT), false);
        }
    }

    /** im2col of a contiguous float32 [n, c, h, w] batch into out [c*kh*kw, >= n*ho*wo] (row stride ldo). */
    public static void im2col(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                              long ho, long wo, MemorySegment out, long ldo, int threads) {
        ensureLoaded();
        need("fst_im2col", "x", x, product("fst_im2col", 4, n, c, h, w), false);
        need("fst_im2col", "out", out, matrix("fst_im2col", product("fst_im2col", c, kh, kw), product("fst_im2col", n, ho, wo), ldo), false);
        int rc;
        try { rc = (int) ConvHandles.IM2COL.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, out, ldo, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_im2col");
    }

    /** dx (contiguous [n, c, h, w], overwritten) = col2im of cols [c*kh*kw, >= n*ho*wo] (row stride ldc). */
    public static void col2im(MemorySegment cols, long ldc, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                              long ho, long wo, MemorySegment dx, int threads) {
        ensureLoaded();
        need("fst_col2im", "cols", cols, matrix("fst_col2im", product("fst_col2im", c, kh, kw), product("fst_col2im", n, ho, wo), ldc), false);
        need("fst_col2im", "dx", dx, product("fst_col2im", 4, n, c, h, w), false);
        int rc;
        try { rc = (int) ConvHandles.COL2IM.invokeExact(cols, ldc, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dx, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_col2im");
    }

    // ---- dilated lowering (conv_general.c): the general path of the geometries conv.c's fast paths do not take ----

    private static final class DilatedConvHandles {
        static final MethodHandle IM2COL_DIL, COL2IM_DIL;
        static {
            SymbolLookup lib = LIB;
            IM2COL_DIL = bind(lib, "fst_im2col_dil", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT), false);
            COL2IM_DIL = bind(lib, "fst_col2im_dil", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT), false);
        }
    }

    /** {@link #im2col} with dilation dh, dw (tap (i, j) reads input row oh*sh - ph + i*dh, column ow*sw - pw + j*dw). */
    public static void im2colDilated(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                     long dh, long dw, long ho, long wo, MemorySegment out, long ldo, int threads) {
        ensureLoaded();
        need("fst_im2col_dilated", "x", x, product("fst_im2col_dilated", 4, n, c, h, w), false);
        need("fst_im2col_dilated", "out", out, matrix("fst_im2col_dilated", product("fst_im2col_dilated", c, kh, kw),
                product("fst_im2col_dilated", n, ho, wo), ldo), false);
        int rc;
        try { rc = (int) DilatedConvHandles.IM2COL_DIL.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out, ldo, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_im2col_dil");
    }

    /** {@link #col2im} with dilation dh, dw: dx (contiguous [n, c, h, w], overwritten). */
    public static void col2imDilated(MemorySegment cols, long ldc, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                     long dh, long dw, long ho, long wo, MemorySegment dx, int threads) {
        ensureLoaded();
        need("fst_col2im_dilated", "cols", cols, matrix("fst_col2im_dilated", product("fst_col2im_dilated", c, kh, kw),
                product("fst_col2im_dilated", n, ho, wo), ldc), false);
        need("fst_col2im_dilated", "dx", dx, product("fst_col2im_dilated", 4, n, c, h, w), false);
        int rc;
        try { rc = (int) DilatedConvHandles.COL2IM_DIL.invokeExact(cols, ldc, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, dx, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_col2im_dil");
    }

    // ---- depthwise convolution (conv_depthwise.c): groups == cin, the general path's direct kernels ----

    private static final class DepthwiseHandles {
        static final MethodHandle FWD, DX, DW;
        static {
            SymbolLookup lib = LIB;
            FWD = bind(lib, "fst_dwconv_fwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), false);
            DX = bind(lib, "fst_dwconv_dx", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), false);
            DW = bind(lib, "fst_dwconv_dw", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), false);
        }
    }

    /**
     * The depthwise entry points trust their pointers: geom must hold the 15 values, and each operand (NULL ones left to
     * the C checks) at least the floats the geometry gives it, an output sharing no byte with another operand. sizes[i]
     * is segs[i]'s float count from geom, outputs the number of leading segs that are written. A geometry with a negative
     * value is left to the C checks (which refuse it by rc).
     */
    private static void dwSegments(String fn, long[] geom, int outputs, long[] sizes, MemorySegment... segs) {
        if (geom == null || geom.length != 15)
            throw new IllegalArgumentException(fn + ": geom must hold 15 values {n, c, mult, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo}, got "
                    + (geom == null ? "null" : geom.length));
        for (long v : geom) if (v < 0) return;
        MemorySegment[] used = new MemorySegment[segs.length];
        for (int i = 0; i < segs.length; i++) {
            if (segs[i].equals(MemorySegment.NULL)) continue;
            if (segs[i].byteSize() / 4 < sizes[i])
                throw new IndexOutOfBoundsException(fn + ": a segment of " + segs[i].byteSize() + " bytes for " + sizes[i] + " floats (operand " + i + ")");
            used[i] = segs[i].asSlice(0, sizes[i] * 4);
        }
        for (int o = 0; o < outputs; o++)
            for (int i = 0; i < segs.length; i++)
                if (i != o && used[o] != null && used[i] != null && used[o].byteSize() > 0 && used[i].byteSize() > 0 && used[o].asOverlappingSlice(used[i]).isPresent())
                    throw new IllegalArgumentException(fn + ": output operand " + o + " overlaps operand " + i);
    }

    /** {x, w, y, bias} float counts of a depthwise geometry, refused by name where they overflow. */
    private static long[] dwSizes(String fn, long[] g) {
        try {
            long cout = Math.multiplyExact(g[1], g[2]);
            return new long[]{Math.multiplyExact(Math.multiplyExact(g[0], g[1]), Math.multiplyExact(g[3], g[4])),
                    Math.multiplyExact(cout, Math.multiplyExact(g[5], g[6])),
                    Math.multiplyExact(Math.multiplyExact(g[0], cout), Math.multiplyExact(g[13], g[14])), cout};
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(fn + ": the geometry " + java.util.Arrays.toString(g) + " overflows 64-bit sizes");
        }
    }

    /**
     * Depthwise convolution forward: y = conv(x, w) + bias (bias may be {@link MemorySegment#NULL}). geom = {n, c, mult,
     * h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo}: x [n, c, h, w], w [c*mult, 1, kh, kw], y [n, c*mult, ho, wo], contiguous float32.
     */
    public static void dwconvForward(long[] geom, MemorySegment x, MemorySegment w, MemorySegment bias, MemorySegment y, int threads) {
        ensureLoaded();
        if (geom != null && geom.length == 15) {
            long[] z = dwSizes("fst_dwconv_fwd", geom);
            dwSegments("fst_dwconv_fwd", geom, 1, new long[]{z[2], z[0], z[1], z[3]}, y, x, w, bias);
        } else dwSegments("fst_dwconv_fwd", geom, 0, new long[0]);
        int rc;
        try (Arena a = Arena.ofConfined()) {
            rc = (int) DepthwiseHandles.FWD.invokeExact(a.allocateFrom(JAVA_LONG, geom), x, w, bias, y, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_dwconv_fwd");
    }

    /** Depthwise convolution's input gradient: dx [n, c, h, w] overwritten from dy [n, c*mult, ho, wo] and w. */
    public static void dwconvInputGrad(long[] geom, MemorySegment dy, MemorySegment w, MemorySegment dx, int threads) {
        ensureLoaded();
        if (geom != null && geom.length == 15) {
            long[] z = dwSizes("fst_dwconv_dx", geom);
            dwSegments("fst_dwconv_dx", geom, 1, new long[]{z[0], z[2], z[1]}, dx, dy, w);
        } else dwSegments("fst_dwconv_dx", geom, 0, new long[0]);
        int rc;
        try (Arena a = Arena.ofConfined()) {
            rc = (int) DepthwiseHandles.DX.invokeExact(a.allocateFrom(JAVA_LONG, geom), dy, w, dx, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_dwconv_dx");
    }

    /** Depthwise convolution's weight gradient dw [c*mult, kh*kw] and / or bias gradient dbias [c*mult] (either NULL), overwritten. */
    public static void dwconvWeightGrad(long[] geom, MemorySegment x, MemorySegment dy, MemorySegment dw, MemorySegment dbias, int threads) {
        ensureLoaded();
        if (geom != null && geom.length == 15) {
            long[] z = dwSizes("fst_dwconv_dw", geom);
            dwSegments("fst_dwconv_dw", geom, 2, new long[]{z[1], z[3], z[0], z[2]}, dw, dbias, x, dy);
        } else dwSegments("fst_dwconv_dw", geom, 0, new long[0]);
        int rc;
        try (Arena a = Arena.ofConfined()) {
            rc = (int) DepthwiseHandles.DW.invokeExact(a.allocateFrom(JAVA_LONG, geom), x, dy, dw, dbias, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_dwconv_dw");
    }

    /** im2col at output positions pos (int32[npos]) of every image: column img*npos + q of out (row stride ldo). */
    public static void im2colAt(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                long ho, long wo, MemorySegment pos, long npos, MemorySegment out, long ldo, int threads) {
        ensureLoaded();
        need("fst_im2col_at", "x", x, product("fst_im2col_at", 4, n, c, h, w), false);
        need("fst_im2col_at", "pos", pos, product("fst_im2col_at", 4, npos), false);
        need("fst_im2col_at", "out", out, matrix("fst_im2col_at", product("fst_im2col_at", c, kh, kw), npos, ldo), false);
        int rc;
        try { rc = (int) ConvHandles.IM2COL_AT.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, pos, npos, out, ldo, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_im2col_at");
    }

    /**
     * im2col at one list of output positions per image: image img's are pos[off[img] .. off[img + 1]) (off: int64[n + 1]),
     * written to those columns of out; only im2col rows row0, row0 + rstep, ... (nrows of them), as out's rows 0 .. nrows.
     */
    public static void im2colAtCsr(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                   long ho, long wo, MemorySegment off, MemorySegment pos, long row0, long rstep, long nrows,
                                   MemorySegment out, long ldo, int threads) {
        ensureLoaded();
        need("fst_im2col_at_csr", "x", x, product("fst_im2col_at_csr", 4, n, c, h, w), false);
        need("fst_im2col_at_csr", "off", off, product("fst_im2col_at_csr", 8, Math.addExact(n, 1)), false);   // pos and out: off[n] long
        int rc;
        try {
            rc = (int) ConvHandles.IM2COL_AT_CSR.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, off, pos, row0, rstep, nrows, out, ldo, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_im2col_at_csr");
    }

    /**
     * Raw fused magnitude 2:4 prune + compress of W [rows, K] (ldw >= K) along K into values [rows, Kp/2] and
     * meta [rows, ceil(Kp/32)]; when dense is not {@link MemorySegment#NULL}, also the pruned copy [rows, K]
     * (ldd >= K). Callers (fst4j.sparse.Compressed24) must have bounds-checked every argument.
     */
    public static void prune24Compress(long rows, long k, MemorySegment w, long ldw, MemorySegment values, MemorySegment meta,
                                       MemorySegment dense, long ldd, int threads) {
        ensureLoaded();
        if (k < 0 || k > Long.MAX_VALUE - 32) throw new IllegalArgumentException("fst_prune24_compress: K = " + k);
        long groups = (k + 3) / 4;
        need("fst_prune24_compress", "w", w, matrix("fst_prune24_compress", rows, k, ldw), false);
        need("fst_prune24_compress", "values", values, product("fst_prune24_compress", 4, rows, 2 * groups), false);
        need("fst_prune24_compress", "meta", meta, product("fst_prune24_compress", 4, rows, (groups + 7) / 8), false);
        if (!dense.equals(MemorySegment.NULL)) need("fst_prune24_compress", "dense", dense, matrix("fst_prune24_compress", rows, k, ldd), true);
        int rc;
        try {
            rc = (int) PRUNE24.invokeExact(rows, k, w, ldw, values, meta, dense, ldd, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_prune24_compress");
    }

    private static final class PatternHandles {   // bound on first use
        static final MethodHandle PATTERN24 = bind(LIB, "fst_pattern24", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT), false);
    }

    private static final class TopKHandles {   // bound on first use
        static final MethodHandle TOPK = bind(LIB, "fst_topk", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT), false);
    }

    private static final class ReSpropHandles {   // bound on first use
        static final MethodHandle RESPROP = bind(LIB, "fst_resprop", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                JAVA_LONG, JAVA_LONG, JAVA_DOUBLE, ADDRESS, JAVA_INT), false);
    }

    /**
     * ReSprop's output gradient (fst_resprop in fst4j.h): for g [n, per] and the sample p [per], contiguous floats,
     * out = p + (g - p) where !(|g - p| <= threshold), else p; returns how many elements were kept.
     */
    public static long resprop(MemorySegment g, MemorySegment p, MemorySegment out, long n, long per, double threshold, int threads) {
        ensureLoaded();
        if (n < 0 || per < 0) throw new IllegalArgumentException("fst_resprop: " + n + " x " + per + " floats");
        long bytes;
        try { bytes = Math.multiplyExact(Math.multiplyExact(n, per), 4L); } catch (ArithmeticException e) {
            throw new IllegalArgumentException("fst_resprop: " + n + " x " + per + " floats overflow");
        }
        if (g.byteSize() < bytes || out.byteSize() < bytes || p.byteSize() < per * 4)
            throw new IllegalArgumentException("fst_resprop: segments of " + g.byteSize() + ", " + p.byteSize() + " and " + out.byteSize()
                    + " bytes for " + n + " x " + per + " floats");
        int rc;
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            MemorySegment kept = arena.allocate(JAVA_LONG);
            try { rc = (int) ReSpropHandles.RESPROP.invokeExact(g, p, out, n, per, threshold, kept, threads); } catch (Throwable t) { throw rethrow(t); }
            check(rc, "fst_resprop");
            return kept.get(JAVA_LONG, 0);
        }
    }

    /**
     * out = x at the k largest |x| of every line along len, +0.0 elsewhere, x and out contiguous [outer, len, inner]
     * floats, not overlapping (fst_topk in fst4j.h: Sparsifier.TopK's rule, ties to the lower index, NaN the largest).
     */
    public static void topK(MemorySegment x, MemorySegment out, long outer, long len, long inner, long k, int threads) {
        ensureLoaded();
        floats("fst_topk", product("fst_topk", outer, len, inner), x, out);
        int rc;
        try { rc = (int) TopKHandles.TOPK.invokeExact(x, out, outer, len, inner, k, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_topk");
    }

    /**
     * out = x where a fixed 2:4 pattern keeps the element, +0.0 elsewhere, x and out contiguous [outer, len, inner]
     * floats, the pattern along len: -1 Eq. 7's even positions, 0..3 AuthorsFixed24's (fst_pattern24 in fst4j.h).
     */
    public static void pattern24(MemorySegment x, MemorySegment out, long outer, long len, long inner, int pattern, int threads) {
        ensureLoaded();
        floats("fst_pattern24", product("fst_pattern24", outer, len, inner), x, out);
        int rc;
        try { rc = (int) PatternHandles.PATTERN24.invokeExact(x, out, outer, len, inner, pattern, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_pattern24");
    }

    /**
     * Raw S(W^T): W [cout, K] (ldw >= K) read as W^T [K, cout], pruned 2:4 along cout and compressed into
     * values [K, Cp/2], meta [K, ceil(Cp/32)]. Callers (fst4j.sparse.Compressed24) must have bounds-checked.
     */
    public static void prune24CompressTransposed(long cout, long k, MemorySegment w, long ldw, MemorySegment values,
                                                 MemorySegment meta, int threads) {
        ensureLoaded();
        String fn = "fst_prune24_compress_t";
        long g4 = (cout + 3) / 4;
        need(fn, "w", w, matrix(fn, cout, k, ldw), false);
        need(fn, "values", values, product(fn, 4, k, 2 * g4), false);
        need(fn, "meta", meta, product(fn, 4, k, (g4 + 7) / 8), false);
        int rc;
        try {
            rc = (int) PRUNE24_T.invokeExact(cout, k, w, ldw, values, meta, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_prune24_compress_t");
    }

    /**
     * Raw IR shift + half-K gather: dy rows x len (contiguous, len a multiple of seg) into out
     * rows x (len/seg)*ceil(seg/2); coeff 0 is a plain gather. Callers (fst4j.sparse.HalfK) must have bounds-checked.
     */
    public static void shiftGather(MemorySegment dy, MemorySegment out, long rows, long len, long seg,
                                   int shift, float coeff, boolean circular, int threads) {
        ensureLoaded();
        if (seg > 0 && len >= 0 && rows >= 0) {
            need("fst_shift_gather", "dy", dy, product("fst_shift_gather", 4, rows, len), false);
            need("fst_shift_gather", "out", out, product("fst_shift_gather", 4, rows, len / seg, (seg + 1) / 2), false);
        }
        int rc;
        try {
            rc = (int) SHIFT_GATHER.invokeExact(dy, out, rows, len, seg, shift, coeff, circular ? 1 : 0, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_shift_gather");
    }

    /**
     * Raw IR shift + half-K gather of NCHW planes read in place: segment (r, i) at dy + i * ldImage + r * ldRow (floats),
     * out rows x images*ceil(seg/2) contiguous (fst_shift_gather_images). Callers (fst4j.sparse.HalfK) must have
     * bounds-checked.
     */
    public static void shiftGatherImages(MemorySegment dy, MemorySegment out, long rows, long images, long seg, long ldRow,
                                         long ldImage, int shift, float coeff, boolean circular, int threads) {
        ensureLoaded();
        String fn = "fst_shift_gather_images";
        if (rows > 0 && images > 0 && seg > 0) {
            long extent;
            try { extent = Math.addExact(Math.addExact(product(fn, images - 1, ldImage), product(fn, rows - 1, ldRow)), seg); }
            catch (ArithmeticException e) { throw new IllegalArgumentException(fn + ": dy's extent overflows a long"); }
            need(fn, "dy", dy, product(fn, 4, extent), false);
            need(fn, "out", out, product(fn, 4, rows, images, (seg + 1) / 2), false);
        }
        int rc;
        try {
            rc = (int) SHIFT_GATHER_IMAGES.invokeExact(dy, out, rows, images, seg, ldRow, ldImage, shift, coeff, circular ? 1 : 0, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_shift_gather_images");
    }

    /**
     * Raw IR shift read at positions pos (int32[npos], each in [0, len)) of every row of dy (rows x len, row stride ldd)
     * into out (rows x npos, row stride ldo); coeff 0 is a plain gather. Callers (fst4j.sparse.HalfK) must have
     * bounds-checked.
     */
    public static void shiftGatherAt(MemorySegment dy, long ldd, MemorySegment out, long ldo, long rows, long len, long seg,
                                     MemorySegment pos, long npos, int shift, float coeff, boolean circular, int threads) {
        ensureLoaded();
        need("fst_shift_gather_at", "dy", dy, matrix("fst_shift_gather_at", rows, len, ldd), false);
        need("fst_shift_gather_at", "out", out, matrix("fst_shift_gather_at", rows, npos, ldo), false);
        need("fst_shift_gather_at", "pos", pos, product("fst_shift_gather_at", 4, npos), false);
        int rc;
        try {
            rc = (int) SHIFT_GATHER_AT.invokeExact(dy, ldd, out, ldo, rows, len, seg, pos, npos, shift, coeff, circular ? 1 : 0, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_shift_gather_at");
    }

    // ---- CUDA shim (libfst4j_cuda.so, see native-cuda/CUDA.md): loaded and initialised on first use, apart from
    // libfst4j.so; the public face is fst4j.shim.Cuda. Device pointers are address-only MemorySegments. ----

    static final String CUDA_RESOURCE = "/native/linux-x86_64/libfst4j_cuda.so";
    static final String CUDA_EMU_RESOURCE = "/native/linux-x86_64/libfst4j_cuda_emu.so";
    /**
     * -Dfst4j.cuda.emulate=true: the CUDA back end is libfst4j_cuda_emu.so, which runs the very kernel bodies of
     * fst4j_kernels.cu on the CPU over the same grid, with the same argument checks (native-cuda/CUDA.md). Fixed for
     * the life of the JVM; tests of the CUDA paths run once with it (in CI) and once without (on a GPU machine).
     */
    static final boolean CUDA_EMULATED = Boolean.getBoolean("fst4j.cuda.emulate");
    static final int ECUDA = -3, EUNAVAIL = -4;

    /**
     * Path of libfst4j_cuda.so (or, emulated, libfst4j_cuda_emu.so): -Dfst4j.cuda.lib / env FST4J_CUDA_LIB (emulated:
     * -Dfst4j.cuda.emuLib / env FST4J_CUDA_EMU_LIB), else the jar's copy extracted to a temp file.
     */
    static String locateCuda(String override, String resource) throws IOException {
        String name = resource.substring(resource.lastIndexOf('/') + 1);
        if (override != null && !override.isBlank()) {
            if (!Files.isReadable(Path.of(override))) throw new CudaUnavailableException(name + " not found at " + override);
            return override;
        }
        try (InputStream in = Native.class.getResourceAsStream(resource)) {
            if (in == null) throw new CudaUnavailableException(name + " not built (nvcc missing at build time)");
            Path tmp = Files.createTempFile(name.replace(".so", ""), ".so");
            tmp.toFile().deleteOnExit();
            Files.copy(in, tmp, StandardCopyOption.REPLACE_EXISTING);
            return tmp.toString();
        }
    }

    static final class CudaHandles {
        static final String STATUS;
        static final boolean AVAILABLE;
        static final MethodHandle LAST_ERROR, BLAS_STATUS, SPLT_STATUS, MALLOC, FREE, MEMCPY, MEMSET, SYNC;
        static final MethodHandle PRUNE24, PRUNE24_T, SHIFT_GATHER, IM2COL, COL2IM, IM2COL_AT, F2BF, SGEMM;
        static final MethodHandle SPLT_PLAN, SPLT_COMPRESS, SPLT_MATMUL, SPLT_FREE;
        /** The loaded back end's symbols (null when it did not load), for the lazily bound {@link CudaOpHandles}. */
        static final SymbolLookup LIB;
        static {
            SymbolLookup loaded = null;
            String status;
            boolean ok = false;
            MethodHandle lastError = null, blasStatus = null, spltStatus = null, malloc = null, free = null, memcpy = null, memset = null,
                    sync = null, prune = null, pruneT = null, shiftGather = null, im2col = null, col2im = null, im2colAt = null, f2bf = null,
                    sgemm = null, spltPlan = null, spltCompress = null, spltMatmul = null, spltFree = null;
            try {
                String path = CUDA_EMULATED
                        ? locateCuda(System.getProperty("fst4j.cuda.emuLib", System.getenv("FST4J_CUDA_EMU_LIB")), CUDA_EMU_RESOURCE)
                        : locateCuda(System.getProperty("fst4j.cuda.lib", System.getenv("FST4J_CUDA_LIB")), CUDA_RESOURCE);
                SymbolLookup lib;
                try {
                    lib = SymbolLookup.libraryLookup(Path.of(path), Arena.global());
                } catch (IllegalArgumentException e) {
                    throw new CudaUnavailableException("cannot load libfst4j_cuda.so from " + path + ": " + e.getMessage());
                }
                MethodHandle init = bind(lib, "fst_cuda_init", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), false);
                MethodHandle statusFn = bind(lib, "fst_cuda_status", FunctionDescriptor.of(ADDRESS), true);
                lastError = bind(lib, "fst_cuda_last_error", FunctionDescriptor.of(ADDRESS), true);
                blasStatus = bind(lib, "fst_cuda_blas_status", FunctionDescriptor.of(ADDRESS), true);
                spltStatus = bind(lib, "fst_cuda_splt_status", FunctionDescriptor.of(ADDRESS), true);
                malloc = bind(lib, "fst_cuda_malloc", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), false);
                free = bind(lib, "fst_cuda_free", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
                memcpy = bind(lib, "fst_cuda_memcpy", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), false);
                memset = bind(lib, "fst_cuda_memset", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG), false);
                sync = bind(lib, "fst_cuda_sync", FunctionDescriptor.of(JAVA_INT), false);
                prune = bind(lib, "fst_cuda_prune24", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS,
                        ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG), false);
                pruneT = bind(lib, "fst_cuda_prune24_t", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS,
                        ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG), false);
                shiftGather = bind(lib, "fst_cuda_shift_gather", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                        JAVA_INT, JAVA_FLOAT, JAVA_INT), false);
                im2col = bind(lib, "fst_cuda_im2col", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                        JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG), false);
                col2im = bind(lib, "fst_cuda_col2im", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                        JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
                im2colAt = bind(lib, "fst_cuda_im2col_at", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                        JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG), false);
                f2bf = bind(lib, "fst_cuda_f32_to_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG), false);
                sgemm = bind(lib, "fst_cuda_sgemm", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                        JAVA_FLOAT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG), false);
                spltPlan = bind(lib, "fst_cuda_splt_plan", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT,
                        ADDRESS, ADDRESS), false);
                spltCompress = bind(lib, "fst_cuda_splt_compress", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
                spltMatmul = bind(lib, "fst_cuda_splt_matmul", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_FLOAT, ADDRESS, ADDRESS, JAVA_FLOAT,
                        ADDRESS, ADDRESS), false);
                spltFree = bind(lib, "fst_cuda_splt_plan_free", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
                String dirs = System.getProperty("fst4j.cuda.libDir", System.getenv("FST4J_CUDA_LIB_DIR"));
                boolean defaults = Boolean.parseBoolean(System.getProperty("fst4j.cuda.searchDefaults", "true"));
                int rc;
                try (Arena a = Arena.ofConfined()) {
                    MemorySegment dirsArg = dirs == null ? MemorySegment.NULL : a.allocateFrom(dirs);
                    rc = (int) init.invokeExact(dirsArg, defaults ? 1 : 0);
                }
                status = cString((MemorySegment) statusFn.invokeExact());
                ok = rc == OK;
                loaded = lib;
            } catch (CudaUnavailableException e) {
                status = e.getMessage();
            } catch (Throwable t) {
                status = "cannot load the CUDA shim: " + t;
            }
            STATUS = status; AVAILABLE = ok; LIB = ok ? loaded : null;
            LAST_ERROR = lastError; BLAS_STATUS = blasStatus; SPLT_STATUS = spltStatus;
            MALLOC = malloc; FREE = free; MEMCPY = memcpy; MEMSET = memset; SYNC = sync;
            PRUNE24 = prune; PRUNE24_T = pruneT; SHIFT_GATHER = shiftGather; IM2COL = im2col; COL2IM = col2im; IM2COL_AT = im2colAt;
            F2BF = f2bf; SGEMM = sgemm; SPLT_PLAN = spltPlan; SPLT_COMPRESS = spltCompress; SPLT_MATMUL = spltMatmul; SPLT_FREE = spltFree;
        }
    }

    private static String cString(MemorySegment p) {
        return p.equals(MemorySegment.NULL) ? "" : p.reinterpret(4096).getString(0);
    }

    /** One line: "ok: <device> ..." or why CUDA cannot be used (see {@link Cuda#status()}). */
    public static String cudaStatus() { return CudaHandles.STATUS; }

    public static boolean cudaAvailable() { return CudaHandles.AVAILABLE; }

    /** True when the CUDA back end is the host emulator (-Dfst4j.cuda.emulate=true), whether or not it loaded. */
    public static boolean cudaEmulated() { return CUDA_EMULATED; }

    /** Throws {@link CudaUnavailableException} with the reason unless a device is usable. */
    public static void cudaEnsure() {
        if (!CudaHandles.AVAILABLE) throw new CudaUnavailableException("CUDA is not available: " + CudaHandles.STATUS);
    }

    private static void cudaCheck(int rc, String fn) {
        if (rc == OK) return;
        String msg;
        try { msg = cString((MemorySegment) CudaHandles.LAST_ERROR.invokeExact()); } catch (Throwable t) { msg = t.toString(); }
        if (rc == EUNAVAIL) throw new CudaUnavailableException(fn + ": " + msg);
        if (rc == ECUDA) throw new CudaException(fn + ": " + msg);
        throw new IllegalArgumentException(fn + " rejected its arguments (code " + rc + (msg.isEmpty() ? "" : ": " + msg) + ")");
    }

    public static String cudaBlasStatus() {
        if (!CudaHandles.AVAILABLE) return "not loaded (" + CudaHandles.STATUS + ")";
        try { return cString((MemorySegment) CudaHandles.BLAS_STATUS.invokeExact()); } catch (Throwable t) { throw rethrow(t); }
    }

    public static String cudaSparseLtStatus() {
        if (!CudaHandles.AVAILABLE) return "not loaded (" + CudaHandles.STATUS + ")";
        try { return cString((MemorySegment) CudaHandles.SPLT_STATUS.invokeExact()); } catch (Throwable t) { throw rethrow(t); }
    }

    public static MemorySegment cudaMalloc(long bytes) {
        cudaEnsure();
        if (bytes < 0) throw new IllegalArgumentException("negative size " + bytes);
        int rc;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            rc = (int) CudaHandles.MALLOC.invokeExact(out, bytes);
            if (rc == OK) return out.get(ADDRESS, 0);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_malloc");
        throw new AssertionError();
    }

    public static void cudaFree(MemorySegment p) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.FREE.invokeExact(p); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_free");
    }

    /** kind: 1 host to device, 2 device to host, 3 device to device. Synchronous for pageable host memory. */
    public static void cudaMemcpy(MemorySegment dst, MemorySegment src, long bytes, int kind) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.MEMCPY.invokeExact(dst, src, bytes, kind); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_memcpy");
    }

    public static void cudaMemset(MemorySegment p, int value, long bytes) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.MEMSET.invokeExact(p, value, bytes); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_memset");
    }

    public static void cudaSync() {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.SYNC.invokeExact(); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_sync");
    }

    /** Device fst_prune24_compress; dense (fp32) and dense16 (bf16 bits) may be NULL, or values and meta both (masked copies only). */
    public static void cudaPrune24(long rows, long k, MemorySegment w, long ldw, MemorySegment values, MemorySegment meta,
                                   MemorySegment dense, long ldd, MemorySegment dense16, long ldd16) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.PRUNE24.invokeExact(rows, k, w, ldw, values, meta, dense, ldd, dense16, ldd16); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_prune24");
    }

    /** Device fst_prune24_compress_t, plus optional masked W^T copies [k, cout] (fp32 / bf16 bits; NULL for none); values and meta both NULL: the copies only. */
    public static void cudaPrune24Transposed(long cout, long k, MemorySegment w, long ldw, MemorySegment values, MemorySegment meta,
                                             MemorySegment denseT, long lddt, MemorySegment dense16T, long ldd16t) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.PRUNE24_T.invokeExact(cout, k, w, ldw, values, meta, denseT, lddt, dense16T, ldd16t); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_prune24_t");
    }

    public static void cudaShiftGather(MemorySegment dy, MemorySegment out, long rows, long len, long seg, int shift, float coeff, boolean circular) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.SHIFT_GATHER.invokeExact(dy, out, rows, len, seg, shift, coeff, circular ? 1 : 0); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_shift_gather");
    }

    public static void cudaIm2col(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                  long ho, long wo, MemorySegment out, long ldo) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.IM2COL.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, out, ldo); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_im2col");
    }

    public static void cudaCol2im(MemorySegment cols, long ldc, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                  long ho, long wo, MemorySegment dx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.COL2IM.invokeExact(cols, ldc, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dx); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_col2im");
    }

    /** The dilated CUDA lowerings (fst_cuda_im2col_dil / fst_cuda_col2im_dil); bound on first use. */
    private static final class CudaDilationHandles {
        static final MethodHandle IM2COL_DIL, COL2IM_DIL;
        static {
            SymbolLookup lib = CudaHandles.LIB;
            IM2COL_DIL = bind(lib, "fst_cuda_im2col_dil", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG), false);
            COL2IM_DIL = bind(lib, "fst_cuda_col2im_dil", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
        }
    }

    /** {@link #cudaIm2col} with dilation dh, dw (tap (i, j) reads input row oh*sh - ph + i*dh, column ow*sw - pw + j*dw). */
    public static void cudaIm2colDilated(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                         long dh, long dw, long ho, long wo, MemorySegment out, long ldo) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaDilationHandles.IM2COL_DIL.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, out, ldo); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_im2col_dil");
    }

    /** {@link #cudaCol2im} with dilation dh, dw: dx (contiguous [n, c, h, w], overwritten). */
    public static void cudaCol2imDilated(MemorySegment cols, long ldc, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                         long dh, long dw, long ho, long wo, MemorySegment dx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaDilationHandles.COL2IM_DIL.invokeExact(cols, ldc, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, dx); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_col2im_dil");
    }

    /** {@link #cudaCol2im} of bf16 columns (row stride ldc), e.g. a bf16 GEMM product. */
    public static void cudaCol2imBf16(MemorySegment cols, long ldc, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph,
                                      long pw, long ho, long wo, MemorySegment dx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.COL2IM_BF16.invokeExact(cols, ldc, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dx); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_col2im_bf16");
    }

    /** pos: device int32[npos], each in [0, ho*wo) (not validated on the device). */
    public static void cudaIm2colAt(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                    long ho, long wo, MemorySegment pos, long npos, MemorySegment out, long ldo) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.IM2COL_AT.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, pos, npos, out, ldo); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_im2col_at");
    }

    public static void cudaF32ToBf16(MemorySegment src, MemorySegment dst, long n) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.F2BF.invokeExact(src, dst, n); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_f32_to_bf16");
    }

    /** cuBLAS SGEMM with fst_sgemm's row-major contract (device pointers). */
    public static void cudaSgemm(boolean transA, boolean transB, long m, long n, long k, float alpha, MemorySegment a, long lda,
                                 MemorySegment b, long ldb, float beta, MemorySegment c, long ldc) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.SGEMM.invokeExact(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_sgemm");
    }

    /** cuSPARSELt plan for D = A B (+ beta C), row-major, A [m, k] 2:4 along k; sizesOut gets 3 longs (compressed, buffer, workspace). */
    public static MemorySegment cudaSparseLtPlan(long m, long n, long k, int abType, int cdType, long[] sizesOut) {
        cudaEnsure();
        int rc;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS), sizes = a.allocate(JAVA_LONG, 3);
            rc = (int) CudaHandles.SPLT_PLAN.invokeExact(m, n, k, abType, cdType, out, sizes);
            if (rc == OK) {
                for (int i = 0; i < 3; i++) sizesOut[i] = sizes.getAtIndex(JAVA_LONG, i);
                return out.get(ADDRESS, 0);
            }
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_splt_plan");
        throw new AssertionError();
    }

    public static void cudaSparseLtCompress(MemorySegment plan, MemorySegment denseA, MemorySegment compressed, MemorySegment buffer) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.SPLT_COMPRESS.invokeExact(plan, denseA, compressed, buffer); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_splt_compress");
    }

    public static void cudaSparseLtMatmul(MemorySegment plan, float alpha, MemorySegment compressedA, MemorySegment b, float beta,
                                          MemorySegment c, MemorySegment workspace) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.SPLT_MATMUL.invokeExact(plan, alpha, compressedA, b, beta, c, workspace); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_splt_matmul");
    }

    public static void cudaSparseLtPlanFree(MemorySegment plan) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaHandles.SPLT_FREE.invokeExact(plan); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_splt_plan_free");
    }

    // ---- CUDA tensor ops (cuda_ops.c, fst4j_cuda.h); bound on first use from the loaded back end (device or emulator).
    // Device pointers are address-only segments already at the tensor's first element; shapes and strides are
    // host arrays, copied into a confined arena per call. Callers (fst4j.tensor.CudaOps) bounds-check first. ----

    private static final class CudaOpHandles {
        static final MethodHandle BINARY, UNARY, SHIFT_ADD, RESPROP, SUM, MAXPOOL, MAXPOOL_BWD, AAVG, AAVG_BWD, BN_TRAIN, BN_APPLY, BN_BWD, XENT, XENT_WORK, SOFTMAX, SOFTMAX_BWD, GEMM, SGD, SRSTE, SGD_SRSTE, BF16_PAD, IM2COL_BF16, BF16_UNPAD, KPROF, KPROF_ON, COL2IM_BF16, MAXPOOL_BWD_GEOM, BN_PARTS, BN_WORK, BF16_UNPAD_NCHW, IM2COL_VEC, BY_CHANNEL, SHIFT_GATHER16, BINARY_S, WHERE, ARGMAX, VAR, PRUNE_NM, SRSTE_NM, EMBED_GATHER, EMBED_SCATTER, LANES, SORT, SORT_PAIRS, SORT_SCATTER;
        static {
            SymbolLookup lib = CudaHandles.LIB;
            BF16_UNPAD = bind(lib, "fst_cuda_bf16_unpad", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG), false);
            IM2COL_VEC = bind(lib, "fst_cuda_im2col_vec", FunctionDescriptor.of(JAVA_INT, JAVA_INT), false);
            SHIFT_GATHER16 = bind(lib, "fst_cuda_shift_gather16", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_INT, JAVA_FLOAT, JAVA_INT), false);
            BY_CHANNEL = bind(lib, "fst_cuda_by_channel", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS), false);
            BF16_UNPAD_NCHW = bind(lib, "fst_cuda_bf16_unpad_nchw", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG), false);
            KPROF = bind(lib, "fst_cuda_kprof_report", FunctionDescriptor.of(ADDRESS, JAVA_INT), false);
            KPROF_ON = bind(lib, "fst_cuda_kprof", FunctionDescriptor.of(JAVA_INT, JAVA_INT), false);
            MAXPOOL_BWD_GEOM = bind(lib, "fst_cuda_maxpool_bwd_geom", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
            COL2IM_BF16 = bind(lib, "fst_cuda_col2im_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
            IM2COL_BF16 = bind(lib, "fst_cuda_im2col_bf16", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG), false);
            BF16_PAD = bind(lib, "fst_cuda_bf16_pad", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    ADDRESS, JAVA_LONG, JAVA_LONG), false);
            BINARY = bind(lib, "fst_cuda_binary", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
            BINARY_S = bind(lib, "fst_cuda_binary_s", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_DOUBLE, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS), false);
            WHERE = bind(lib, "fst_cuda_where", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS), false);
            ARGMAX = bind(lib, "fst_cuda_argmax", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
            VAR = bind(lib, "fst_cuda_var", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG,
                    ADDRESS, ADDRESS), false);
            SHIFT_ADD = bind(lib, "fst_cuda_shift_add", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_INT, JAVA_FLOAT, JAVA_INT), false);
            RESPROP = bind(lib, "fst_cuda_resprop", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                    JAVA_DOUBLE, ADDRESS), false);
            UNARY = bind(lib, "fst_cuda_unary", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_DOUBLE, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
            SUM = bind(lib, "fst_cuda_sum", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS), false);
            MAXPOOL = bind(lib, "fst_cuda_maxpool", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS), false);
            MAXPOOL_BWD = bind(lib, "fst_cuda_maxpool_bwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
            AAVG = bind(lib, "fst_cuda_adaptive_avg", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
            AAVG_BWD = bind(lib, "fst_cuda_adaptive_avg_bwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
            BN_TRAIN = bind(lib, "fst_cuda_bn_train", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_DOUBLE, JAVA_DOUBLE, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT), false);
            BN_PARTS = bind(lib, "fst_cuda_bn_parts", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG), false);
            BN_WORK = bind(lib, "fst_cuda_bn_work", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT), false);
            BN_APPLY = bind(lib, "fst_cuda_bn_apply", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS), false);
            BN_BWD = bind(lib, "fst_cuda_bn_backward", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
            XENT = bind(lib, "fst_cuda_xent", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_DOUBLE, JAVA_DOUBLE, ADDRESS, ADDRESS, ADDRESS), false);
            XENT_WORK = bind(lib, "fst_cuda_xent_work", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG), false);
            SOFTMAX = bind(lib, "fst_cuda_softmax", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS), false);
            SOFTMAX_BWD = bind(lib, "fst_cuda_softmax_bwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS), false);
            GEMM = bind(lib, "fst_cuda_gemm", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_FLOAT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_LONG), false);
            SGD = bind(lib, "fst_cuda_sgd", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT,
                    JAVA_INT, JAVA_INT), false);
            SRSTE = bind(lib, "fst_cuda_srste_decay", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_FLOAT), false);
            EMBED_GATHER = bind(lib, "fst_cuda_embed_gather", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS), false);
            LANES = bind(lib, "fst_cuda_lanes", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
            SORT = bind(lib, "fst_cuda_sort", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT,
                    JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
            SORT_PAIRS = bind(lib, "fst_cuda_sort_pairs", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG), false);
            SORT_SCATTER = bind(lib, "fst_cuda_sort_scatter", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG), false);
            EMBED_SCATTER = bind(lib, "fst_cuda_embed_scatter", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS,
                    JAVA_LONG, ADDRESS), false);
            PRUNE_NM = bind(lib, "fst_cuda_prune_nm", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT), false);
            SRSTE_NM = bind(lib, "fst_cuda_srste_decay_nm", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT,
                    JAVA_FLOAT), false);
            SGD_SRSTE = bind(lib, "fst_cuda_sgd_srste", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_FLOAT,
                    JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_INT, JAVA_INT), false);
        }
    }

    private static MemorySegment longs(Arena a, long[] v) { return v.length == 0 ? MemorySegment.NULL : a.allocateFrom(JAVA_LONG, v); }

    /** Elementwise binary op (fst4j_cuda.h op codes) of a and b broadcast by their strides into contiguous out. */
    public static void cudaBinary(int op, long[] shape, MemorySegment a, long[] sa, MemorySegment b, long[] sb, MemorySegment out) {
        cudaEnsure();
        sameRank("fst_cuda_binary", shape, sa, sb);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaOpHandles.BINARY.invokeExact(op, shape.length, longs(ar, shape), a, longs(ar, sa), b, longs(ar, sb), out);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_binary");
    }

    /** {@link #cudaBinary} with the op's scalar s (fst_cuda_binary_s: smooth-L1's beta). */
    public static void cudaBinary(int op, double s, long[] shape, MemorySegment a, long[] sa, MemorySegment b, long[] sb, MemorySegment out) {
        cudaEnsure();
        sameRank("fst_cuda_binary_s", shape, sa, sb);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaOpHandles.BINARY_S.invokeExact(op, s, shape.length, longs(ar, shape), a, longs(ar, sa), b, longs(ar, sb), out);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_binary_s");
    }

    /** out = c != 0 ? a : b, the three broadcast by their strides into contiguous out (fst_cuda_where). */
    public static void cudaWhere(long[] shape, MemorySegment c, long[] sc, MemorySegment a, long[] sa, MemorySegment b, long[] sb, MemorySegment out) {
        cudaEnsure();
        sameRank("fst_cuda_where", shape, sc, sa, sb);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaOpHandles.WHERE.invokeExact(shape.length, longs(ar, shape), c, longs(ar, sc), a, longs(ar, sa), b, longs(ar, sb), out);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_where");
    }

    /**
     * Max (out) and / or argmax (arg, the reduced index as a float) of x over the reduced axes for every kept position
     * (fst_cuda_argmax); lastNan: a NaN wins as the last one (max), else the first (argmax). work / iwork: device scratch
     * of nout * CUDA_PARTS doubles / int64 for more than CUDA_PARTS values per output (NULL: serial).
     */
    public static void cudaArgmax(MemorySegment x, long[] kshape, long[] kstride, long[] rshape, long[] rstride, boolean lastNan, MemorySegment out,
                                  MemorySegment arg, MemorySegment work, MemorySegment iwork) {
        cudaEnsure();
        sameRank("fst_cuda_argmax", kshape, kstride); sameRank("fst_cuda_argmax", rshape, rstride);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaOpHandles.ARGMAX.invokeExact(x, kshape.length, longs(ar, kshape), longs(ar, kstride), rshape.length, longs(ar, rshape),
                    longs(ar, rstride), lastNan ? 1 : 0, out, arg, work, iwork);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_argmax");
    }

    /**
     * Variance of x over the reduced axes, sum (x - mean)^2 / max(0, n - correction), for every kept position (fst_cuda_var);
     * work: device scratch of nout * (CUDA_PARTS + 1) doubles for more than CUDA_PARTS values per output (NULL: serial).
     */
    public static void cudaVar(MemorySegment x, long[] kshape, long[] kstride, long[] rshape, long[] rstride, long correction, MemorySegment out,
                               MemorySegment work) {
        cudaEnsure();
        sameRank("fst_cuda_var", kshape, kstride); sameRank("fst_cuda_var", rshape, rstride);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaOpHandles.VAR.invokeExact(x, kshape.length, longs(ar, kshape), longs(ar, kstride), rshape.length, longs(ar, rshape),
                    longs(ar, rstride), correction, out, work);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_var");
    }

    /** Elementwise unary op (fst4j_cuda.h op codes; fill ignores x, which may be NULL) into contiguous y. */
    public static void cudaUnary(int op, double s, long[] shape, MemorySegment x, long[] sx, MemorySegment y) {
        cudaEnsure();
        if (sx != null) sameRank("fst_cuda_unary", shape, sx);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            MemorySegment strides = sx == null ? MemorySegment.NULL : longs(ar, sx);   // a local: invokeExact needs exact static types
            rc = (int) CudaOpHandles.UNARY.invokeExact(op, s, shape.length, longs(ar, shape), x, strides, y);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_unary");
    }

    /** {@link #shiftAdd} on the device (dy and out device pointers, not overlapping). */
    public static void cudaShiftAdd(MemorySegment dy, MemorySegment out, long rows, long len, long seg, int shift, float coeff, boolean circular) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SHIFT_ADD.invokeExact(dy, out, rows, len, seg, shift, coeff, circular ? 1 : 0); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_shift_add");
    }

    /**
     * {@link #resprop} on the device (g, p, out device floats; work a device block of (CUDA_PARTS + 1) * CUDA_PARTS
     * int64): writes out and leaves the kept count as CUDA_PARTS partial counts at the start of work.
     */
    public static void cudaResprop(MemorySegment g, MemorySegment p, MemorySegment out, long n, long per, double threshold, MemorySegment work) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.RESPROP.invokeExact(g, p, out, n, per, threshold, work); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_resprop");
    }

    /** Partial sums per output of the CUDA reductions (FST_PARTS): scratch sizes are multiples of it. */
    public static final int CUDA_PARTS = 256;

    /**
     * Sum (or mean) of x over the reduced axes (rshape, rstride) for every kept position (kshape, kstride) into contiguous
     * out; work: device scratch of nout * CUDA_PARTS doubles used when more than CUDA_PARTS terms are summed (NULL: serial).
     */
    public static void cudaSum(MemorySegment x, long[] kshape, long[] kstride, long[] rshape, long[] rstride, boolean mean, MemorySegment out,
                               MemorySegment work) {
        cudaEnsure();
        sameRank("fst_cuda_sum", kshape, kstride); sameRank("fst_cuda_sum", rshape, rstride);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaOpHandles.SUM.invokeExact(x, kshape.length, longs(ar, kshape), longs(ar, kstride), rshape.length, longs(ar, rshape),
                    longs(ar, rstride), mean ? 1 : 0, out, work);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_sum");
    }

    public static void cudaMaxPool(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                   long ho, long wo, MemorySegment y, MemorySegment idx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.MAXPOOL.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, y, idx); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_maxpool");
    }

    /** dx [planes, inPlane] = max pool backward of dy [planes, outPlane] with int32 argmax indices idx (within a plane). */
    public static void cudaMaxPoolBackward(MemorySegment dy, MemorySegment idx, long planes, long inPlane, long outPlane, MemorySegment dx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.MAXPOOL_BWD.invokeExact(dy, idx, planes, inPlane, outPlane, dx); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_maxpool_bwd");
    }

    /** {@link #cudaMaxPoolBackward} with the forward's geometry: a thread per dx element (the same bits). */
    public static void cudaMaxPoolBackward(MemorySegment dy, MemorySegment idx, long n, long c, long h, long w, long kh, long kw, long sh, long sw,
                                           long ph, long pw, long ho, long wo, MemorySegment dx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.MAXPOOL_BWD_GEOM.invokeExact(dy, idx, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dx); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_maxpool_bwd_geom");
    }

    public static void cudaAdaptiveAvgPool(MemorySegment x, long n, long c, long h, long w, long oh, long ow, MemorySegment y) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.AAVG.invokeExact(x, n, c, h, w, oh, ow, y); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_adaptive_avg");
    }

    public static void cudaAdaptiveAvgPoolBackward(MemorySegment dy, long n, long c, long h, long w, long oh, long ow, MemorySegment dx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.AAVG_BWD.invokeExact(dy, n, c, h, w, oh, ow, dx); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_adaptive_avg_bwd");
    }

    /**
     * Partial sums per channel of the device batch norm for c channels of m elements each (fst_cuda_bn_parts: a power of
     * two from CUDA_PARTS up, more where few channels hold many elements).
     */
    public static long cudaBnParts(long c, long m) {
        cudaEnsure();
        try { return (long) CudaOpHandles.BN_PARTS.invokeExact(c, m); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Doubles of device scratch that {@link #cudaBnTrain} (backward false) or {@link #cudaBnBackward} needs for c channels of m elements. */
    public static long cudaBnWork(long c, long m, boolean backward) {
        cudaEnsure();
        try { return (long) CudaOpHandles.BN_WORK.invokeExact(c, m, backward ? 1 : 0); } catch (Throwable t) { throw rethrow(t); }
    }

    /** {@link #bnTrain} on the device (relu: the fused ReLU); work: device scratch of cudaBnWork(c, n hw, false) doubles. */
    public static void cudaBnTrain(MemorySegment x, MemorySegment gamma, MemorySegment beta, MemorySegment runningMean, MemorySegment runningVar,
                                   long n, long c, long hw, double momentum, double eps, MemorySegment y, MemorySegment mean, MemorySegment invStd,
                                   MemorySegment work, boolean relu) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.BN_TRAIN.invokeExact(x, gamma, beta, runningMean, runningVar, n, c, hw, momentum, eps, y, mean, invStd, work, relu ? 1 : 0); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_bn_train");
    }

    /** y = x * scale + shift per channel, in double, with work = device doubles [scale0, shift0, scale1, ...] (2c). */
    public static void cudaBnApply(MemorySegment x, long n, long c, long hw, MemorySegment work, MemorySegment y) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.BN_APPLY.invokeExact(x, n, c, hw, work, y); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_bn_apply");
    }

    /**
     * {@link #bnBackward} on the device; reluOut: the fused forward's output (dy counts only where it is > 0), or NULL;
     * work: device scratch of cudaBnWork(c, n hw, true) doubles.
     */
    public static void cudaBnBackward(MemorySegment dy, MemorySegment x, MemorySegment gamma, MemorySegment mean, MemorySegment invStd,
                                      long n, long c, long hw, MemorySegment dx, MemorySegment dgamma, MemorySegment dbeta, MemorySegment work,
                                      MemorySegment reluOut) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.BN_BWD.invokeExact(dy, x, gamma, mean, invStd, n, c, hw, dx, dgamma, dbeta, work, reluOut); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_bn_backward");
    }

    /** The doubles of device scratch {@link #cudaCrossEntropy} takes for logits [n, c] (n (c + 3) up to 2^22 logits, else n). */
    public static long cudaCrossEntropyWork(long n, long c) {
        cudaEnsure();
        try { return (long) CudaOpHandles.XENT_WORK.invokeExact(n, c); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Cross-entropy with label smoothing on the device: loss [1] and/or grad [n, c] (NULL to skip); work: cudaCrossEntropyWork(n, c) doubles. */
    public static void cudaCrossEntropy(MemorySegment logits, MemorySegment labels, long n, long c, double smoothing, double gradScale,
                                        MemorySegment loss, MemorySegment grad, MemorySegment work) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.XENT.invokeExact(logits, labels, n, c, smoothing, gradScale, loss, grad, work); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_xent");
    }

    /** Softmax (log: log-softmax) along the middle axis of contiguous [outer, n, inner] into y. */
    public static void cudaSoftmax(MemorySegment x, long outer, long n, long inner, boolean log, MemorySegment y) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SOFTMAX.invokeExact(x, outer, n, inner, log ? 1 : 0, y); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_softmax");
    }

    /** Backward of {@link #cudaSoftmax} from its output y and dy into dx (all contiguous [outer, n, inner]). */
    public static void cudaSoftmaxBackward(MemorySegment y, MemorySegment dy, long outer, long n, long inner, boolean log, MemorySegment dx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SOFTMAX_BWD.invokeExact(y, dy, outer, n, inner, log ? 1 : 0, dx); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_softmax_bwd");
    }

    /** fst4j's own device SGEMM (fst_sgemm's row-major contract): the fallback where cuBLAS is missing, and the emulator's. */
    public static void cudaGemm(boolean transA, boolean transB, long m, long n, long k, float alpha, MemorySegment a, long lda,
                                MemorySegment b, long ldb, float beta, MemorySegment c, long ldc) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.GEMM.invokeExact(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_gemm");
    }

    // ---- cuda-gaps: average pool, eval-mode batch norm backward, the non-finite check and strided writes on the device
    // (cuda_ops.c's cuda-gaps block); bound on first use. Kept together so that other additions here merge around them. ----

    private static final class CudaGapHandles {
        static final MethodHandle AVG_POOL, AVG_POOL_BWD, BN_EVAL_BWD, NONFINITE, STRIDED_WRITE;
        static {
            SymbolLookup lib = CudaHandles.LIB;
            AVG_POOL = bind(lib, "fst_cuda_avg_pool", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS), false);
            AVG_POOL_BWD = bind(lib, "fst_cuda_avg_pool_bwd", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS), false);
            BN_EVAL_BWD = bind(lib, "fst_cuda_bn_eval_backward", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_DOUBLE, ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
            NONFINITE = bind(lib, "fst_cuda_nonfinite", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS), false);
            STRIDED_WRITE = bind(lib, "fst_cuda_strided_write", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, ADDRESS,
                    ADDRESS, JAVA_INT, JAVA_INT, JAVA_DOUBLE), false);
        }
    }

    /** int32 flags {@link #cudaNonFinite} needs: one answer and FST_NONFINITE_PARTS partial ones (fst4j_kargs.h). */
    public static final int CUDA_NONFINITE_FLAGS = 1 + 4096;

    /** Pool.avgPool2d on the device: contiguous NCHW x into y [n, c, ho, wo]; countPad: divisor kh*kw, else the window's part inside x. */
    public static void cudaAvgPool(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                   long ho, long wo, boolean countPad, MemorySegment y) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaGapHandles.AVG_POOL.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, countPad ? 1 : 0, y); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_avg_pool");
    }

    /** The backward of {@link #cudaAvgPool}: dx [n, c, h, w] (overwritten) from contiguous dy [n, c, ho, wo]. */
    public static void cudaAvgPoolBackward(MemorySegment dy, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                           long ho, long wo, boolean countPad, MemorySegment dx) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaGapHandles.AVG_POOL_BWD.invokeExact(dy, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, countPad ? 1 : 0, dx); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_avg_pool_bwd");
    }

    /**
     * Norm.batchNorm2dEvalBackward on the device (contiguous dy, x; gamma may be NULL); work: device scratch of
     * {@link #cudaBnWork}(c, n hw, true) doubles.
     */
    public static void cudaBnEvalBackward(MemorySegment dy, MemorySegment x, MemorySegment gamma, MemorySegment runningMean, MemorySegment runningVar,
                                          long n, long c, long hw, double eps, MemorySegment dx, MemorySegment dgamma, MemorySegment dbeta,
                                          MemorySegment work) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaGapHandles.BN_EVAL_BWD.invokeExact(dy, x, gamma, runningMean, runningVar, n, c, hw, eps, dx, dgamma, dbeta, work); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_bn_eval_backward");
    }

    /** flags[0] (device int32) = whether x ([shape] under strides sx; float64 where f64) holds a NaN or an infinity. */
    public static void cudaNonFinite(long[] shape, MemorySegment x, long[] sx, boolean f64, MemorySegment flags) {
        cudaEnsure();
        sameRank("fst_cuda_nonfinite", shape, sx);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaGapHandles.NONFINITE.invokeExact(shape.length, longs(ar, shape), x, longs(ar, sx), f64 ? 1 : 0, flags);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_nonfinite");
    }

    /**
     * y ([shape] under strides sy; float64 where yF64) = x ([shape] under sx; float64 where xF64) converted, or the value s
     * where fill (x and sx unused, may be NULL / null). x must not overlap y.
     */
    public static void cudaStridedWrite(long[] shape, MemorySegment x, long[] sx, boolean xF64, MemorySegment y, long[] sy, boolean yF64,
                                        boolean fill, double s) {
        cudaEnsure();
        sameRank("fst_cuda_strided_write", shape, sy); if (sx != null) sameRank("fst_cuda_strided_write", shape, sx);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            MemorySegment xs = sx == null ? MemorySegment.NULL : longs(ar, sx);   // a local: invokeExact needs exact static types
            rc = (int) CudaGapHandles.STRIDED_WRITE.invokeExact(shape.length, longs(ar, shape), x, xs, xF64 ? 1 : 0, y, longs(ar, sy), yF64 ? 1 : 0,
                    fill ? 1 : 0, s);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_strided_write");
    }

    // ---- AdamW and gradient clipping on the device (cuda_ops.c); bound on first use ----

    private static final class CudaOptimHandles {
        static final MethodHandle ADAMW, SUMSQ, SCALE;
        static {
            SymbolLookup lib = CudaHandles.LIB;
            ADAMW = bind(lib, "fst_cuda_adamw", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG,
                    JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT, JAVA_FLOAT), false);
            SUMSQ = bind(lib, "fst_cuda_sumsq_parts", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS), false);
            SCALE = bind(lib, "fst_cuda_scale", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_FLOAT), false);
        }
    }

    /** {@link #adamw} on the device (fst_cuda_adamw): the same scalars and bits; vmax NULL: no amsgrad. */
    public static void cudaAdamw(MemorySegment w, MemorySegment g, MemorySegment m, MemorySegment v, MemorySegment vmax, long n, float decay,
                                 float beta1, float c1, float beta2, float c2, float step, float bc2, float eps) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOptimHandles.ADAMW.invokeExact(w, g, m, v, vmax, n, decay, beta1, c1, beta2, c2, step, bc2, eps); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_adamw");
    }

    /** {@link #sumsqParts} on the device: parts is a device block of NORM_PARTS doubles. */
    public static void cudaSumsqParts(MemorySegment x, long n, MemorySegment parts) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOptimHandles.SUMSQ.invokeExact(x, n, parts); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_sumsq_parts");
    }

    /** x *= s over n contiguous floats on the device. */
    public static void cudaScale(MemorySegment x, long n, float s) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOptimHandles.SCALE.invokeExact(x, n, s); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_scale");
    }

    /** One SGD step over n weights; buf NULL = no momentum; first: buf = g. */
    public static void cudaSgd(MemorySegment w, MemorySegment g, MemorySegment buf, long n, float lr, float wd, float momentum, float damp,
                               boolean first, boolean nesterov) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SGD.invokeExact(w, g, buf, n, lr, wd, momentum, damp, first ? 1 : 0, nesterov ? 1 : 0); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_sgd");
    }

    /** {@link #srsteDecay} on the device. */
    /** SGD with SR-STE's decay in one pass on the device (fst_sgd_srste's contract; g is not written; buf NULL: no momentum). */
    public static void cudaSgdSrste(MemorySegment w, MemorySegment g, MemorySegment buf, long n, long k, float lambda, float lr, float wd, float mom,
                                    float damp, boolean first, boolean nesterov) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SGD_SRSTE.invokeExact(w, g, buf, n, k, lambda, lr, wd, mom, damp, first ? 1 : 0, nesterov ? 1 : 0); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_sgd_srste");
    }

    /** Magnitude n:m along the middle axis of a contiguous device x [outer, len, inner] into out (fst_cuda_prune_nm). */
    public static void cudaPruneNM(MemorySegment x, MemorySegment out, long outer, long len, long inner, int n, int m) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.PRUNE_NM.invokeExact(x, out, outer, len, inner, n, m); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_prune_nm");
    }

    /** F.embedding's rows on the device: out [n, d] row i = w [v, d] row idx[i] (fst_cuda_embed_gather; idx checked by the caller). */
    public static void cudaEmbedGather(MemorySegment w, long v, long d, MemorySegment idx, long n, MemorySegment out) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.EMBED_GATHER.invokeExact(w, v, d, idx, n, out); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_embed_gather");
    }

    /**
     * Lanes of a contiguous device x [outer, n, inner] (fst_cuda_lanes; op FST_LANE_*: 0 cumsum, 1 cumsum from the end,
     * 2 product into out [outer, inner], 3 the product's gradient from g [outer, inner]; g NULL except for 3).
     */
    public static void cudaLanes(int op, MemorySegment x, MemorySegment g, long outer, long n, long inner, MemorySegment out) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.LANES.invokeExact(op, x, g, outer, n, inner, out); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_lanes");
    }

    /**
     * Sorts each line of a contiguous device x [outer, n, inner] (fst_cuda_sort: Sort.compare's stable order, descending
     * by the reversed order) and writes sorted positions start .. start + count - 1 of each (median: the lower median or
     * the line's first NaN) as values, float32 indices and, where src is not NULL, int32 flat offsets [outer, count, inner];
     * keys: device scratch of outer * inner * {@link #cudaSortPairs}(n) longs.
     */
    public static void cudaSort(MemorySegment x, long outer, long n, long inner, boolean descending, long start, boolean median, long count,
                                MemorySegment keys, MemorySegment values, MemorySegment indices, MemorySegment src) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SORT.invokeExact(x, outer, n, inner, descending ? 1 : 0, start, median ? 1 : 0, count, keys, values, indices, src); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_sort");
    }

    /** A sorted line's padded length (n rounded up to a power of two) for 1 <= n <= 2^24, else -1 (fst_cuda_sort_pairs). */
    public static long cudaSortPairs(long n) {
        cudaEnsure();
        try { return (long) CudaOpHandles.SORT_PAIRS.invokeExact(n); } catch (Throwable t) { throw rethrow(t); }
    }

    /** The sort's backward: dx [numel] (zeroed by the caller) gets g [m] at src [m] (fst_cuda_sort_scatter). */
    public static void cudaSortScatter(MemorySegment g, MemorySegment src, long m, MemorySegment dx, long numel) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SORT_SCATTER.invokeExact(g, src, m, dx, numel); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_sort_scatter");
    }

    /** Its weight gradient dw [v, d] from g [n, d] and the indices' CSR off [v + 1], pos [n] (fst_cuda_embed_scatter). */
    public static void cudaEmbedScatter(MemorySegment g, long n, long d, MemorySegment off, MemorySegment pos, long v, MemorySegment dw) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.EMBED_SCATTER.invokeExact(g, n, d, off, pos, v, dw); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_embed_scatter");
    }

    /** SR-STE's decay where magnitude n:m along each row of w [rows, k] prunes, on the device (fst_cuda_srste_decay_nm). */
    public static void cudaSrsteDecayNM(MemorySegment w, MemorySegment g, long rows, long k, int n, int m, float lambda) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SRSTE_NM.invokeExact(w, g, rows, k, n, m, lambda); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_srste_decay_nm");
    }

    public static void cudaSrsteDecay(MemorySegment w, MemorySegment g, long rows, long k, float lambda) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SRSTE.invokeExact(w, g, rows, k, lambda); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_srste_decay");
    }

    /**
     * Switches the span bf16 im2col for 3x3 kernels at horizontal stride 1 or 2 (fst_cuda_im2col_vec: on by default
     * since runs 17-19 timed it, 1.06-1.07x on the H100's ResNet-18 DENSE step; FST4J_CUDA_IM2COL_VEC=0 starts with it
     * off, for A/Bs); returns whether it was on. Switching on takes the four-column kernels (mode 1); see
     * {@link #cudaIm2colVecMode} for the eight-column default.
     */
    public static boolean cudaIm2colVec(boolean on) {
        cudaEnsure();
        try { return (int) CudaOpHandles.IM2COL_VEC.invokeExact(on ? 1 : 0) != 0; } catch (Throwable t) { throw rethrow(t); }
    }

    /** The same switch with its modes: 0 off, 1 the four-column span kernels, 8 their eight-column forms; returns the previous mode. */
    public static int cudaIm2colVecMode(int mode) {
        if (mode != 0 && mode != 1 && mode != 8) throw new IllegalArgumentException("im2col mode " + mode + " (0, 1 or 8)");
        cudaEnsure();
        try { return (int) CudaOpHandles.IM2COL_VEC.invokeExact(mode); } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * dst fp32 [imgs, rows, plane] contiguous = src bf16 [rows, ld] with dst[img, r, p] = src[r, img * plane + p], exactly:
     * a convolution's product [Cout, N*H*W] read back straight into NCHW.
     */
    public static void cudaBf16UnpadNchw(MemorySegment src, long ld, MemorySegment dst, long rows, long imgs, long plane) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.BF16_UNPAD_NCHW.invokeExact(src, ld, dst, rows, imgs, plane); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_bf16_unpad_nchw");
    }

    /**
     * dst fp32 [rows, imgs * plane] = src fp32 [imgs, rows, plane] (both contiguous) permuted, every bit kept, and where
     * dst16 is not NULL its bf16 rounding [rows, imgs * plane] as {@link #cudaBf16Pad} rounds: one pass for a batch's dY
     * as the GEMM operand of Eq. 2 and Eq. 3.
     */
    /** {@link #cudaShiftGather} that also writes the output's bf16 rounding into out16 (bf16 bits, the output's shape). */
    public static void cudaShiftGather16(MemorySegment dy, MemorySegment out, MemorySegment out16, long rows, long len, long seg, int shift,
                                         float coeff, boolean circular) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.SHIFT_GATHER16.invokeExact(dy, out, out16, rows, len, seg, shift, coeff, circular ? 1 : 0); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_shift_gather16");
    }

    public static void cudaByChannel(MemorySegment src, long imgs, long rows, long plane, MemorySegment dst, MemorySegment dst16) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.BY_CHANNEL.invokeExact(src, imgs, rows, plane, dst, dst16); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_by_channel");
    }

    /** dst fp32 [rows, cols] contiguous = the first rows x cols of src bf16 (row stride ld), exactly. */
    public static void cudaBf16Unpad(MemorySegment src, long ld, MemorySegment dst, long rows, long cols) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.BF16_UNPAD.invokeExact(src, ld, dst, rows, cols); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_bf16_unpad");
    }

    /** Switches the kernel profile (fst_cuda_kprof); returns whether it was on. */
    public static boolean cudaKernelProfileOn(boolean on) {
        cudaEnsure();
        try { return (int) CudaOpHandles.KPROF_ON.invokeExact(on ? 1 : 0) != 0; } catch (Throwable t) { throw rethrow(t); }
    }

    /** The kernel profile's table (fst_cuda_kprof_report): device time per kernel and library call; reset clears it. */
    public static String cudaKernelProfile(boolean reset) {
        cudaEnsure();
        try { return ((MemorySegment) CudaOpHandles.KPROF.invokeExact(reset ? 1 : 0)).reinterpret(16384).getString(0); }   // the shim's buffer size
        catch (Throwable t) { throw rethrow(t); }
    }

    /** dst bf16 [rowsP, colsP] = src fp32 [rows, cols] (element strides rs, cs) rounded to nearest even, zero-padded. */
    public static void cudaBf16Pad(MemorySegment src, long rows, long cols, long rs, long cs, MemorySegment dst, long rowsP, long colsP) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.BF16_PAD.invokeExact(src, rows, cols, rs, cs, dst, rowsP, colsP); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_bf16_pad");
    }

    // ---- cuBLAS GemmEx and CUDA events: bound on first use (a libfst4j_cuda.so built before they existed still loads) ----

    private static final class CudaExtHandles {
        static final MethodHandle GEMM_EX, EVENT_CREATE, EVENT_RECORD, EVENT_ELAPSED, EVENT_DESTROY;
        static {
            SymbolLookup lib = CudaHandles.LIB;
            GEMM_EX = bind(lib, "fst_cuda_gemm_ex", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_FLOAT,
                    ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_INT), false);
            EVENT_CREATE = bind(lib, "fst_cuda_event_create", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
            EVENT_RECORD = bind(lib, "fst_cuda_event_record", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
            EVENT_ELAPSED = bind(lib, "fst_cuda_event_elapsed_ms", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS), false);
            EVENT_DESTROY = bind(lib, "fst_cuda_event_destroy", FunctionDescriptor.of(JAVA_INT, ADDRESS), false);
        }
    }

    /**
     * cublasGemmEx with fst_sgemm's row-major contract (device pointers): types are cudaDataType codes (A and B both
     * fp32 (0) or both bf16 (14); C fp32, or bf16 for bf16 inputs), fp32 accumulation, tf32 (fp32 inputs only) selects
     * the TF32 tensor-core compute type. Emulated on the host emulator.
     */
    public static void cudaGemmEx(boolean transA, boolean transB, long m, long n, long k, float alpha, MemorySegment a, int atype, long lda,
                                  MemorySegment b, int btype, long ldb, float beta, MemorySegment c, int ctype, long ldc, boolean tf32) {
        cudaEnsure();
        int rc;
        try {
            rc = (int) CudaExtHandles.GEMM_EX.invokeExact(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, atype, lda, b, btype, ldb, beta, c, ctype,
                    ldc, tf32 ? 1 : 0);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_gemm_ex");
    }

    /**
     * {@link #cudaGemmEx} over {@code batch} products (cublasGemmStridedBatchedEx): product i reads a + i strideA and
     * b + i strideB (elements; 0 repeats an operand) and writes c + i strideC, which must not overlap another product's C.
     * Emulated on the host emulator.
     */
    /** The batched GemmEx, in a holder of its own: a library without it (built before session 41) still gives GemmEx and the events. */
    private static final class CudaBatchedHandles {
        static final MethodHandle GEMM_EX_BATCHED = bind(CudaHandles.LIB, "fst_cuda_gemm_ex_batched", FunctionDescriptor.of(JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG,
                JAVA_FLOAT, ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT), false);
    }

    public static void cudaGemmExBatched(boolean transA, boolean transB, long m, long n, long k, float alpha, MemorySegment a, int atype,
                                         long lda, long strideA, MemorySegment b, int btype, long ldb, long strideB, float beta,
                                         MemorySegment c, int ctype, long ldc, long strideC, long batch, boolean tf32) {
        cudaEnsure();
        int rc;
        try {
            rc = (int) CudaBatchedHandles.GEMM_EX_BATCHED.invokeExact(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, atype, lda, strideA, b, btype,
                    ldb, strideB, beta, c, ctype, ldc, strideC, batch, tf32 ? 1 : 0);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_gemm_ex_batched");
    }

    /** A new CUDA event (cudaEventCreate); destroy it with {@link #cudaEventDestroy}. */
    public static MemorySegment cudaEventCreate() {
        cudaEnsure();
        int rc;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            rc = (int) CudaExtHandles.EVENT_CREATE.invokeExact(out);
            if (rc == OK) return out.get(ADDRESS, 0);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_event_create");
        throw new AssertionError();
    }

    /** Records the event on the legacy default stream. */
    public static void cudaEventRecord(MemorySegment event) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaExtHandles.EVENT_RECORD.invokeExact(event); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_event_record");
    }

    /** Waits for stop, then the milliseconds between the two recorded events. */
    public static float cudaEventElapsedMs(MemorySegment start, MemorySegment stop) {
        cudaEnsure();
        int rc;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_FLOAT);
            rc = (int) CudaExtHandles.EVENT_ELAPSED.invokeExact(start, stop, out);
            if (rc == OK) return out.get(JAVA_FLOAT, 0);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_event_elapsed_ms");
        throw new AssertionError();
    }

    public static void cudaEventDestroy(MemorySegment event) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaExtHandles.EVENT_DESTROY.invokeExact(event); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_event_destroy");
    }

    /** dst bf16 [rowsP, colsP] = im2col of contiguous float32 x [n, c, h, w] rounded to nearest even, zero-padded. */
    // ---- block kernels (fst4j_kargs.h FST_BLOCK_KERNELS): shared memory, barriers, warp shuffles, tensor-core mma ----

    private static final class CudaBlockHandles {
        static final MethodHandle SELFTEST, WGMMA_PROBE_T, WGGEMM, WGCONV, NHWC16, EMU_ORDER, CONV_IGEMM, WFLIP16, CONV_IGEMM_SP, CONV24_T, IGEMM_TILE, WGRAD_SPLITS, WGRAD, WTAP16, WGRAD_SG,
                WG_ASYNC;
        static {
            SymbolLookup lib = CudaHandles.LIB;
            IGEMM_TILE = bind(lib, "fst_cuda_igemm_tile", FunctionDescriptor.of(JAVA_INT, JAVA_INT), false);
            WG_ASYNC = bind(lib, "fst_cuda_wg_async", FunctionDescriptor.of(JAVA_INT, JAVA_INT), false);
            WGRAD_SPLITS = bind(lib, "fst_cuda_conv_wgrad_splits", FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG), false);
            WGRAD_SG = bind(lib, "fst_cuda_conv_wgrad_sg", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_INT,
                    JAVA_FLOAT, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_FLOAT, JAVA_INT), false);
            WGRAD = bind(lib, "fst_cuda_conv_wgrad", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG,
                    ADDRESS, JAVA_LONG, JAVA_FLOAT, JAVA_INT), false);
            CONV_IGEMM_SP = bind(lib, "fst_cuda_conv_igemm_sp", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG,
                    JAVA_LONG, ADDRESS, JAVA_INT), false);
            CONV24_T = bind(lib, "fst_cuda_conv24_t", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, ADDRESS), false);
            WFLIP16 = bind(lib, "fst_cuda_wflip16", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT), false);
            SELFTEST = bind(lib, "fst_cuda_block_selftest", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
            WGMMA_PROBE_T = bind(lib, "fst_cuda_wgmma_probe_t", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, ADDRESS, ADDRESS, JAVA_INT), false);
            WGGEMM = bind(lib, "fst_cuda_wggemm", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_FLOAT, JAVA_FLOAT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT), false);
            WGCONV = bind(lib, "fst_cuda_wgconv", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS,
                    JAVA_FLOAT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT), false);
            NHWC16 = bind(lib, "fst_cuda_nhwc16", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS), false);
            EMU_ORDER = bind(lib, "fst_cuda_emu_order", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG), false);
            CONV_IGEMM = bind(lib, "fst_cuda_conv_igemm", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT), false);
            WTAP16 = bind(lib, "fst_cuda_wtap16", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG), false);
        }
    }

    /**
     * The block-kernel self-test (fst4j_kargs.h, fst_k_selftest_args): per block of 128 threads, a reversal through
     * shared memory and a barrier, a warp's butterfly sum and a lane reversal by shuffles, and one mma.m16n8k16 of warp
     * 0, one mma.sp.m16n8k32 of warp 1 (sa: kept values, sm: one metadata word per row, sbt: B^T, sd: the product). Modes
     * 1 and 2 (emulator only) break the barrier / warp rules and must fail.
     */
    public static void cudaBlockSelftest(MemorySegment in, MemorySegment out, MemorySegment a, MemorySegment bt, MemorySegment d, long blocks, int mode,
                                         MemorySegment sa, MemorySegment sm, MemorySegment sbt, MemorySegment sd) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.SELFTEST.invokeExact(in, out, a, bt, d, blocks, mode, sa, sm, sbt, sd); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_block_selftest");
    }

    /**
     * Hopper's wgmma against the emulator's model (fst4j_kargs.h, fst_k_wgprobe_args): per block d [64, 64] float32 = a
     * [64, 16] bf16 x bt [64, 16] bf16 (B^T) by wgmma.m64n64k16; with meta (64 int32 words per block, k_prune24's layout)
     * A is 2:4 along k, given as its kept values a, times bt [64, 32] by wgmma.sp.m64n64k32 (meta NULL: the dense one).
     * Staged as K-major core matrices lbo bytes apart along K and sbo bytes apart every 8 rows; ok[b] (int32) = 1 where the
     * instruction ran (0 on a device build without sm_90a).
     */
    public static void cudaWgmmaProbe(MemorySegment a, MemorySegment bt, MemorySegment d, long lbo, long sbo, long blocks, MemorySegment ok,
                                      MemorySegment meta) {
        cudaWgmmaProbe(a, bt, d, lbo, sbo, blocks, ok, meta, 0);
    }

    /**
     * {@link #cudaWgmmaProbe} with transb (dense only) 1: bt holds B^T as before, but B is staged MN-major (core matrix (n / 8,
     * k / 8) at (n / 8) sbo + (k / 8) lbo, row k % 8 of 8 consecutive n) and wgmma runs with imm-trans-b = 1; 2: the same
     * with lbo and sbo swapped in B's descriptor (fst_cuda_wgmma_probe_t).
     */
    public static void cudaWgmmaProbe(MemorySegment a, MemorySegment bt, MemorySegment d, long lbo, long sbo, long blocks, MemorySegment ok,
                                      MemorySegment meta, int transb) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.WGMMA_PROBE_T.invokeExact(a, bt, d, lbo, sbo, blocks, ok, meta, transb); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_wgmma_probe_t");
    }

    /**
     * A GEMM on Hopper's warpgroup tensor cores (fst4j_kargs.h, fst_k_wggemm_args): c [m, n] float32 = alpha a b + beta c,
     * a bf16 [m, lda] row-major, b given as B^T bf16 [n, ldb]; with meta (k_prune24's int32 words, [m, ldm]) a holds A's
     * kept values and the product runs on wgmma.sp (meta NULL: dense). n a multiple of 128. ok (int32)
     * = 1 where the instructions ran (0 on a device build without sm_90a). rows: the tile, 64 (one warpgroup, K slices of
     * 64) or 128 (two warpgroups sharing B^T, K slices of 32; m a multiple of 128, k of 32).
     */
    public static void cudaWggemm(MemorySegment a, long lda, MemorySegment bt, long ldb, MemorySegment c, long ldc, long m, long n, long k,
                                  float alpha, float beta, MemorySegment meta, long ldm, MemorySegment ok, int rows) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.WGGEMM.invokeExact(a, lda, bt, ldb, c, ldc, m, n, k, alpha, beta, meta, ldm, ok, rows); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_wggemm");
    }

    /**
     * dst bf16 [cin, ldd] = the transposed, tap-reversed weight of w float32 [cout, cin, kh, kw] (contiguous), rounded:
     * dst[ci][(co*kh + r)*kw + s] = w[co][ci][kh-1-r][kw-1-s], with which Eq. 2 of a stride-1 convolution is a convolution of dY.
     */
    public static void cudaWflip16(MemorySegment w, long cout, long cin, long kh, long kw, MemorySegment dst, long ldd) {
        cudaWflip16(w, cout, cin, kh, kw, dst, ldd, false);
    }

    /** {@link #cudaWflip16} with K ordered (tap, co), channels fastest, where channelsFastest. */
    public static void cudaWflip16(MemorySegment w, long cout, long cin, long kh, long kw, MemorySegment dst, long ldd, boolean channelsFastest) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.WFLIP16.invokeExact(w, cout, cin, kh, kw, dst, ldd, channelsFastest ? 1 : 0); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_wflip16");
    }

    /** out bf16 NHWC [n, h, w, c] = x float32 NCHW [n, c, h, w] rounded to nearest even (the warpgroup convolution's input). */
    public static void cudaNhwc16(MemorySegment x, long n, long c, long h, long w, MemorySegment out) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.NHWC16.invokeExact(x, n, c, h, w, out); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_nhwc16");
    }

    /**
     * Eq. 1 of a convolution on the warpgroup tensor cores (fst_cuda_wgconv): y float32 NCHW [n, cout, ho, wo] = W x
     * im2col(x) + beta y, x bf16 NHWC [n, h, w, c] ({@link #cudaNhwc16}), W bf16 [cout, ldw] with K in (kh, kw, c) order
     * ({@link #cudaWtap16}); with meta (k_prune24's words along that K) W's kept values on wgmma.sp. rows: the tile, 64 or
     * 128 output channels (c a multiple of 64 or 32, cout of rows). ok (int32) = 1 where the instructions ran.
     */
    public static void cudaWgconv(MemorySegment xh, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                  long ho, long wo, MemorySegment wt, long ldw, long cout, MemorySegment y, float beta, MemorySegment meta,
                                  long ldm, MemorySegment ok, int rows) {
        cudaEnsure();
        int rc;
        try {
            rc = (int) CudaBlockHandles.WGCONV.invokeExact(xh, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, wt, ldw, cout, y, beta, meta, ldm, ok, rows);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_wgconv");
    }

    /** dst bf16 [cout, ldd] = w float32 [cout, cin, kh, kw] (contiguous) rounded with K reordered (kh, kw, c), channels fastest. */
    public static void cudaWtap16(MemorySegment w, long cout, long cin, long khw, MemorySegment dst, long ldd) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.WTAP16.invokeExact(w, cout, cin, khw, dst, ldd); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_wtap16");
    }

    /**
     * The 128-row tile of {@link #cudaWggemm} / {@link #cudaWgconv}: 0 its K slices staged through registers into two
     * shared-memory stages, 1 copied by cp.async into three (fst_cuda_wg_async); -1 only asks. Returns the previous setting.
     */
    public static int cudaWgAsync(int mode) {
        cudaEnsure();
        try { return (int) CudaBlockHandles.WG_ASYNC.invokeExact(mode); } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * The implicit GEMMs' tile: 0 chooses (128 output channels x 64 positions from 128 channels on, else 64 x 128), 64 or
     * 128 fix it, -1 only asks; returns the previous setting (FST4J_CUDA_IGEMM_TILE sets it from the start).
     */
    public static int cudaIgemmTile(int tile) {
        cudaEnsure();
        try { return (int) CudaBlockHandles.IGEMM_TILE.invokeExact(tile); } catch (Throwable t) { throw rethrow(t); }
    }

    /** The split count of {@link #cudaConvWgrad} for a shape (requested <= 0: chosen to fill a large GPU), for sizing its workspace. */
    public static long cudaConvWgradSplits(long cout, long k, long npix, long requested) {
        cudaEnsure();
        try { return (long) CudaBlockHandles.WGRAD_SPLITS.invokeExact(cout, k, npix, requested); } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * Eq. 3 as an implicit GEMM: dw [cout, ldd] = g (bf16 [cout, ldg], the first n*ho*wo columns) x im2col(x)^T + beta dw
     * (beta == 0: dw not read), over `splits` ranges of positions whose partial products go to ws [splits, cout, K] float32
     * and are added in order.
     */
    public static void cudaConvWgrad(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                     long ho, long wo, MemorySegment g, long ldg, long cout, MemorySegment ws, long splits, MemorySegment dw,
                                     long ldd, float beta) {
        cudaConvWgrad(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, g, ldg, cout, ws, splits, dw, ldd, beta, false);
    }

    /** {@link #cudaConvWgrad} with the kernel's K channels fastest (one tap per 8 values where c % 8 == 0), dw still in (c, kh, kw) order. */
    public static void cudaConvWgrad(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                     long ho, long wo, MemorySegment g, long ldg, long cout, MemorySegment ws, long splits, MemorySegment dw,
                                     long ldd, float beta, boolean channelsFastest) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.WGRAD.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, g, ldg, cout, ws, splits, dw, ldd, beta,
                channelsFastest ? 1 : 0); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_conv_wgrad");
    }

    /**
     * {@link #cudaConvWgrad} with g made while it is staged from src float32: row co at co * lds, segment i (seg values) at
     * i * sseg within it (dY by channel: lds, seg; NCHW dY: seg, cout * seg). gather: as {@link #cudaShiftGather16} makes it
     * (IR shift coeff / shift / circular, then each segment's even positions, rounded to bf16: the same bits without the
     * separate pass; x's geometry then the kept positions' lowering); else every position as it is.
     */
    public static void cudaConvWgradFrom(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                         long ho, long wo, MemorySegment src, long lds, long seg, long sseg, boolean gather, float coeff, int shift,
                                         boolean circular, long cout, MemorySegment ws, long splits, MemorySegment dw, long ldd, float beta,
                                         boolean channelsFastest) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.WGRAD_SG.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, src, lds, seg, sseg, gather ? 1 : 0,
                coeff, shift, circular ? 1 : 0, cout, ws, splits, dw, ldd, beta, channelsFastest ? 1 : 0); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_conv_wgrad_sg");
    }

    /** Emulator only: the order of a block's threads between barriers, 0 reverse (default), 1 forward, 2 shuffled from seed. */
    public static void cudaEmuOrder(int order, long seed) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.EMU_ORDER.invokeExact(order, seed); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_emu_order");
    }

    /**
     * Implicit-GEMM convolution: y [n, cout, ho, wo] fp32 = W (bf16 [cout, ldw], its first c*kh*kw columns) x im2col(x),
     * x fp32 NCHW rounded to bf16 as it is staged, fp32 accumulation on the tensor cores; no lowered matrix.
     */
    public static void cudaConvIgemm(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                     long ho, long wo, MemorySegment wt, long ldw, long cout, MemorySegment y) {
        cudaConvIgemm(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, wt, ldw, cout, y, false);
    }

    /** {@link #cudaConvIgemm} with W's K ordered (kh, kw, c), channels fastest ({@link #cudaWtap16}), where channelsFastest. */
    public static void cudaConvIgemm(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                     long ho, long wo, MemorySegment wt, long ldw, long cout, MemorySegment y, boolean channelsFastest) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.CONV_IGEMM.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, wt, ldw, cout, y, channelsFastest ? 1 : 0); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_conv_igemm");
    }

    /**
     * {@link #cudaConvIgemm} with W 2:4 along K on the sparse tensor cores: W as {@link #cudaPrune24} compresses it, its
     * kept values in bf16 (v [cout, ldv]) and its metadata words (meta [cout, ldm]).
     */
    public static void cudaConvIgemmSparse(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                           long ho, long wo, MemorySegment v, long ldv, MemorySegment meta, long ldm, long cout, MemorySegment y,
                                           boolean channelsFastest) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.CONV_IGEMM_SP.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, v, ldv, meta, ldm, cout, y, channelsFastest ? 1 : 0); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_conv_igemm_sp");
    }

    /**
     * The 2:4 operand of a stride-1 convolution's Eq. 2 as a convolution of dY, from {@link #cudaPrune24Transposed}'s kept
     * values vt [cin*khw, cout/2] (float) and metadata mt [cin*khw, cout/32] of W^T: the tap-reversed operand, K ordered
     * (tap, co), v [cin, khw*cout/2] bf16 and m [cin, khw*cout/32]; cout a multiple of 32.
     */
    public static void cudaConv24T(MemorySegment vt, MemorySegment mt, long cin, long cout, long khw, MemorySegment v, MemorySegment m) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaBlockHandles.CONV24_T.invokeExact(vt, mt, cin, cout, khw, v, m); } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_conv24_t");
    }

    public static void cudaIm2colBf16(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                      long ho, long wo, MemorySegment dst, long rowsP, long colsP) {
        cudaEnsure();
        int rc;
        try { rc = (int) CudaOpHandles.IM2COL_BF16.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dst, rowsP, colsP); }
        catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_im2col_bf16");
    }

    // ---- activations (fst4j.tensor.Activation on CUDA): op codes FST_ACT_* / FST_ACTB_* of fst4j_kargs.h, bound on first
    // use like CudaOpHandles' ----

    private static final class CudaActHandles {
        static final MethodHandle ACT, ACT_BWD;
        static {
            SymbolLookup lib = CudaHandles.LIB;
            ACT = bind(lib, "fst_cuda_act", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_DOUBLE, JAVA_DOUBLE, JAVA_INT, ADDRESS, ADDRESS, ADDRESS,
                    ADDRESS), false);
            ACT_BWD = bind(lib, "fst_cuda_act_bwd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_DOUBLE, JAVA_DOUBLE, JAVA_INT, ADDRESS, ADDRESS,
                    ADDRESS, ADDRESS, ADDRESS, ADDRESS), false);
        }
    }

    /** y = op(x) (an activation's forward, parameters s0 and s1) with x strided into contiguous y (fst_cuda_act). */
    public static void cudaAct(int op, double s0, double s1, long[] shape, MemorySegment x, long[] sx, MemorySegment y) {
        cudaEnsure();
        sameRank("fst_cuda_act", shape, sx);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaActHandles.ACT.invokeExact(op, s0, s1, shape.length, longs(ar, shape), x, longs(ar, sx), y);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_act");
    }

    /** out = op(a, b) (an activation's backward, a = g, b = x), a and b broadcast by their strides into contiguous out (fst_cuda_act_bwd). */
    public static void cudaActBackward(int op, double s0, double s1, long[] shape, MemorySegment a, long[] sa, MemorySegment b, long[] sb,
                                       MemorySegment out) {
        cudaEnsure();
        sameRank("fst_cuda_act_bwd", shape, sa, sb);
        int rc;
        try (Arena ar = Arena.ofConfined()) {
            rc = (int) CudaActHandles.ACT_BWD.invokeExact(op, s0, s1, shape.length, longs(ar, shape), a, longs(ar, sa), b, longs(ar, sb), out);
        } catch (Throwable t) { throw rethrow(t); }
        cudaCheck(rc, "fst_cuda_act_bwd");
    }

    /** The product of sizes (each >= 0), or IllegalArgumentException naming fn where it overflows a long. */
    private static long product(String fn, long... sizes) {
        long p = 1;
        for (long d : sizes) {
            if (d < 0) throw new IllegalArgumentException(fn + ": negative size " + d);
            try { p = Math.multiplyExact(p, d); } catch (ArithmeticException e) {
                throw new IllegalArgumentException(fn + ": sizes " + java.util.Arrays.toString(sizes) + " overflow a long");
            }
        }
        return p;
    }

    /** Refuses a segment (unless it may be NULL and is) shorter than bytes: the shim trusts every length it is given. */
    private static void need(String fn, String what, MemorySegment s, long bytes, boolean nullable) {
        if (bytes == 0) return;
        if (s.equals(MemorySegment.NULL)) {
            if (nullable) return;
            throw new IllegalArgumentException(fn + ": " + what + " is NULL");
        }
        if (s.byteSize() < bytes) throw new IllegalArgumentException(fn + ": " + what + " holds " + s.byteSize() + " bytes, needs " + bytes);
    }

    /** Bytes of a float matrix of rows x cols with leading dimension ld: ((rows - 1) * ld + cols) * 4, 0 when empty. */
    private static long matrix(String fn, long rows, long cols, long ld) {
        if (rows < 0 || cols < 0) throw new IllegalArgumentException(fn + ": negative size " + rows + " x " + cols);
        if (rows == 0 || cols == 0) return 0;
        if (ld < cols) throw new IllegalArgumentException(fn + ": leading dimension " + ld + " < " + cols + " columns");
        long extent;
        try { extent = Math.addExact(product(fn, rows - 1, ld), cols); } catch (ArithmeticException e) {
            throw new IllegalArgumentException(fn + ": a " + rows + " x " + cols + " matrix with leading dimension " + ld + " overflows a long");
        }
        return product(fn, 4, extent);
    }

    /** A lowering's geometry {n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order}: its im2col rows c * kh * kw. */
    private static long loweredRows(String fn, long[] g) {
        if (g == null || g.length != 13) throw new IllegalArgumentException(fn + ": a geometry of 13 values expected");
        return product(fn, g[1], g[4], g[5]);
    }

    /** ... its columns n * ho * wo. */
    private static long loweredCols(String fn, long[] g) { loweredRows(fn, g); return product(fn, g[0], g[10], g[11]); }

    /** ... and x's bytes, n * c * h * w floats. */
    private static long loweredX(String fn, long[] g) { loweredRows(fn, g); return product(fn, 4, g[0], g[1], g[2], g[3]); }

    /**
     * The 2:4 products over a lowering: S's values and metadata (m rows, K = c * kh * kw padded to 4) and x checked against
     * the sizes the shim reads; false (nothing read, so nothing checked) where the product is empty.
     */
    private static boolean loweredSpmmOperands(String fn, long m, MemorySegment values, MemorySegment meta, MemorySegment x, long[] g) {
        long kp = (loweredRows(fn, g) + 3) / 4 * 4;
        if (m <= 0 || loweredCols(fn, g) <= 0) return false;
        need(fn, "values", values, product(fn, 4, m, kp / 2), false);
        need(fn, "meta", meta, product(fn, 4, m, (kp + 31) / 32), false);
        need(fn, "x", x, loweredX(fn, g), false);
        return true;
    }

    /** The C side reads as many strides as the shape has axes: a shorter array was read past its end. */
    private static void sameRank(String fn, long[] shape, long[]... strides) {
        for (long[] st : strides)
            if (st == null || st.length != shape.length)
                throw new IllegalArgumentException(fn + ": " + (st == null ? "no" : st.length) + " strides for a shape of " + shape.length + " axes");
    }

    private static void check(int rc, String fn) {
        if (rc == ENOMEM) throw new OutOfMemoryError(fn + ": the native shim could not allocate its working memory (out of native memory)");
        if (rc != OK) throw new IllegalArgumentException(fn + " rejected its arguments (code " + rc
                + (rc == EINVAL ? ": invalid dimension, leading dimension or flag" : rc == ENULL ? ": null pointer"
                : rc == EINDEX ? ": an index given as data lies outside its range" : "") + ")");
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new RuntimeException(t);
    }
}
