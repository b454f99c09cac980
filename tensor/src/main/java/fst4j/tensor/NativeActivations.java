package fst4j.tensor;

import fst4j.shim.Native;

/**
 * The C paths of {@link Activation} for float32 CPU tensors: one pass of the shim's act.c each way (fst_act_f32,
 * fst_act_bwd_f32), whose per-element formulas are the text the CUDA kernels run (native-cuda's fst4j_act.h), in double
 * and rounded once, as the Java functions compute; they use the C library's erfc, exp, log1p, expm1 and tanh where the
 * Java functions use {@link Erf} and java.lang.Math, so a float result may differ from the Java path's in its last bit,
 * rarely (NativeActivationsTest bounds it by 2 ulp; the piecewise-linear ops agree bit for bit).
 * <p>
 * Every float32 CPU operand takes this path when the shim is loaded, at any size (so that a tensor's activation does not
 * depend on its size): an operand that is not contiguous in the output's shape (a permuted view, a slice, a broadcast
 * operand of a backward) is first copied into one that is, so the result does not depend on the layout either. Float64,
 * mixed dtypes and a missing shim keep the Java functions. The Java ones stay the reference in tests (-Dfst4j.act.java=true
 * or {@link #enabled} switches this off).
 */
final class NativeActivations {
    private NativeActivations() {}

    static boolean enabled = !Boolean.getBoolean("fst4j.act.java");

    private static boolean usable(Tensor a) {
        a.check();
        return enabled && a.dtype == DType.F32 && a.storage.device == Device.CPU && Native.isLoaded();
    }

    /** op(x), or null where this path does not take x (the Java function runs instead). */
    static Tensor forward(int code, double s0, double s1, Tensor x) {
        if (!usable(x)) return null;
        Tensor out = Tensor.empty(DType.F32, x.shape);
        try (Tensor xc = x.contiguous()) {
            if (out.numel() > 0) Native.act(code, s0, s1, xc.data(), out.data(), out.numel(), Blas.threads());
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** op(a, b) with a and b broadcast, or null where this path does not take them. */
    static Tensor backward(int code, double s0, double s1, Tensor a, Tensor b) {
        if (!usable(a) || !usable(b)) return null;
        int[] shape = Shape.broadcast(a.shape, b.shape);
        Tensor out = Tensor.empty(DType.F32, shape);
        try (Tensor ac = dense(a, shape); Tensor bc = dense(b, shape)) {
            if (out.numel() > 0) Native.actBackward(code, s0, s1, ac.data(), bc.data(), out.data(), out.numel(), Blas.threads());
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** t as a contiguous tensor of the given (broadcast) shape: t itself where it is one, else a copy. */
    private static Tensor dense(Tensor t, int[] shape) {
        if (java.util.Arrays.equals(t.shape, shape)) return t.contiguous();
        try (Tensor e = t.expand(shape)) { return e.copy(); }
    }
}
