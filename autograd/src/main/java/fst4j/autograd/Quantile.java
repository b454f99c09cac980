package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.FlatIndex;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

import java.util.Arrays;
import java.util.Locale;

/**
 * torch.quantile, torch.nanquantile and torch.nanmedian as torch 1.13's quantile_impl computes them: the line sorted
 * ({@link Sort}, stable, NaN last), a rank per line and q, and the sorted values at that rank gathered (gather's
 * scatter-add backward), for 'linear' and 'midpoint' two of them lerped. So the gradient reaches the selected elements
 * with the interpolation weights, as torch's autograd of its sort, gather and lerp does, on the CPU and on CUDA float32
 * (Sort, gather and the elementwise ops there give the CPU's bits, so the composite does too).
 * <p>
 * The ranks, as torch's, in the input's dtype (q rounded to it first, as torch wraps a Python float q in a tensor of
 * the input's dtype): quantile's rank is q (n - 1), or n - 1 for a line holding NaN (the last sorted value, a NaN);
 * nanquantile's is q (c - 1) with c the line's non-NaN count, 0 where that is negative (an all-NaN line: its first
 * NaN). 'lower' floors it, 'higher' ceils it, 'nearest' rounds half to even (torch's round), 'linear' lerps the values
 * at floor and ceil with weight rank - floor, 'midpoint' with weight 0.5. The ranks depend on the NaN count, so they are
 * computed on the host from the sorted values (on CUDA, one copy of them to the host).
 * <p>
 * Lerp is torch's two-sided formula, |w| < 0.5 ? below + w (above - below) : above - (above - below) (1 - w), as a
 * where over the two (so each side's gradient is the well-conditioned one, g (1 - w) and g w up to rounding). torch's
 * CPU kernel fuses each multiply-add where the hardware has FMA; this one rounds the product and the sum separately
 * (the same on the CPU and CUDA), so a float32 'linear' or 'midpoint' value may differ from torch's by an ulp.
 */
final class Quantile {
    private Quantile() {}

    /** torch's interpolation names. */
    enum Interpolation {
        LINEAR, LOWER, HIGHER, MIDPOINT, NEAREST;

        static Interpolation of(String op, String name) {
            if (name != null)
                for (Interpolation i : values()) if (i.name().toLowerCase(Locale.ROOT).equals(name)) return i;
            throw new IllegalArgumentException(op + ": interpolation must be one of linear, lower, higher, midpoint or nearest, got " + (name == null ? "null" : "'" + name + "'"));
        }
    }

    /**
     * quantile (ignoreNan false) or nanquantile of x along axis (null: over all elements, flattened). A scalar q
     * (scalarQ, q of one element) gives the reduced shape; an array q a new leading axis of q.length, as torch's q tensor.
     */
    static Var quantile(Var x, double[] q, boolean scalarQ, Integer axis, boolean keepDim, String interpolation, boolean ignoreNan) {
        String op = ignoreNan ? "nanquantile" : "quantile";
        Interpolation interp = Interpolation.of(op, interpolation);
        if (q == null || q.length == 0) throw new IllegalArgumentException(op + ": q is " + (q == null ? "null" : "empty") + " (give at least one q in [0, 1])");
        for (double v : q)
            if (!(v >= 0 && v <= 1)) throw new IllegalArgumentException(op + ": q must be in [0, 1], got " + v);
        Tensor xv = x.value();
        checkDevice(op, xv);
        if (xv.numel() == 0) throw new IllegalArgumentException(op + ": the input " + Shape.str(xv.shape()) + " is empty (torch refuses an empty input)");
        Reduced r = reduce(op, x, axis, keepDim);
        int nq = q.length;
        long lines = xv.numel() / r.lines.shape()[r.ax], outSize = nq * lines;
        if (outSize > Integer.MAX_VALUE) {   // ranks and gathers are int arrays: refused before the sort allocates
            int[] out = new int[r.out.length + 1];
            out[0] = nq;
            System.arraycopy(r.out, 0, out, 1, r.out.length);
            throw new IllegalArgumentException(op + ": the output " + Shape.str(out) + " would hold " + outSize + " elements (" + nq
                    + " q by " + lines + " lines), more than " + Integer.MAX_VALUE);
        }
        Var sorted = r.lines.sort(r.ax, false)[0];
        DType dt = xv.dtype();
        boolean f32 = dt == DType.F32;
        int[] s = sorted.shape(), g = s.clone();
        g[r.ax] = nq;
        int n = s[r.ax], inner = (int) (Shape.numel(s) / ((long) outer(s, r.ax) * n)), outer = outer(s, r.ax);
        double[] v = sorted.value().toDoubleArray();
        int total = Math.toIntExact((long) outer * nq * inner);
        int[] lo = new int[total], hi = new int[total];
        double[] w = new double[total];
        double[] qt = new double[nq];
        for (int i = 0; i < nq; i++) qt[i] = f32 ? (float) q[i] : q[i];
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < inner; j++) {
                int c = nonNan(v, o, j, n, inner);
                for (int i = 0; i < nq; i++) {
                    double rank;
                    if (ignoreNan) { rank = mul(f32, qt[i], c - 1); if (rank < 0) rank = 0; }
                    else rank = c < n ? n - 1 : mul(f32, qt[i], n - 1);
                    rank = switch (interp) {
                        case LOWER -> Math.floor(rank);
                        case HIGHER -> Math.ceil(rank);
                        case NEAREST -> Math.rint(rank);   // half to even, as torch's round
                        case LINEAR, MIDPOINT -> rank;
                    };
                    int at = (o * nq + i) * inner + j;
                    lo[at] = (int) rank;
                    hi[at] = (int) Math.ceil(rank);
                    w[at] = interp == Interpolation.MIDPOINT ? 0.5 : rank - lo[at];   // exact: rank and its floor share an exponent
                }
            }
        Var y = sorted.gather(r.ax, lo, g);
        if (interp == Interpolation.LINEAR || interp == Interpolation.MIDPOINT)
            y = lerp(y, sorted.gather(r.ax, hi, g), w, dt, xv.device(), g);
        if (scalarQ) return y.reshape(r.out);
        int[] out = new int[r.out.length + 1];
        out[0] = nq;
        System.arraycopy(r.out, 0, out, 1, r.out.length);
        if (r.ax != 0) {   // q's axis to the front, as torch moves it
            int[] perm = new int[g.length];
            perm[0] = r.ax;
            for (int d = 0, k = 1; d < g.length; d++) if (d != r.ax) perm[k++] = d;
            y = y.permute(perm);
        }
        return y.reshape(out);
    }

    /**
     * torch.nanmedian(x, axis, keepDim): the lower median of the line's non-NaN values (position (c - 1) / 2 of the
     * ascending stable sort, c the non-NaN count) and its index, or the line's first NaN where all are NaN; values and
     * float32 indices as {@link Sort}'s median. axis null: over all elements (values only in torch; here indices too,
     * flat positions).
     */
    static Var[] nanmedian(Var x, Integer axis, boolean keepDim) {
        String op = "nanmedian";
        Tensor xv = x.value();
        checkDevice(op, xv);
        if (axis == null && xv.numel() == 0)   // named by the input's shape: the flattened line's axis 0 is not the caller's
            throw new IllegalArgumentException(op + ": the input " + Shape.str(xv.shape()) + " is empty (no element to take the median of)");
        Reduced r = reduce(op, x, axis, keepDim);
        int[] s = r.lines.shape();
        int n = s[r.ax];
        if (n == 0) throw new IllegalArgumentException(op + ": axis " + r.ax + " of " + Shape.str(s) + " is empty");
        Var[] sortedAndIdx = r.lines.sort(r.ax, false);
        Var sorted = sortedAndIdx[0];
        int outer = xv.numel() == 0 ? 0 : outer(s, r.ax), inner = outer == 0 ? 0 : (int) (Shape.numel(s) / ((long) outer * n));
        int[] g = s.clone();
        g[r.ax] = 1;
        double[] v = sorted.value().toDoubleArray(), sortIdx = sortedAndIdx[1].value().toDoubleArray();
        int[] at = new int[outer * inner];
        double[] idx = new double[at.length];
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < inner; j++) {
                int c = nonNan(v, o, j, n, inner);
                int k = c > 0 ? (c - 1) / 2 : 0;
                at[o * inner + j] = k;
                idx[o * inner + j] = sortIdx[(o * n + k) * inner + j];
            }
        Var values = sorted.gather(r.ax, at, g).reshape(r.out);
        Tensor indices;
        try (Tensor h = FlatIndex.ofDoubles(idx, DType.F32, r.out)) { indices = h.to(xv.device()); }
        return new Var[]{values, Var.of(indices)};
    }

    /** x as lines along ax (a scalar or no axis: flattened to one line) and the output's shape. */
    private record Reduced(Var lines, int ax, int[] out) {}

    private static Reduced reduce(String op, Var x, Integer axis, boolean keepDim) {
        int[] s = x.shape();
        if (axis == null) {
            int[] out = new int[keepDim ? s.length : 0];
            Arrays.fill(out, 1);
            return new Reduced(x.reshape(-1), 0, out);
        }
        if (s.length == 0) {
            if (axis != 0 && axis != -1) throw new IllegalArgumentException(op + ": axis " + axis + " out of range for a scalar (0 or -1)");
            return new Reduced(x.reshape(1), 0, new int[0]);
        }
        if (axis < -s.length || axis >= s.length)
            throw new IllegalArgumentException(op + ": axis " + axis + " out of range for shape " + Shape.str(s));
        int ax = Shape.axis(axis, s.length);
        int[] out;
        if (keepDim) { out = s.clone(); out[ax] = 1; }
        else { out = new int[s.length - 1]; for (int d = 0, j = 0; d < s.length; d++) if (d != ax) out[j++] = s[d]; }
        return new Reduced(x, ax, out);
    }

    private static void checkDevice(String op, Tensor x) {
        if (x.device() != Device.CPU && x.dtype() != DType.F32)
            throw new UnsupportedOperationException(op + " on CUDA supports float32 only, got " + x.dtype().name().toLowerCase(Locale.ROOT));
    }

    private static int outer(int[] s, int ax) {
        long o = 1;
        for (int d = 0; d < ax; d++) o *= s[d];
        return Math.toIntExact(o);
    }

    /** The non-NaN count of line (o, j) of the sorted values: NaN sorts last, so the first NaN's position. */
    private static int nonNan(double[] v, int o, int j, int n, int inner) {
        int lo = 0, hi = n;
        while (lo < hi) {
            int m = (lo + hi) >>> 1;
            if (Double.isNaN(v[(o * n + m) * inner + j])) hi = m; else lo = m + 1;
        }
        return lo;
    }

    /** a b in the dtype's precision (float32: one float product; double's is exact-then-rounded, the same bits). */
    private static double mul(boolean f32, double a, double b) { return f32 ? (float) a * (float) b : a * b; }

    /** torch's lerp(below, above, w) with the constant weights w, each side of 0.5 by its own formula. */
    private static Var lerp(Var below, Var above, double[] w, DType dt, Device dev, int[] shape) {
        boolean anyLow = false, anyHigh = false;
        double[] w1 = new double[w.length], mask = new double[w.length];
        for (int i = 0; i < w.length; i++) {
            boolean low = Math.abs(w[i]) < 0.5;
            anyLow |= low; anyHigh |= !low;
            mask[i] = low ? 1 : 0;
            w1[i] = 1 - w[i];   // exact for w in [0.5, 1] in either dtype (Sterbenz)
        }
        Var d = above.sub(below);
        Var r1 = anyLow ? below.add(d.mul(constant(w, dt, dev, shape))) : null;
        Var r2 = anyHigh ? above.sub(d.mul(constant(w1, dt, dev, shape))) : null;
        if (r2 == null) return r1;
        if (r1 == null) return r2;
        try (Tensor m = constantTensor(mask, dt, dev, shape)) { return Var.where(m, r1, r2); }
    }

    private static Var constant(double[] v, DType dt, Device dev, int[] shape) { return Var.of(constantTensor(v, dt, dev, shape)); }

    private static Tensor constantTensor(double[] v, DType dt, Device dev, int[] shape) {
        try (Tensor h = FlatIndex.ofDoubles(v, dt, shape)) { return h.to(dev); }
    }
}
