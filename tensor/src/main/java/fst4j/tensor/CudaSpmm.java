package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.CudaUnavailableException;
import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A 2:4 sparse left operand on the CUDA device, multiplied through cuSPARSELt: A [rows, K], 2:4 along K (at most
 * two non-zeros in every group of four consecutive elements of a row), times a dense float32 B [K, n] into a float32
 * C [rows, n]. This is Eq. 1's S(W) and Eq. 2's S(W^T) on the GPU; {@code fst4j.autograd.Gemm3} prepares one per step
 * and layer.
 *
 * <p>Precision: cuSPARSELt's 50 % sparsity is 2:4 only for 16-bit inputs (1:2 for float32), so A and B are rounded
 * to bfloat16 (nearest even) and the product is accumulated and returned in float32, as PyTorch's autocast would.
 * Padding: every dimension handed to the library (rows, K, n) is rounded up to a multiple of {@link #PAD} with
 * zeros (a zero group is a valid 2:4 group and adds nothing), and C is copied out of the padded product when any
 * dimension was padded; see native-cuda/CUDA.md for the library's constraints.
 *
 * <p>Lifetime: the bf16 copy of A and its compressed forms are device blocks owned by this object; close it (Gemm3
 * does, at the end of the step, or when it lets a kept S(W) go). Plans are cached per thread and padded shape
 * ({@link #clearPlans}): the shim gives every thread its own cuSPARSELt handle, as the library requires of concurrent
 * callers. Threads: one operand may be multiplied by from several threads at once (an eval-mode layer's kept S(W));
 * A is compressed once per plan, under this object's lock, and close must come after the last product.
 * Whether Gemm3 uses this path: {@link #enabled()} (BF16 matmul precision, cuSPARSELt loaded, not switched off).
 */
public final class CudaSpmm implements AutoCloseable {
    /** Every dimension given to cuSPARSELt is a multiple of this (16-bit operands). */
    public static final int PAD = 16;

    private record Key(int m, int n, int k) {}

    /** Plans per thread: the shim gives every thread its own cuSPARSELt handle, and a plan is used with the handle it was made with. */
    private static final ThreadLocal<Map<Key, Cuda.SparseLtPlan>> PLANS = ThreadLocal.withInitial(java.util.HashMap::new);
    private static final Map<Key, String> REFUSED = new ConcurrentHashMap<>();
    private static final AtomicLong MATMULS = new AtomicLong(), FALLBACKS = new AtomicLong();
    private static volatile String probeFailure;   // why available() is false although CUDA is there
    private static volatile boolean switchedOn = !"false".equalsIgnoreCase(System.getProperty("fst4j.cuda.sparseLt", "true"));
    private static volatile Boolean loads;   // null until probed
    /**
     * The product's type in the library: float32 where it accepts bf16 x bf16 -> float32, else bf16 (cuSPARSELt 0.8.0
     * on an H200 refused float32 output), read back into the float32 result exactly, so then the result carries one
     * bf16 rounding (relative 2^-9) per element. {@code -Dfst4j.cuda.sparseLtOut=f32|bf16|auto} (auto: float32 first).
     */
    private static volatile int outType = Cuda.R_32F;
    private static volatile String outNote = "";

    private final int rows, k, rowsP, kP;
    private volatile CudaOps.Block a16;   // bf16 [rowsP, kP], the masked dense operand
    /**
     * A16 compressed for each plan that multiplied by it (the plans are per thread and padded shape, and compression is
     * for a plan): at most {@link #COMPRESSED_PLANS}, the oldest freed first. Guarded by this object's lock, which each
     * product holds from its compression through its launch, so that an operand shared by threads (an eval-mode layer's
     * kept S(W), Gemm3) compresses once per plan and never frees a form another thread's launch is reading.
     */
    private final java.util.ArrayDeque<Compressed> compressed = new java.util.ArrayDeque<>();   // oldest first
    static final int COMPRESSED_PLANS = 8;

    /** A16 compressed for one plan, known by identity (a plan is a record: a new plan at a freed one's address equals it). */
    private record Compressed(Cuda.SparseLtPlan plan, CudaOps.Block block) {}

    private CudaSpmm(int rows, int k, CudaOps.Block a16) {
        this.rows = rows; this.k = k; this.rowsP = pad(rows); this.kP = pad(k); this.a16 = a16;
    }

    static int pad(int n) { return Math.max(PAD, (n + PAD - 1) / PAD * PAD); }

    /**
     * Whether Gemm3 sends 2:4 operands on CUDA through cuSPARSELt: only at {@link CudaOps.MatmulPrecision#BF16} (the
     * library's 2:4 needs 16-bit operands, so at FP32 / TF32 the pruned operand goes through the dense GEMM at that
     * precision, masked), when the library loads ({@link #available()}) and unless switched off
     * ({@code -Dfst4j.cuda.sparseLt=false}, {@link #setEnabled}).
     */
    /**
     * Whether Gemm3 prunes a magnitude 2:4 weight on CUDA straight into the bf16 operand ({@link #pruned},
     * {@link #prunedTransposed}): on by default, {@code -Dfst4j.cuda.fusedPrune=false} (an A/B switch) keeps the
     * sparsifier's float32 masked copy and the rounding pass.
     */
    public static boolean fusedPrune() { return fusedPrune; }
    public static boolean setFusedPrune(boolean on) { boolean was = fusedPrune; fusedPrune = on; return was; }
    private static volatile boolean fusedPrune = !"false".equals(System.getProperty("fst4j.cuda.fusedPrune"));

    public static boolean enabled() {
        return switchedOn && CudaOps.matmulPrecision() == CudaOps.MatmulPrecision.BF16 && available();
    }

    /**
     * Whether cuSPARSELt can be used: a CUDA back end (device or host emulator), the library loaded there, and a plan
     * of bf16 operands with a float32 or bf16 product accepted (probed once at 16 x 16 x 16, float32 first, see
     * {@link #outputType()}; {@link #status()} says why not).
     */
    public static boolean available() {
        if (!Cuda.isAvailable()) return false;
        Boolean l = loads;
        if (l == null) {
            synchronized (CudaSpmm.class) {
                if (loads == null) {
                    String want = System.getProperty("fst4j.cuda.sparseLtOut", "auto").toLowerCase(java.util.Locale.ROOT);
                    if (!List.of("auto", "f32", "bf16").contains(want))
                        throw new IllegalArgumentException("-Dfst4j.cuda.sparseLtOut must be auto, f32 or bf16, got " + want);
                    boolean ok = false;
                    String refusedF32 = null;
                    for (int type : want.equals("auto") ? new int[] { Cuda.R_32F, Cuda.R_16BF }
                            : new int[] { want.equals("f32") ? Cuda.R_32F : Cuda.R_16BF }) {
                        try (Cuda.SparseLtPlan p = Cuda.sparseLtPlan(PAD, PAD, PAD, Cuda.R_16BF, type)) {
                            ok = p != null;
                            outType = type;
                            outNote = type == Cuda.R_32F ? "float32 output" : "bf16 output" + (refusedF32 == null ? " (as asked)"
                                    : " (float32 output was refused: " + refusedF32 + ")");
                            break;
                        } catch (CudaUnavailableException e) {
                            probeFailure = e.getMessage();
                            break;
                        } catch (RuntimeException e) {
                            if (type == Cuda.R_32F) refusedF32 = e.getMessage();
                            probeFailure = "a bf16 x bf16 -> " + (type == Cuda.R_32F ? "float32" : "bf16") + " plan was refused: " + e.getMessage()
                                    + (refusedF32 != null && type != Cuda.R_32F ? "; float32: " + refusedF32 : "");
                        }
                    }
                    loads = ok;
                }
                l = loads;
            }
        }
        return l;
    }

    /**
     * One line on the cuSPARSELt path: whether it is used and, if not, why; products run; shapes the library refused
     * (those run as the dense bf16 product of the same operands, see {@link #times}).
     */
    public static String status() {
        if (!Cuda.isAvailable()) return "off: " + Cuda.status();
        if (!available()) return "off: " + (probeFailure != null ? probeFailure : Cuda.sparseLtStatus());
        String on = enabled() ? "on" : !switchedOn ? "off (switched off)" : "off (matmul precision " + CudaOps.matmulPrecision() + ", needs BF16)";
        String s = on + "; " + outNote + "; " + MATMULS.get() + " products";
        if (!REFUSED.isEmpty()) {
            Map.Entry<Key, String> e = REFUSED.entrySet().iterator().next();
            s += "; " + REFUSED.size() + " shape(s) refused, run as dense bf16 (" + FALLBACKS.get() + " products), e.g. " + e.getKey() + ": " + e.getValue();
        }
        return s;
    }

    /** Switches the cuSPARSELt path on or off for this JVM (like PyTorch's backend flags); returns the previous setting. */
    public static boolean setEnabled(boolean on) { boolean was = switchedOn; switchedOn = on; return was; }

    /** Number of cuSPARSELt products run by this JVM (tests use it to see that the path was taken). */
    public static long matmuls() { return MATMULS.get(); }

    /** Number of products run densely (bf16 GemmEx) because cuSPARSELt refused their shape. */
    public static long fallbacks() { return FALLBACKS.get(); }

    /** Frees the calling thread's cached plans. */
    public static void clearPlans() {
        Map<Key, Cuda.SparseLtPlan> plans = PLANS.get();
        for (Cuda.SparseLtPlan p : plans.values()) p.close();
        plans.clear();
    }

    private static Cuda.SparseLtPlan plan(int m, int n, int k) {
        return Cuda.sparseLtPlan(m, n, k, Cuda.R_16BF, outType);
    }

    /** The library's output type for products ({@link Cuda#R_32F} or {@link Cuda#R_16BF}), once {@link #available()}. */
    public static int outputType() { return available() ? outType : Cuda.R_32F; }

    /**
     * The operand a (float32 CUDA matrix [rows, K], any strides), which must be 2:4 along K, as bf16: the caller pruned
     * it (S(W), or S(W^T) given as the transposed view of a matrix pruned along its rows).
     */
    public static CudaSpmm of(Tensor a) {
        CudaOps.require("CudaSpmm.of", a);
        if (a.dim() != 2) throw new IllegalArgumentException("wrong rank: a 2:4 operand must be a matrix, got " + Shape.str(a.shape));
        int rows = a.shape[0], k = a.shape[1];
        CudaOps.Block b = CudaOps.bf16Padded(a, pad(rows), pad(k));
        return new CudaSpmm(rows, k, b);
    }

    /**
     * S(w) along K of a float32 CUDA matrix w [rows, K] (magnitude 2:4, the selection of {@code CudaOps.prune24Masked}),
     * pruned by one kernel straight into the padded bf16 operand: no float32 masked copy, no rounding pass. The same
     * operand bits as {@code of(prune24Masked(w))}.
     */
    public static CudaSpmm pruned(Tensor w) {
        CudaOps.require("CudaSpmm.pruned", w);
        if (w.dim() != 2) throw new IllegalArgumentException("wrong rank: CudaSpmm.pruned needs a matrix, got " + Shape.str(w.shape));
        int rows = w.shape[0], k = w.shape[1];
        return prunedInto(rows, k, w, false);
    }

    /**
     * S(W^T) of a float32 CUDA matrix w [Cout, K]: the operand [K, Cout], 2:4 along Cout (the selection of
     * {@code CudaOps.prune24TransposedMasked}), pruned by one kernel straight into the padded bf16 operand. The same
     * operand bits as {@code of(prune24TransposedMasked(w).t())}, without the float32 copy, its transpose and the
     * rounding pass.
     */
    public static CudaSpmm prunedTransposed(Tensor w) {
        CudaOps.require("CudaSpmm.prunedTransposed", w);
        if (w.dim() != 2) throw new IllegalArgumentException("wrong rank: CudaSpmm.prunedTransposed needs a matrix, got " + Shape.str(w.shape));
        return prunedInto(w.shape[1], w.shape[0], w, true);
    }

    /** The operand [rows, k] pruned along k from w ([rows, k], or [k, rows] read transposed) into a zero-padded bf16 block. */
    private static CudaSpmm prunedInto(int rows, int k, Tensor w, boolean transposed) {
        int rowsP = pad(rows), kP = pad(k);
        CudaOps.Block b = CudaOps.Block.of(2L * rowsP * kP);
        try (Tensor wc = w.contiguous()) {
            if (rowsP != rows || kP != k) Cuda.memset(b.ptr(), 0, 2L * rowsP * kP);   // the padding the kernel does not write
            if ((long) rows * k > 0) {
                if (transposed) Native.cudaPrune24Transposed(k, rows, CudaOps.ptr(wc), rows, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL, 0, b.ptr(), kP);
                else Native.cudaPrune24(rows, k, CudaOps.ptr(wc), k, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL, 0, b.ptr(), kP);
            }
            PRUNED.incrementAndGet();
            return new CudaSpmm(rows, k, b);
        } catch (RuntimeException | Error e) {
            b.close();
            throw e;
        }
    }
    private static final AtomicLong PRUNED = new AtomicLong();
    /** How many operands {@link #pruned} / {@link #prunedTransposed} made so far (tests check the path is taken). */
    public static long prunedOperands() { return PRUNED.get(); }

    public int rows() { return rows; }

    public int k() { return k; }

    /** c = A b (overwritten): b float32 CUDA [K, n] any view, c float32 CUDA [rows, n] contiguous. */
    public void times(Tensor b, Tensor c) {
        if (a16 == null) throw new IllegalStateException("CudaSpmm is closed");
        CudaOps.require("CudaSpmm.times", b, c);
        if (b.dim() != 2 || c.dim() != 2 || b.shape[0] != k || c.shape[0] != rows || c.shape[1] != b.shape[1])
            throw new IllegalArgumentException("shape mismatch: 2:4 [" + rows + ", " + k + "] x " + Shape.str(b.shape) + " -> " + Shape.str(c.shape));
        if (!c.isContiguous()) throw new IllegalArgumentException("CudaSpmm.times writes a contiguous c, got strides " + java.util.Arrays.toString(c.strides));
        c.markModified();   // once the arguments are checked: a refused call writes nothing
        int n = b.shape[1];
        if (n == 0) return;
        int nP = pad(n);
        try (CudaOps.Block b16 = CudaOps.bf16Padded(b, kP, nP)) { multiply(b16, n, c); }
    }

    /**
     * c = A im2col(low.x()) (overwritten) with the columns rounded straight into the padded bf16 operand by one kernel
     * (no float32 im2col matrix); c float32 CUDA [rows, N*Ho*Wo] contiguous.
     */
    public void timesLowered(Lowering low, Tensor c) {
        if (a16 == null) throw new IllegalStateException("CudaSpmm is closed");
        CudaOps.require("CudaSpmm.timesLowered", low.x(), c);
        int n = low.cols();
        if (low.rows() != k || c.dim() != 2 || c.shape[0] != rows || c.shape[1] != n)
            throw new IllegalArgumentException("shape mismatch: 2:4 [" + rows + ", " + k + "] x im2col [" + low.rows() + ", " + n + "] -> " + Shape.str(c.shape));
        if (!c.isContiguous()) throw new IllegalArgumentException("CudaSpmm.timesLowered writes a contiguous c, got strides " + java.util.Arrays.toString(c.strides));
        c.markModified();
        if (n == 0) return;
        int nP = pad(n);
        try (CudaOps.Block b16 = CudaOps.im2colBf16(low, kP, nP)) { multiply(b16, n, c); }
    }

    /**
     * out = A im2col(low.x()) written straight as NCHW: out [N, rows, Ho, Wo] float32 CUDA contiguous, N = low.x()'s
     * images. Where the library writes its product in bf16, one kernel reads it back into NCHW (no [rows, N*Ho*Wo]
     * float32 matrix and no permute after it); otherwise the product {@link #timesLowered} gives, permuted.
     */
    public void timesLoweredNchw(Lowering low, Tensor out) {
        if (a16 == null) throw new IllegalStateException("CudaSpmm is closed");
        CudaOps.require("CudaSpmm.timesLoweredNchw", low.x(), out);
        int n = low.cols(), imgs = low.x().size(0);
        if (low.rows() != k || out.dim() != 4 || out.shape[0] != imgs || out.shape[1] != rows || (long) imgs * out.shape[2] * out.shape[3] != n)
            throw new IllegalArgumentException("shape mismatch: 2:4 [" + rows + ", " + k + "] x im2col [" + low.rows() + ", " + n + "] of "
                    + imgs + " images -> " + Shape.str(out.shape));
        if (!out.isContiguous()) throw new IllegalArgumentException("CudaSpmm.timesLoweredNchw writes a contiguous out, got strides "
                + java.util.Arrays.toString(out.strides));
        out.markModified();
        if (n == 0) return;
        int nP = pad(n), plane = n / imgs;
        try (CudaOps.Block b16 = CudaOps.im2colBf16(low, kP, nP)) {
            if (readBackBf16(planFor(nP), b16, nP, out16 -> Native.cudaBf16UnpadNchw(out16, nP, CudaOps.ptr(out), rows, imgs, plane))) return;
            try (Tensor c = Tensor.empty(Device.CUDA, DType.F32, rows, n); Tensor c3 = c.reshape(rows, imgs, plane);
                 Tensor p = c3.permute(1, 0, 2); Tensor o3 = out.reshape(imgs, rows, plane)) {
                multiply(b16, n, c);
                o3.copyFrom(p);
            }
        }
    }

    /**
     * Where the library writes its product in bf16 and this padded shape has a plan (planFor(nP), non-null): the product
     * of A and b16 into a bf16 [rowsP, nP] block, handed to readBack (which reads it into its float32 destination) before
     * the block is freed; true. False (nothing done) otherwise.
     */
    private boolean readBackBf16(Cuda.SparseLtPlan plan, CudaOps.Block b16, int nP, java.util.function.Consumer<MemorySegment> readBack) {
        if (plan == null || outType != Cuda.R_16BF) return false;
        try (CudaOps.Block out16 = CudaOps.Block.of(2L * rowsP * nP)) {
            sparseMatmul(plan, b16, out16.ptr());
            readBack.accept(out16.ptr());
        }
        return true;
    }

    /**
     * dx = col2im(A dy) for a convolution's Eq. 2 (A = S(W^T) [C*kh*kw, Cout], dy [Cout, N*Ho*Wo] any view) where the
     * library writes its product in bf16 ({@link #outputType()}): folded back straight from the bf16 product, which is
     * never widened to float32 ({@link CudaOps#gemmCol2imBf16} is the dense twin). Null where the library writes
     * float32: then {@link #times} and col2im.
     */
    public Tensor timesCol2im(Tensor dy, int[] inputShape, int kernel, int stride, int padding) {
        if (a16 == null) throw new IllegalStateException("CudaSpmm is closed");
        CudaOps.require("CudaSpmm.timesCol2im", dy);
        if (outputType() != Cuda.R_16BF) return null;
        Conv.Geom g = Conv.Geom.of("col2im", inputShape, kernel, kernel, stride, stride, padding, padding);
        if (dy.dim() != 2 || dy.shape[0] != k || rows != g.k() || dy.shape[1] != (long) g.n() * g.l())
            throw new IllegalArgumentException("shape mismatch: 2:4 [" + rows + ", " + k + "] x " + Shape.str(dy.shape) + " for input " + Shape.str(inputShape));
        int n = dy.shape[1], nP = pad(n);
        try (CudaOps.Block b16 = CudaOps.bf16Padded(dy, kP, nP); CudaOps.Block out16 = CudaOps.Block.of(2L * rowsP * nP)) {
            productInto(planFor(nP), b16, nP, out16.ptr(), Cuda.R_16BF);
            return CudaOps.col2imBf16(out16, nP, g);
        }
    }

    /** The calling thread's plan for a padded product of nP columns; null where the library refused that shape. */
    private Cuda.SparseLtPlan planFor(int nP) {
        Key key = new Key(rowsP, nP, kP);
        if (REFUSED.containsKey(key)) return null;
        try {
            Map<Key, Cuda.SparseLtPlan> plans = PLANS.get();
            Cuda.SparseLtPlan plan = plans.get(key);
            if (plan == null) { plan = plan(key.m(), key.n(), key.k()); plans.put(key, plan); }
            return plan;
        } catch (CudaUnavailableException e) {
            throw e;
        } catch (RuntimeException e) {   // a size or type rule of the installed library: this shape runs densely
            REFUSED.put(key, String.valueOf(e.getMessage()));
            return null;
        }
    }

    /** c = A b16 with b16 the padded bf16 [kP, pad(n)] right-hand side. */
    private void multiply(CudaOps.Block b16, int n, Tensor c) {
        int nP = pad(n);
        Cuda.SparseLtPlan plan = planFor(nP);
        // the library writes bf16 [rowsP, nP]; read back into c exactly
        if (readBackBf16(plan, b16, nP, out16 -> Native.cudaBf16Unpad(out16, nP, CudaOps.ptr(c), rows, n))) return;
        boolean direct = rowsP == rows && nP == n;
        try (Tensor out = direct ? c.alias() : Tensor.empty(Device.CUDA, DType.F32, rowsP, nP)) {
            productInto(plan, b16, nP, CudaOps.ptr(out), Cuda.R_32F);   // here the library writes float32, or the shape was refused
            if (!direct) {
                try (Tensor r = out.slice(0, 0, rows); Tensor rc = r.slice(1, 0, n)) { c.copyFrom(rc); }
            }
        }
    }

    /**
     * out [rowsP, nP] = A b16 written as ctype: through cuSPARSELt (whose output type, {@link #outputType()}, the
     * caller's ctype then is), or, where the library refused the shape (plan null), the same product of the masked bf16
     * operand through cuBLAS.
     */
    private void productInto(Cuda.SparseLtPlan plan, CudaOps.Block b16, int nP, MemorySegment out, int ctype) {
        if (plan != null) {
            if (ctype != outType) throw new IllegalStateException("a " + ctype + " product from a plan of output type " + outType);
            sparseMatmul(plan, b16, out);
            return;
        }
        Native.cudaGemmEx(false, false, rowsP, nP, kP, 1f, a16.ptr(), Cuda.R_16BF, kP, b16.ptr(), Cuda.R_16BF, nP, 0f, out, ctype, nP, false);
        FALLBACKS.incrementAndGet();
    }

    /** out = A b16 through cuSPARSELt (A compressed for this plan on first use), in the plan's output type. */
    private synchronized void sparseMatmul(Cuda.SparseLtPlan plan, CudaOps.Block b16, MemorySegment out) {
        CudaOps.Block comp = null;
        for (Compressed c : compressed) if (c.plan() == plan) comp = c.block();
        if (comp == null) {
            // stream-ordered: a launch that still reads the oldest form runs before anything its freed block is given to
            if (compressed.size() >= COMPRESSED_PLANS) compressed.removeFirst().block().close();
            comp = CudaOps.Block.of(Math.max(1, plan.compressedBytes()));
            try (CudaOps.Block buf = plan.bufferBytes() > 0 ? CudaOps.Block.of(plan.bufferBytes()) : null) {
                plan.compress(a16.ptr(), comp.ptr(), buf == null ? MemorySegment.NULL : buf.ptr());
            } catch (RuntimeException | Error e) {
                comp.close();
                throw e;
            }
            compressed.addLast(new Compressed(plan, comp));
            COMPRESSIONS.incrementAndGet();
        }
        try (CudaOps.Block ws = plan.workspaceBytes() > 0 ? CudaOps.Block.of(plan.workspaceBytes()) : null) {
            plan.matmul(1f, comp.ptr(), b16.ptr(), 0f, out, ws == null ? MemorySegment.NULL : ws.ptr());
        }
        MATMULS.incrementAndGet();
    }

    private static final AtomicLong COMPRESSIONS = new AtomicLong();
    /** How many times an operand was compressed for a plan (tests: a kept operand compresses once per thread's plan). */
    public static long compressions() { return COMPRESSIONS.get(); }

    /** Test hook: makes the library's refusal of a padded shape visible without a library that refuses it. */
    static void refuseForTest(int rowsP, int nP, int kP, String why) { REFUSED.put(new Key(rowsP, nP, kP), why); }

    static void clearRefusalsForTest() { REFUSED.clear(); }

    /** Test hook: the library's output type from now on (the calling thread's plans are dropped); returns the previous one. */
    static int setOutputTypeForTest(int type) {
        available();
        int was = outType;
        outType = type;
        clearPlans();
        return was;
    }

    @Override public synchronized void close() {
        for (Compressed c : compressed) c.block().close();
        compressed.clear();
        if (a16 != null) { a16.close(); a16 = null; }
    }
}
