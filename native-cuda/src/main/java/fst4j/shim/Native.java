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
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The one class that owns every downcall handle of fst4j: libc's allocator and the C shim
 * {@code libfst4j.so}. The shim is packaged in this jar and extracted once to a temporary file;
 * {@code -Dfst4j.native.lib=/path/libfst4j.so} (or env {@code FST4J_NATIVE_LIB}) points at another build.
 * If loading fails, every shim call throws {@link NativeLibraryException} naming the path tried and the
 * reason; allocation (libc) keeps working, so pure-Java paths stay usable.
 */
public final class Native {
    private Native() {}

    public static final int OK = 0, EINVAL = -1, ENULL = -2;
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
    private static final MethodHandle VERSION, ISA, MAX_THREADS, SGEMM, SHIFT_ADD;
    private static final MethodHandle SPMM24, SPMM24_ISA;
    private static final MethodHandle PRUNE24, PRUNE24_T, SHIFT_GATHER;

    static {
        String path = null, error = null;
        MethodHandle version = null, isa = null, maxThreads = null, sgemm = null, shift = null;
        MethodHandle spmm24 = null, spmm24Isa = null;
        MethodHandle prune24 = null, prune24t = null, shiftGather = null;
        try {
            path = locate();
            SymbolLookup lib = SymbolLookup.libraryLookup(Path.of(path), Arena.global());
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
        } catch (Throwable t) {
            error = t instanceof NativeLibraryException && path == null ? t.getMessage()
                    : "cannot load the fst4j native library from " + (path == null ? RESOURCE + " (class path)" : path) + ": " + t.getMessage();
        }
        LIB_PATH = path; LOAD_ERROR = error;
        VERSION = version; ISA = isa; MAX_THREADS = maxThreads; SGEMM = sgemm; SHIFT_ADD = shift;
        SPMM24 = spmm24; SPMM24_ISA = spmm24Isa;
        PRUNE24 = prune24; PRUNE24_T = prune24t; SHIFT_GATHER = shiftGather;
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

    /** Raw SGEMM; callers (fst4j.tensor.Blas) must have bounds-checked every argument. */
    public static void sgemm(boolean transA, boolean transB, long m, long n, long k, float alpha,
                             MemorySegment a, long lda, MemorySegment b, long ldb, float beta,
                             MemorySegment c, long ldc, int threads) {
        ensureLoaded();
        int rc;
        try {
            rc = (int) SGEMM.invokeExact(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_sgemm");
    }

    public static void shiftAdd(MemorySegment dy, MemorySegment out, long rows, long len, long seg,
                                int shift, float coeff, boolean circular, int threads) {
        ensureLoaded();
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

    // ---- convolution lowering (conv.c); bound on first use, after the library loaded ----

    private static final class ConvHandles {
        static final MethodHandle IM2COL, COL2IM, IM2COL_AT;
        static {
            SymbolLookup lib = SymbolLookup.libraryLookup(Path.of(LIB_PATH), Arena.global());
            FunctionDescriptor geom = FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT);
            IM2COL = bind(lib, "fst_im2col", geom, false);
            COL2IM = bind(lib, "fst_col2im", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_INT), false);
            IM2COL_AT = bind(lib, "fst_im2col_at", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                    JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT), false);
        }
    }

    /** im2col of a contiguous float32 [n, c, h, w] batch into out [c*kh*kw, >= n*ho*wo] (row stride ldo). */
    public static void im2col(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                              long ho, long wo, MemorySegment out, long ldo, int threads) {
        ensureLoaded();
        int rc;
        try { rc = (int) ConvHandles.IM2COL.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, out, ldo, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_im2col");
    }

    /** dx (contiguous [n, c, h, w], overwritten) = col2im of cols [c*kh*kw, >= n*ho*wo] (row stride ldc). */
    public static void col2im(MemorySegment cols, long ldc, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                              long ho, long wo, MemorySegment dx, int threads) {
        ensureLoaded();
        int rc;
        try { rc = (int) ConvHandles.COL2IM.invokeExact(cols, ldc, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, dx, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_col2im");
    }

    /** im2col at output positions pos (int32[npos]) of every image: column img*npos + q of out (row stride ldo). */
    public static void im2colAt(MemorySegment x, long n, long c, long h, long w, long kh, long kw, long sh, long sw, long ph, long pw,
                                long ho, long wo, MemorySegment pos, long npos, MemorySegment out, long ldo, int threads) {
        ensureLoaded();
        int rc;
        try { rc = (int) ConvHandles.IM2COL_AT.invokeExact(x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, pos, npos, out, ldo, threads); } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_im2col_at");
    }

    /**
     * Raw fused magnitude 2:4 prune + compress of W [rows, K] (ldw >= K) along K into values [rows, Kp/2] and
     * meta [rows, ceil(Kp/32)]; when dense is not {@link MemorySegment#NULL}, also the pruned copy [rows, K]
     * (ldd >= K). Callers (fst4j.sparse.Compressed24) must have bounds-checked every argument.
     */
    public static void prune24Compress(long rows, long k, MemorySegment w, long ldw, MemorySegment values, MemorySegment meta,
                                       MemorySegment dense, long ldd, int threads) {
        ensureLoaded();
        int rc;
        try {
            rc = (int) PRUNE24.invokeExact(rows, k, w, ldw, values, meta, dense, ldd, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_prune24_compress");
    }

    /**
     * Raw S(W^T): W [cout, K] (ldw >= K) read as W^T [K, cout], pruned 2:4 along cout and compressed into
     * values [K, Cp/2], meta [K, ceil(Cp/32)]. Callers (fst4j.sparse.Compressed24) must have bounds-checked.
     */
    public static void prune24CompressTransposed(long cout, long k, MemorySegment w, long ldw, MemorySegment values,
                                                 MemorySegment meta, int threads) {
        ensureLoaded();
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
        int rc;
        try {
            rc = (int) SHIFT_GATHER.invokeExact(dy, out, rows, len, seg, shift, coeff, circular ? 1 : 0, threads);
        } catch (Throwable t) { throw rethrow(t); }
        check(rc, "fst_shift_gather");
    }

    private static void check(int rc, String fn) {
        if (rc != OK) throw new IllegalArgumentException(fn + " rejected its arguments (code " + rc
                + (rc == EINVAL ? ": invalid dimension, leading dimension or flag" : rc == ENULL ? ": null pointer" : "") + ")");
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new RuntimeException(t);
    }
}
