package fst4j.shim;

import java.lang.foreign.MemorySegment;

/**
 * The CUDA back end's entry point: whether a device can be used, and why not. The downcall handles live in
 * {@link Native} (class {@code Native.CudaHandles}); nothing is loaded until one of these methods is first called.
 *
 * <p>{@link #status()} is one line, e.g. {@code "ok: NVIDIA H100 80GB HBM3 (sm_90), ..."} or the missing piece:
 * {@code "libfst4j_cuda.so not built (nvcc missing at build time)"}, {@code "libcudart.so.13 not found in ..."},
 * {@code "no CUDA device (cudaGetDeviceCount returned 0)"}. Where the CUDA libraries are searched: env
 * {@code FST4J_CUDA_LIB_DIR} (or {@code -Dfst4j.cuda.libDir}, colon-separated) first, then LD_LIBRARY_PATH and
 * the system's linker cache, /usr/local/cuda/lib64, and NVIDIA's Python wheels (site-packages/nvidia/PACKAGE/lib);
 * {@code -Dfst4j.cuda.searchDefaults=false} restricts the search to the first. {@code -Dfst4j.cuda.lib=PATH}
 * (env {@code FST4J_CUDA_LIB}) loads another build of libfst4j_cuda.so.
 *
 * <p>Device memory is handled as address-only {@link MemorySegment}s; the raw kernels and BLAS calls are the
 * {@code Native.cuda*} methods, with the contracts of their CPU twins (fst4j.h, fst4j_cuda.h).
 */
public final class Cuda {
    private Cuda() {}

    /** cudaDataType codes for {@link #sparseLtPlan} and {@link #gemmEx}. */
    public static final int R_32F = 0, R_16F = 2, R_16BF = 14;

    /**
     * True when libfst4j_cuda.so, libcudart and the driver loaded, a device exists and the kernels loaded on it; or, with
     * -Dfst4j.cuda.emulate=true, when the host emulator libfst4j_cuda_emu.so loaded (see {@link #isEmulated()}).
     */
    public static boolean isAvailable() { return Native.cudaAvailable(); }

    /**
     * True when this JVM runs the CUDA back end on the host emulator (-Dfst4j.cuda.emulate=true): libfst4j_cuda_emu.so,
     * the same kernel bodies and argument checks run on the CPU, device memory emulated by checked host blocks; no
     * cuBLAS SGEMM; cublasGemmEx ({@link #gemmEx}) and cuSPARSELt run as host reference loops, events read the host clock.
     * Results are the kernels' results; nothing about speed is.
     */
    public static boolean isEmulated() { return Native.cudaEmulated(); }

    /** One line: "ok: ..." or the reason CUDA cannot be used. */
    public static String status() { return Native.cudaStatus(); }

    /** Throws {@link CudaUnavailableException} naming the reason unless {@link #isAvailable()}. */
    public static void requireDevice() { Native.cudaEnsure(); }

    /** The exception {@link #requireDevice()} would throw, for callers that build their own. */
    public static CudaUnavailableException unavailable() {
        return new CudaUnavailableException("CUDA is not available: " + status());
    }

    /** "ok: ..." once cuBLAS loaded, else why not (loaded on first cuBLAS call). */
    public static String blasStatus() { return Native.cudaBlasStatus(); }

    /**
     * Switches the kernel profile on or off (FST4J_CUDA_KPROF=1 in the environment switches it on from the start);
     * returns the previous setting. While on, every kernel launch and cuBLAS / cuSPARSELt / copy call is bracketed by
     * device synchronisations and timed, so the program runs slower: for finding where device time goes.
     */
    public static boolean setKernelProfile(boolean on) { return Native.cudaKernelProfileOn(on); }

    /** The kernel profile since the last reset: device time per kernel (per op for the elementwise ones) and per library call, longest first. */
    public static String kernelProfile(boolean reset) { return Native.cudaKernelProfile(reset); }

    /** "ok: cuSPARSELt <version> ..." once loaded, else why not (loaded on first cuSPARSELt call). */
    public static String sparseLtStatus() { return Native.cudaSparseLtStatus(); }

    /**
     * Bytes past each device allocation that no one is given: cuSPARSELt 0.8.0's sparse GEMM kernels read in 512-byte
     * pieces and, at an operand's end, up to 256 bytes past it (compute-sanitizer on an H100: a 64x256x64-tile kernel
     * read [3328, 3840) of a 3584-byte operand). Where that ran off mapped memory, the device context was lost
     * ("illegal memory access" at the next call). Not on the emulator, whose range checks stay exact (it runs no
     * library kernels).
     */
    public static final long LIBRARY_TAIL = 1024;

    /** At least bytes of device memory (plus {@link #LIBRARY_TAIL} on a device), freed with {@link #free}. */
    public static MemorySegment malloc(long bytes) { return Native.cudaMalloc(isEmulated() ? bytes : bytes + LIBRARY_TAIL); }

    public static void free(MemorySegment device) { Native.cudaFree(device); }

    /**
     * Host -> device copies, every one of which comes through here: counted so that a test can show that a path which
     * keeps its tables on the device (an InterpolateCache's row indices) uploads nothing on a repeated call.
     */
    private static final java.util.concurrent.atomic.AtomicLong HOST_TO_DEVICE = new java.util.concurrent.atomic.AtomicLong();

    /** How many {@link #copyToDevice} calls this JVM has made (successful or not), since it started. */
    public static long hostToDeviceCopies() { return HOST_TO_DEVICE.get(); }

    public static void copyToDevice(MemorySegment device, MemorySegment host, long bytes) {
        HOST_TO_DEVICE.incrementAndGet();
        hostHolds("copyToDevice", host, bytes);
        Native.cudaMemcpy(device, host, bytes, 1);
    }

    public static void copyToHost(MemorySegment host, MemorySegment device, long bytes) {
        hostHolds("copyToHost", host, bytes);
        Native.cudaMemcpy(host, device, bytes, 2);
    }

    /** The host side of a copy must hold its bytes (device addresses carry no size; the host's do). */
    private static void hostHolds(String what, MemorySegment host, long bytes) {
        if (bytes < 0 || host.byteSize() < bytes)
            throw new IllegalArgumentException(what + ": " + bytes + " bytes with a host segment of " + host.byteSize());
    }

    public static void copyOnDevice(MemorySegment dst, MemorySegment src, long bytes) { Native.cudaMemcpy(dst, src, bytes, 3); }

    public static void memset(MemorySegment device, int value, long bytes) { Native.cudaMemset(device, value, bytes); }

    /** Waits for the device and reports any asynchronous kernel or copy failure. */
    public static void sync() { Native.cudaSync(); }

    /**
     * Row-major mixed-precision GEMM through cublasGemmEx: C = alpha op(A) op(B) + beta C on device pointers, with
     * fst_sgemm's contract and checks. {@code atype == btype}, {@link #R_32F} or {@link #R_16BF}; {@code ctype}
     * {@link #R_32F}, or {@link #R_16BF} for bf16 inputs; fp32 accumulation; {@code tf32} (fp32 inputs only) uses the
     * TF32 tensor cores. C is not read when beta is 0. Bad arguments: {@link IllegalArgumentException} naming the rule.
     */
    public static void gemmEx(boolean transA, boolean transB, long m, long n, long k, float alpha, MemorySegment a, int atype, long lda,
                              MemorySegment b, int btype, long ldb, float beta, MemorySegment c, int ctype, long ldc, boolean tf32) {
        Native.cudaGemmEx(transA, transB, m, n, k, alpha, a, atype, lda, b, btype, ldb, beta, c, ctype, ldc, tf32);
    }

    /**
     * Device time between {@link #start()} and {@link #stopMs()}, measured with two CUDA events on the (one) legacy
     * default stream, so it covers exactly the work enqueued in between. {@code stopMs()} waits for that work. Reusable:
     * start/stop pairs may repeat. On the host emulator the events read the host's monotonic clock.
     */
    public static final class Timer implements AutoCloseable {
        private MemorySegment start, stop;
        private boolean started;

        public Timer() {
            start = Native.cudaEventCreate();
            try {
                stop = Native.cudaEventCreate();
            } catch (RuntimeException e) {
                Native.cudaEventDestroy(start);
                throw e;
            }
        }

        /** Records the start event. */
        public Timer start() {
            open();
            Native.cudaEventRecord(start);
            started = true;
            return this;
        }

        /** Records the stop event, waits for it, and returns the milliseconds since {@link #start()}. */
        public float stopMs() {
            open();
            if (!started) throw new IllegalStateException("Cuda.Timer.stopMs() before start()");
            Native.cudaEventRecord(stop);
            started = false;
            return Native.cudaEventElapsedMs(start, stop);
        }

        private void open() {
            if (start == null) throw new IllegalStateException("Cuda.Timer is closed");
        }

        @Override public void close() {
            if (start == null) return;
            MemorySegment a = start, b = stop;
            start = stop = null;
            try { Native.cudaEventDestroy(a); } finally { Native.cudaEventDestroy(b); }
        }
    }

    /**
     * A cuSPARSELt matmul plan for D = alpha A B + beta C, row-major, A [m, k] 2:4 along k (given as its masked
     * dense form, compressed by cuSPARSELt), B [k, n], C = D [m, n]. Close it to free the plan. abType {@link #R_16BF}
     * or {@link #R_16F}; cdType {@link #R_32F} or abType; m, n, k positive multiples of 16 and every pointer 16-byte
     * aligned (cuSPARSELt's constraints, checked up front: {@link IllegalArgumentException} naming the rule). The host
     * emulator runs a host reference of it that also rejects an A that is not 2:4 along k.
     */
    public static SparseLtPlan sparseLtPlan(long m, long n, long k, int abType, int cdType) {
        long[] sizes = new long[3];
        MemorySegment p = Native.cudaSparseLtPlan(m, n, k, abType, cdType, sizes);
        LIVE_PLANS.add(p.address());
        return new SparseLtPlan(p, sizes[0], sizes[1], sizes[2]);
    }

    /** The plans not yet freed, by address: a second close (or a use after close) must not reach the C side's free. */
    private static final java.util.Set<Long> LIVE_PLANS = java.util.concurrent.ConcurrentHashMap.newKeySet();

    private static void requireLive(MemorySegment handle) {
        if (!LIVE_PLANS.contains(handle.address())) throw new IllegalStateException("this cuSPARSELt plan was closed");
    }

    /** Opaque host-side plan; byte sizes of the compressed A, the compression buffer and the matmul workspace. */
    public record SparseLtPlan(MemorySegment handle, long compressedBytes, long bufferBytes, long workspaceBytes) implements AutoCloseable {
        public void compress(MemorySegment denseA, MemorySegment compressed, MemorySegment buffer) {
            requireLive(handle);
            Native.cudaSparseLtCompress(handle, denseA, compressed, buffer);
        }

        public void matmul(float alpha, MemorySegment compressedA, MemorySegment b, float beta, MemorySegment c, MemorySegment workspace) {
            requireLive(handle);
            Native.cudaSparseLtMatmul(handle, alpha, compressedA, b, beta, c, workspace);
        }

        /** Frees the plan once; a second close does nothing (it freed the C side's plan twice, and aborted the JVM). */
        @Override public void close() { if (LIVE_PLANS.remove(handle.address())) Native.cudaSparseLtPlanFree(handle); }
    }
}
