package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.CudaOps;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * Gradient clipping by the total L2 norm, as torch.nn.utils.clip_grad_norm_ (norm_type 2): every gradient is multiplied by
 * min(1, maxNorm / (norm + 1e-6)), norm being the L2 norm of all the gradients together; parameters without a gradient
 * are left out.
 *
 * <p>The norm is computed in double: each gradient's squares (exact in double for float32) in {@link Native#NORM_PARTS}
 * strided partial sums (element i into part i % NORM_PARTS, in index order), the parts added in order, the gradients'
 * sums added in parameter order, then the square root. That split is the same on any thread count and on CUDA
 * (k_sumsq_part), so a CPU and a CUDA model get the same norm and the same clipped bits. torch sums in float32 (each
 * gradient's norm, then the norm of those), so the norm and the coefficient may differ from torch's in the last float
 * bits. The coefficient is derived in double and rounded to float once; a float64 gradient is multiplied by that float
 * too, as torch multiplies by its float32 coefficient.
 *
 * <p>A NaN or infinite norm: by default as torch with error_if_nonfinite=False (its default), the norm is returned and
 * the gradients are multiplied all the same: by NaN when the norm is NaN (every gradient becomes NaN, which the next step
 * spreads into the weights, as in torch), by 0 when it is infinite (infinite elements become NaN). With errorIfNonfinite
 * (torch's error_if_nonfinite=True) it throws instead, before changing any gradient, so that a step can be skipped.
 */
public final class GradClip {
    private GradClip() {}
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int PARTS = Native.NORM_PARTS;

    /** torch.nn.utils.clip_grad_norm_(params, maxNorm): the total norm before clipping (0 when no parameter has a gradient). */
    public static double clipGradNorm(List<Var> params, double maxNorm) { return clipGradNorm(params, maxNorm, false); }

    /**
     * torch.nn.utils.clip_grad_norm_(params, maxNorm, error_if_nonfinite=errorIfNonfinite). maxNorm must be >= 0 (infinity
     * measures without clipping); NaN and negative are refused (torch would turn every gradient around or into NaN).
     */
    public static double clipGradNorm(List<Var> params, double maxNorm, boolean errorIfNonfinite) {
        if (!(maxNorm >= 0)) throw new IllegalArgumentException("clipGradNorm: maxNorm must be >= 0, got " + maxNorm);
        List<Tensor> grads = gradients(params);
        double norm = norm(grads);
        if (errorIfNonfinite && !Double.isFinite(norm)) throw new NonFiniteNormException(norm);
        double coef = maxNorm / (norm + 1e-6);
        double clamped = Double.isNaN(coef) ? coef : Math.min(coef, 1.0);   // torch.clamp(max=1) keeps a NaN
        if (clamped == 1.0) return norm;   // a multiplication by 1 changes no bit
        float c = (float) clamped;
        for (Tensor g : grads) scale(g, c);
        return norm;
    }

    /**
     * What {@link #clipGradNorm(List, double, boolean)} with errorIfNonfinite throws for a NaN or infinite norm, before
     * changing any gradient; {@link #norm()} is that norm.
     */
    public static final class NonFiniteNormException extends IllegalStateException {
        private static final long serialVersionUID = 1L;
        private final double norm;

        NonFiniteNormException(double norm) {
            super("clipGradNorm: the total L2 norm of the gradients is " + norm + ", so they cannot be clipped"
                    + " (nothing was changed; errorIfNonfinite=false clips as torch does, turning the gradients into NaN)");
            this.norm = norm;
        }

        /** The norm: NaN or an infinity. */
        public double norm() { return norm; }
    }

    /** The total L2 norm of the gradients of params (those that have one), computed as {@link #clipGradNorm} does, changing nothing. */
    public static double gradNorm(List<Var> params) { return norm(gradients(params)); }

    /** The gradients to clip, each checked (open, a layout this class reads) before anything is computed or changed. */
    private static List<Tensor> gradients(List<Var> params) {
        Set<Var> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Tensor> out = new ArrayList<>();
        for (Var p : params) {
            // listed twice, its gradient would be counted twice in the norm and scaled twice
            if (!seen.add(p)) throw new IllegalArgumentException("clipGradNorm given the same parameter " + Shape.str(p.shape()) + " twice");
            Tensor g = p.grad();
            if (g == null) continue;
            g.check();
            if (g.device() == Device.CUDA && (g.dtype() != DType.F32 || !g.isContiguous()))
                throw new IllegalArgumentException("clipGradNorm: a CUDA gradient must be contiguous float32, got " + g.dtype() + " " + Shape.str(g.shape())
                        + (g.isContiguous() ? "" : ", not contiguous"));
            out.add(g);
        }
        return out;
    }

    private static double norm(List<Tensor> grads) {
        List<Tensor> cuda = new ArrayList<>();
        for (Tensor g : grads) if (g.device() == Device.CUDA) cuda.add(g);
        double[][] deviceParts = cuda.isEmpty() ? new double[0][] : CudaOps.sumsqParts(cuda);
        double total = 0;
        int d = 0;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(8L * PARTS, 8);
            for (Tensor g : grads) {
                double[] parts = g.device() == Device.CUDA ? deviceParts[d++] : hostParts(g, buf);
                double s = 0;
                for (double p : parts) s += p;
                total += s;
            }
        }
        return Math.sqrt(total);
    }

    /** The partial sums of squares of a CPU gradient: fst_sumsq_parts for contiguous float32, else its twin in Java. */
    static double[] hostParts(Tensor g, MemorySegment buf) {
        double[] parts = new double[PARTS];
        long n = g.numel();
        if (g.dtype() == DType.F32 && g.isContiguous()) {
            if (Native.isLoaded()) {
                Native.sumsqParts(g.data(), n, buf, Blas.threads());
                for (int p = 0; p < PARTS; p++) parts[p] = buf.getAtIndex(ValueLayout.JAVA_DOUBLE, p);
                return parts;
            }
            MemorySegment x = g.data();
            for (long i = 0; i < n; i++) {
                double e = x.getAtIndex(F, i);
                parts[(int) (i % PARTS)] += e * e;
            }
            return parts;
        }
        for (long i = 0; i < n; i++) {   // float64, or a strided view: its elements in row-major order
            double e = g.getFlat(i);
            parts[(int) (i % PARTS)] += e * e;
        }
        return parts;
    }

    private static void scale(Tensor g, float c) {
        g.markModified();
        if (g.device() == Device.CUDA) { CudaOps.scaleInPlace(g, c); return; }
        long n = g.numel();
        if (g.dtype() == DType.F32 && g.isContiguous()) {
            if (Native.isLoaded()) { Native.scale(g.data(), n, c, Blas.threads()); return; }
            MemorySegment x = g.data();
            for (long i = 0; i < n; i++) x.setAtIndex(F, i, x.getAtIndex(F, i) * c);
            return;
        }
        // (double) x * c is exact and its rounding to float the float product: the same bits as x * c for float32
        for (long i = 0; i < n; i++) g.setFlat(i, g.getFlat(i) * (double) c);
    }
}
