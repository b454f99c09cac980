package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.function.DoubleBinaryOperator;
import java.util.function.DoubleUnaryOperator;

/**
 * Broadcasting elementwise kernels. Values are computed in double and stored in the result's dtype
 * (F64 if any input is F64, else F32). Contiguous float32 operands of equal shape take a flat loop;
 * everything else walks the strided layout with the innermost axis as the tight loop.
 */
public final class Elementwise {
    private Elementwise() {}
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /**
     * Large contiguous float32 operands of one shape on the CPU take the C loops of pool.c (equal bit for bit to the
     * Java loops, which remain for everything else and as the reference in tests).
     */
    static boolean nativeOps = !Boolean.getBoolean("fst4j.eltwise.java");

    private static boolean nativeF32(Tensor a, Tensor b) {
        a.check(); b.check();
        return nativeOps && a.dtype == DType.F32 && b.dtype == DType.F32 && a.device() == Device.CPU && b.device() == Device.CPU
                && a.numel() >= 1024 && java.util.Arrays.equals(a.shape, b.shape) && a.isContiguous() && b.isContiguous() && Native.isLoaded();
    }

    static DType promote(Tensor a, Tensor b) { return a.dtype == DType.F64 || b.dtype == DType.F64 ? DType.F64 : DType.F32; }

    static void sameDevice(Tensor a, Tensor b) {
        if (a.device() != b.device())
            throw new IllegalArgumentException("device mismatch: " + a.device() + " and " + b.device());
    }

    public static Tensor map(Tensor a, DoubleUnaryOperator f) {
        a.check();
        if (a.storage.device != Device.CPU) throw CudaOps.noLambda("map");
        Tensor out = Tensor.empty(a.dtype, a.shape);
        if (a.dtype == DType.F32 && a.isContiguous()) {
            MemorySegment s = a.storage.segment(), o = out.storage.segment();
            long n = a.numel(), base = a.offset;
            for (long i = 0; i < n; i++) o.setAtIndex(F, i, (float) f.applyAsDouble(s.getAtIndex(F, base + i)));
            return out;
        }
        int r = a.shape.length;
        if (r == 0) { out.setAt(0, f.applyAsDouble(a.getAt(a.offset))); return out; }
        int[] idx = new int[r];
        long n = a.numel();
        int inner = a.shape[r - 1];
        long sIn = a.strides[r - 1];
        long oi = 0;
        for (long done = 0; done < n; done += inner) {
            long off = a.offset;
            for (int d = 0; d < r - 1; d++) off += idx[d] * a.strides[d];
            for (int j = 0; j < inner; j++) out.setAt(oi++, f.applyAsDouble(a.getAt(off + j * sIn)));
            advance(idx, a.shape, r - 2);
        }
        return out;
    }

    public static Tensor zip(Tensor a, Tensor b, DoubleBinaryOperator f) {
        a.check(); b.check();
        sameDevice(a, b);
        if (a.storage.device != Device.CPU) throw CudaOps.noLambda("zip");
        int[] shape = Shape.broadcast(a.shape, b.shape);
        Tensor out = Tensor.empty(promote(a, b), shape);
        zipInto(out, a, b, f);
        return out;
    }

    /**
     * out = f(a, b) with a and b broadcast to out's shape (out must be contiguous). An input that shares memory with out
     * is read as it was before the call.
     */
    public static void zipInto(Tensor out, Tensor a, Tensor b, DoubleBinaryOperator f) {
        out.check(); a.check(); b.check();
        if (out.storage.device != Device.CPU || offCpu(a, b)) throw CudaOps.noLambda("zipInto");
        if (!out.isContiguous()) throw new IllegalArgumentException("output must be contiguous");
        // the loops write out[i] before they read later elements of a and b: an input shifted against out read results
        if (out.overlaps(a) || out.overlaps(b)) {
            try (Tensor ac = out.overlaps(a) ? a.copy() : a.alias(); Tensor bc = out.overlaps(b) ? b.copy() : b.alias()) {
                zipInto(out, ac, bc, f);
            }
            return;
        }
        int[] shape = out.shape;
        if (out.dtype == DType.F32 && a.dtype == DType.F32 && b.dtype == DType.F32 && a.isContiguous() && b.isContiguous()
                && java.util.Arrays.equals(a.shape, shape) && java.util.Arrays.equals(b.shape, shape)) {
            out.markModified();   // once the arguments are checked (here, and below once a and b expand to out's shape)
            MemorySegment sa = a.storage.segment(), sb = b.storage.segment(), o = out.storage.segment();
            long n = out.numel(), ba = a.offset, bb = b.offset, bo = out.offset;
            for (long i = 0; i < n; i++)
                o.setAtIndex(F, bo + i, (float) f.applyAsDouble(sa.getAtIndex(F, ba + i), sb.getAtIndex(F, bb + i)));
            return;
        }
        try (Tensor ea = a.expand(shape); Tensor eb = b.expand(shape)) {
            out.markModified();
            int r = shape.length;
            if (r == 0) { out.setAt(out.offset, f.applyAsDouble(ea.getAt(ea.offset), eb.getAt(eb.offset))); return; }
            long n = out.numel();
            if (n == 0) return;
            int[] idx = new int[r];
            int inner = shape[r - 1];
            long stA = ea.strides[r - 1], stB = eb.strides[r - 1];
            long oi = out.offset;
            for (long done = 0; done < n; done += inner) {
                long offA = ea.offset, offB = eb.offset;
                for (int d = 0; d < r - 1; d++) { offA += idx[d] * ea.strides[d]; offB += idx[d] * eb.strides[d]; }
                for (int j = 0; j < inner; j++) out.setAt(oi++, f.applyAsDouble(ea.getAt(offA + j * stA), eb.getAt(offB + j * stB)));
                advance(idx, shape, r - 2);
            }
        }
    }

    /** where(cond != 0, a, b), broadcasting all three (a NaN condition counts as true). CPU and CUDA (float32). */
    public static Tensor where(Tensor cond, Tensor a, Tensor b) {
        cond.check(); a.check(); b.check();
        int[] shape = Shape.broadcast(cond.shape, Shape.broadcast(a.shape, b.shape));
        if (cond.storage.device != Device.CPU || offCpu(a, b)) return CudaOps.where(cond, a, b, shape);
        Tensor out = Tensor.empty(promote(a, b), shape);
        try (Tensor c = cond.expand(shape); Tensor ea = a.expand(shape); Tensor eb = b.expand(shape)) {
            long n = out.numel();
            for (long i = 0; i < n; i++)
                out.setAt(i, c.getAt(c.storageIndex(i)) != 0 ? ea.getAt(ea.storageIndex(i)) : eb.getAt(eb.storageIndex(i)));
        }
        return out;
    }

    static void advance(int[] idx, int[] shape, int last) {
        for (int d = last; d >= 0; d--) {
            if (++idx[d] < shape[d]) return;
            idx[d] = 0;
        }
    }

    /** True when either operand is not on the CPU: the op then runs in CudaOps (which reports a device mismatch). */
    private static boolean offCpu(Tensor a, Tensor b) { return a.storage.device != Device.CPU || b.storage.device != Device.CPU; }

    // ---- the named ops (those a training step uses also run on CUDA; large float32 ones on the CPU in C) ----
    public static Tensor add(Tensor a, Tensor b) {
        if (offCpu(a, b)) return CudaOps.binary("add", CudaOps.ADD, a, b);
        if (nativeF32(a, b)) {
            Tensor out = Tensor.empty(DType.F32, a.shape);
            Native.add(a.data(), b.data(), out.data(), a.numel(), Blas.threads());
            return out;
        }
        return zip(a, b, Double::sum);
    }
    /**
     * a += b in place (b broadcast to a's shape): one C pass where both are large contiguous float32, one CUDA kernel
     * writing into a where a is a contiguous CUDA tensor that b does not share storage with, else a + b copied back.
     */
    public static Tensor addInPlace(Tensor a, Tensor b) {
        a.check();   // a's version moves where it is written, once b is known to fit: a refused call writes nothing
        if (offCpu(a, b) && CudaOps.addInto(a, b)) return a;
        // the C loop writes a on several threads while they read b: a b shifted against a read sums (a += a is fine)
        if (nativeF32(a, b) && (!a.overlaps(b) || a.offset == b.offset)) {
            a.markModified();
            Native.add(a.data(), b.data(), a.data(), a.numel(), Blas.threads());
            return a;
        }
        try (Tensor s = add(a, b)) {
            if (!java.util.Arrays.equals(s.shape, a.shape))
                throw new IllegalArgumentException("shape mismatch: in-place add of " + Shape.str(b.shape) + " into " + Shape.str(a.shape)
                        + " would change its shape");
            a.copyFrom(s);   // counts the write
        }
        return a;
    }
    public static Tensor sub(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("sub", CudaOps.SUB, a, b) : zip(a, b, (x, y) -> x - y); }
    public static Tensor mul(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("mul", CudaOps.MUL, a, b) : zip(a, b, (x, y) -> x * y); }
    public static Tensor div(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("div", CudaOps.DIV, a, b) : zip(a, b, (x, y) -> x / y); }

    /** max(a + b, 0) in one pass (a ResNet block's residual add and ReLU); a and b broadcast. */
    public static Tensor addRelu(Tensor a, Tensor b) {
        if (offCpu(a, b)) return CudaOps.binary("addRelu", CudaOps.ADD_RELU, a, b);
        if (nativeF32(a, b)) {
            Tensor out = Tensor.empty(DType.F32, a.shape);
            Native.addRelu(a.data(), b.data(), out.data(), a.numel(), Blas.threads());
            return out;
        }
        return zip(a, b, (x, y) -> { double v = x + y; return v > 0 || Double.isNaN(v) ? v : 0; });
    }

    /** ReLU's backward: g where a > 0, else 0 (a is ReLU's input; g and a broadcast). */
    public static Tensor reluBackward(Tensor g, Tensor a) {
        if (offCpu(g, a)) return CudaOps.binary("reluBackward", CudaOps.RELU_BWD, g, a);
        if (nativeF32(g, a)) {
            Tensor out = Tensor.empty(DType.F32, g.shape);
            Native.reluBackward(g.data(), a.data(), out.data(), g.numel(), Blas.threads());
            return out;
        }
        return zip(g, a, (gv, av) -> av > 0 ? gv : 0);
    }
    // Each op below runs its Java formula on the CPU and the same formula in double on CUDA (fst_k_binary / fst_k_unary,
    // rounded once to float; java.lang.Math's special cases of pow, max, min and signum).
    public static Tensor pow(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("pow", CudaOps.POW, a, b) : zip(a, b, Math::pow); }
    public static Tensor maximum(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("maximum", CudaOps.MAXIMUM, a, b) : zip(a, b, Math::max); }
    public static Tensor minimum(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("minimum", CudaOps.MINIMUM, a, b) : zip(a, b, Math::min); }
    public static Tensor gt(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("gt", CudaOps.GT, a, b) : zip(a, b, (x, y) -> x > y ? 1 : 0); }
    public static Tensor ge(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("ge", CudaOps.GE, a, b) : zip(a, b, (x, y) -> x >= y ? 1 : 0); }
    public static Tensor lt(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("lt", CudaOps.LT, a, b) : zip(a, b, (x, y) -> x < y ? 1 : 0); }
    public static Tensor le(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("le", CudaOps.LE, a, b) : zip(a, b, (x, y) -> x <= y ? 1 : 0); }
    public static Tensor eq(Tensor a, Tensor b) { return offCpu(a, b) ? CudaOps.binary("eq", CudaOps.EQ, a, b) : zip(a, b, (x, y) -> x == y ? 1 : 0); }

    /** Sigmoid's backward from its output y: g y (1 - y) (g and y broadcast). */
    public static Tensor sigmoidBackward(Tensor g, Tensor y) {
        return offCpu(g, y) ? CudaOps.binary("sigmoidBackward", CudaOps.SIGMOID_BWD, g, y) : zip(g, y, (gv, yv) -> gv * yv * (1 - yv));
    }
    /** Tanh's backward from its output y: g (1 - y^2) (g and y broadcast). */
    public static Tensor tanhBackward(Tensor g, Tensor y) {
        return offCpu(g, y) ? CudaOps.binary("tanhBackward", CudaOps.TANH_BWD, g, y) : zip(g, y, (gv, yv) -> gv * (1 - yv * yv));
    }
    /** g where cond != 0 (a NaN condition counts as true), else 0; where's gradient of its first branch. */
    public static Tensor maskNonZero(Tensor g, Tensor cond) {
        return offCpu(g, cond) ? CudaOps.binary("maskNonZero", CudaOps.MASK, g, cond) : zip(g, cond, (gv, c) -> c != 0 ? gv : 0);
    }
    /** g where cond == 0, else 0; where's gradient of its second branch. */
    public static Tensor maskZero(Tensor g, Tensor cond) {
        return offCpu(g, cond) ? CudaOps.binary("maskZero", CudaOps.MASK_NOT, g, cond) : zip(g, cond, (gv, c) -> c != 0 ? 0 : gv);
    }

    public static Tensor neg(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("neg", CudaOps.NEG, 0, a) : map(a, x -> -x); }
    public static Tensor abs(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("abs", CudaOps.ABS, 0, a) : map(a, Math::abs); }
    public static Tensor exp(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("exp", CudaOps.EXP, 0, a) : map(a, Math::exp); }
    public static Tensor log(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("log", CudaOps.LOG, 0, a) : map(a, Math::log); }
    public static Tensor sqrt(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("sqrt", CudaOps.SQRT, 0, a) : map(a, Math::sqrt); }
    public static Tensor pow(Tensor a, double p) { return a.device() != Device.CPU ? CudaOps.unary("pow", CudaOps.POW_SCALAR, p, a) : map(a, x -> Math.pow(x, p)); }
    /** s - a. */
    public static Tensor rsubScalar(double s, Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("rsub", CudaOps.RSUB_SCALAR, s, a) : map(a, x -> s - x); }
    public static Tensor relu(Tensor a) {
        if (a.device() != Device.CPU) return CudaOps.unary("relu", CudaOps.RELU, 0, a);
        if (nativeF32(a, a)) {
            Tensor out = Tensor.empty(DType.F32, a.shape);
            Native.relu(a.data(), out.data(), a.numel(), Blas.threads());
            return out;
        }
        return map(a, x -> x > 0 || Double.isNaN(x) ? x : 0);   // NaN stays NaN, as PyTorch's; -0.0 becomes +0.0
    }
    public static Tensor sigmoid(Tensor a) {
        if (a.device() != Device.CPU) return CudaOps.unary("sigmoid", CudaOps.SIGMOID, 0, a);
        return map(a, x -> x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
    }
    public static Tensor tanh(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("tanh", CudaOps.TANH, 0, a) : map(a, Math::tanh); }
    // torch.sin / cos / log1p / expm1 and their gradients g df(x) (autograd's Var.sin ...): java.lang.Math in double,
    // rounded once; the CUDA kernels compute the same expressions in double (fst4j_kargs.h FST_UN_SIN ..., FST_BIN_SIN_BWD ...)
    public static Tensor sin(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("sin", CudaOps.SIN, 0, a) : map(a, Math::sin); }
    public static Tensor cos(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("cos", CudaOps.COS, 0, a) : map(a, Math::cos); }
    public static Tensor log1p(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("log1p", CudaOps.LOG1P, 0, a) : map(a, Math::log1p); }
    public static Tensor expm1(Tensor a) { return a.device() != Device.CPU ? CudaOps.unary("expm1", CudaOps.EXPM1, 0, a) : map(a, Math::expm1); }
    /** g cos(x). */
    public static Tensor sinBackward(Tensor g, Tensor x) {
        return offCpu(g, x) ? CudaOps.binary("sinBackward", CudaOps.SIN_BWD, g, x) : zip(g, x, (gv, xv) -> gv * Math.cos(xv));
    }
    /** g (-sin(x)). */
    public static Tensor cosBackward(Tensor g, Tensor x) {
        return offCpu(g, x) ? CudaOps.binary("cosBackward", CudaOps.COS_BWD, g, x) : zip(g, x, (gv, xv) -> gv * -Math.sin(xv));
    }
    /** g (1 / (x + 1)). */
    public static Tensor log1pBackward(Tensor g, Tensor x) {
        return offCpu(g, x) ? CudaOps.binary("log1pBackward", CudaOps.LOG1P_BWD, g, x) : zip(g, x, (gv, xv) -> gv * (1 / (xv + 1)));
    }
    /** g exp(x): torch's g (y + 1) before y's rounding. */
    public static Tensor expm1Backward(Tensor g, Tensor x) {
        return offCpu(g, x) ? CudaOps.binary("expm1Backward", CudaOps.EXPM1_BWD, g, x) : zip(g, x, (gv, xv) -> gv * Math.exp(xv));
    }
    public static Tensor addScalar(Tensor a, double s) { return a.device() != Device.CPU ? CudaOps.unary("add", CudaOps.ADD_SCALAR, s, a) : map(a, x -> x + s); }
    public static Tensor mulScalar(Tensor a, double s) { return a.device() != Device.CPU ? CudaOps.unary("mul", CudaOps.MUL_SCALAR, s, a) : map(a, x -> x * s); }

    /** True if any element is NaN or infinite (on CUDA one kernel looks, and only its answer is copied to the host). */
    public static boolean hasNonFinite(Tensor a) {
        a.check();
        if (a.storage.device != Device.CPU) return CudaOps.hasNonFinite(a);
        long n = a.numel();
        for (long i = 0; i < n; i++) if (!Double.isFinite(a.getAt(a.storageIndex(i)))) return true;
        return false;
    }
}
