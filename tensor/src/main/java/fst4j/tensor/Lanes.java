package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;

/**
 * Scans and products along one axis, x seen as [outer, n, inner] in row-major order (autograd's Var.cumsum and
 * Var.prod): each lane (o, j) runs over its n elements in order, in double, rounded once. CPU float32 / float64; CUDA
 * float32 with one thread per lane doing the same arithmetic in the same order (fst_k_lanes), so both give the same bits.
 */
public final class Lanes {
    private Lanes() {}

    /** Running sums along the lanes (reverse: from each lane's end, cumsum's backward); x's shape. */
    public static Tensor cumsum(Tensor x, int outer, int n, int inner, boolean reverse) {
        check("cumsum", x, outer, n, inner);
        if (x.device() != Device.CPU) return cuda(reverse ? CudaOps.LANE_CUMSUM_REV : CudaOps.LANE_CUMSUM, "cumsum", x, null, outer, n, inner, x.shape);
        double[] v = x.toDoubleArray(), out = new double[v.length];
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < inner; j++) {
                double acc = 0;
                for (int i = 0; i < n; i++) {
                    int at = at(o, reverse ? n - 1 - i : i, j, n, inner);
                    acc += v[at];
                    out[at] = acc;
                }
            }
        return FlatIndex.ofDoubles(out, x.dtype(), x.shape);
    }

    /** The product of each lane, out of outShape (outer * inner elements). */
    public static Tensor prod(Tensor x, int outer, int n, int inner, int[] outShape) {
        check("prod", x, outer, n, inner);
        if (Shape.numel(outShape) != (long) outer * inner)
            throw new IllegalArgumentException("prod: output " + Shape.str(outShape) + " for " + outer + " x " + inner + " lanes");
        if (x.device() != Device.CPU) return cuda(CudaOps.LANE_PROD, "prod", x, null, outer, n, inner, outShape);
        double[] v = x.toDoubleArray(), out = new double[outer * inner];
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < inner; j++) {
                double p = 1;
                for (int k = 0; k < n; k++) p *= v[at(o, k, j, n, inner)];
                out[o * inner + j] = p;
            }
        return FlatIndex.ofDoubles(out, x.dtype(), outShape);
    }

    /**
     * prod's gradient, torch 1.13's rule: g prod / x where no element of the lane is 0; with one zero, that element gets
     * g times the product of the others and the rest 0; with more, all 0. g holds outer * inner values (any shape).
     */
    public static Tensor prodBackward(Tensor x, Tensor g, int outer, int n, int inner) {
        check("prodBackward", x, outer, n, inner);
        g.check();
        if (g.numel() != (long) outer * inner)
            throw new IllegalArgumentException("prodBackward: gradient " + Shape.str(g.shape) + " for " + outer + " x " + inner + " lanes");
        if (x.device() != Device.CPU || g.device() != Device.CPU) {
            if (x.device() != g.device()) throw CudaOps.mismatch("prodBackward", x, g);
            return cuda(CudaOps.LANE_PROD_BWD, "prodBackward", x, g, outer, n, inner, x.shape);
        }
        double[] v = x.toDoubleArray(), gv = g.toDoubleArray(), out = new double[v.length];
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < inner; j++) {
                int zeros = 0, zeroAt = -1;
                double p = 1, others = 1;
                for (int k = 0; k < n; k++) {
                    double e = v[at(o, k, j, n, inner)];
                    p *= e;
                    if (e == 0) { zeros++; zeroAt = k; } else others *= e;
                }
                double gg = gv[o * inner + j];
                if (zeros == 0) for (int k = 0; k < n; k++) out[at(o, k, j, n, inner)] = gg * p / v[at(o, k, j, n, inner)];
                else if (zeros == 1) out[at(o, zeroAt, j, n, inner)] = gg * others;
            }
        return FlatIndex.ofDoubles(out, x.dtype(), x.shape);
    }

    private static int at(int o, int k, int j, int n, int inner) { return (o * n + k) * inner + j; }

    private static void check(String op, Tensor x, int outer, int n, int inner) {
        x.check();
        if (outer < 0 || n < 0 || inner < 0 || (long) outer * n * inner != x.numel())
            throw new IllegalArgumentException(op + ": lanes " + outer + " x " + n + " x " + inner + " do not cover " + Shape.str(x.shape));
    }

    private static Tensor cuda(int code, String op, Tensor x, Tensor g, int outer, int n, int inner, int[] outShape) {
        CudaOps.require(op, x, g);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, outShape);
        if (out.numel() == 0) return out;
        if (n == 0) return out.fill(1);   // empty lanes (only prod's output is non-empty then): the empty product
        try (Tensor xc = x.contiguous(); Tensor gc = g == null ? null : g.contiguous()) {
            Native.cudaLanes(code, CudaOps.ptr(xc), gc == null ? MemorySegment.NULL : CudaOps.ptr(gc), outer, n, inner, CudaOps.ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }
}
