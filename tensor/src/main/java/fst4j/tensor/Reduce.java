package fst4j.tensor;

import java.util.Arrays;

/**
 * Reductions over a set of axes (empty set = all axes), accumulated in double. keepDim keeps reduced
 * axes as size 1, as in PyTorch.
 */
public final class Reduce {
    private Reduce() {}

    static boolean[] mask(int[] axes, int rank) {
        boolean[] m = new boolean[rank];
        if (axes.length == 0) Arrays.fill(m, true);
        for (int a : axes) {
            int x = Shape.axis(a, rank);
            if (m[x] && axes.length > 0) throw new IllegalArgumentException("axis " + a + " repeated in " + Arrays.toString(axes));
            m[x] = true;
        }
        return m;
    }

    static int[] keptShape(int[] shape, boolean[] m) {
        int[] s = shape.clone();
        for (int i = 0; i < s.length; i++) if (m[i]) s[i] = 1;
        return s;
    }

    static int[] dropShape(int[] shape, boolean[] m) {
        return java.util.stream.IntStream.range(0, shape.length).filter(i -> !m[i]).map(i -> shape[i]).toArray();
    }

    /** For each input element (row-major), the flat index of its output cell. */
    private interface Visitor { void visit(long outIndex, double value, long inIndex); }

    private static void walk(Tensor a, boolean[] m, Visitor v) {
        int r = a.shape.length;
        long[] outStrides = Shape.contiguousStrides(keptShape(a.shape, m));
        long n = a.numel();
        int[] idx = new int[r];
        for (long i = 0; i < n; i++) {
            long off = a.offset, o = 0;
            for (int d = 0; d < r; d++) { off += idx[d] * a.strides[d]; if (!m[d]) o += idx[d] * outStrides[d]; }
            v.visit(o, a.getAt(off), i);
            Elementwise.advance(idx, a.shape, r - 1);
        }
    }

    private static Tensor finish(Tensor a, boolean[] m, boolean keepDim, double[] acc) {
        int[] shape = keepDim ? keptShape(a.shape, m) : dropShape(a.shape, m);
        Tensor out = Tensor.empty(a.dtype, shape);
        for (int i = 0; i < acc.length; i++) out.setAt(i, acc[i]);
        return out;
    }

    private static int outSize(Tensor a, boolean[] m) { return Math.toIntExact(Shape.numel(keptShape(a.shape, m))); }

    public static Tensor sum(Tensor a, boolean keepDim, int... axes) {
        a.check();
        if (a.storage.device != Device.CPU) return CudaOps.sum(a, keepDim, axes, false);
        boolean[] m = mask(axes, a.dim());
        double[] acc = new double[outSize(a, m)];
        walk(a, m, (o, x, i) -> acc[(int) o] += x);
        return finish(a, m, keepDim, acc);
    }

    public static Tensor sum(Tensor a) { return sum(a, false); }

    public static Tensor mean(Tensor a, boolean keepDim, int... axes) {
        a.check();
        if (a.storage.device != Device.CPU) return CudaOps.sum(a, keepDim, axes, true);
        boolean[] m = mask(axes, a.dim());
        double[] acc = new double[outSize(a, m)];
        walk(a, m, (o, x, i) -> acc[(int) o] += x);
        long count = acc.length == 0 ? 0 : a.numel() / acc.length;
        for (int i = 0; i < acc.length; i++) acc[i] /= count;
        return finish(a, m, keepDim, acc);
    }

    public static Tensor mean(Tensor a) { return mean(a, false); }

    /** Variance; correction 1 gives the unbiased estimator, 0 the population one. */
    public static Tensor var(Tensor a, boolean keepDim, int correction, int... axes) {
        a.check();
        boolean[] m = mask(axes, a.dim());
        if (a.storage.device != Device.CPU) return CudaOps.var(a, keepDim, correction, m);
        int size = outSize(a, m);
        double[] mean = new double[size], sq = new double[size];
        walk(a, m, (o, x, i) -> mean[(int) o] += x);
        long count = size == 0 ? 0 : a.numel() / size;
        for (int i = 0; i < size; i++) mean[i] /= count;
        walk(a, m, (o, x, i) -> { double d = x - mean[(int) o]; sq[(int) o] += d * d; });
        for (int i = 0; i < size; i++) sq[i] /= Math.max(0, count - correction);
        return finish(a, m, keepDim, sq);
    }

    public static Tensor max(Tensor a, boolean keepDim, int... axes) {
        a.check();
        boolean[] m = mask(axes, a.dim());
        if (a.numel() == 0) throw new IllegalArgumentException("max of an empty tensor");
        if (a.storage.device != Device.CPU) return CudaOps.max(a, m, keepDim ? keptShape(a.shape, m) : dropShape(a.shape, m), false);
        double[] acc = new double[outSize(a, m)];
        Arrays.fill(acc, Double.NEGATIVE_INFINITY);
        walk(a, m, (o, x, i) -> { if (x > acc[(int) o] || Double.isNaN(x)) acc[(int) o] = x; });
        return finish(a, m, keepDim, acc);
    }

    /**
     * Index of the largest element along one axis (first one on ties), as float32 values. NaN counts as the largest, as
     * in {@link #max} and PyTorch: the first NaN's index.
     */
    public static Tensor argmax(Tensor a, int axis, boolean keepDim) {
        a.check();
        int ax = Shape.axis(axis, a.dim());
        if (a.shape[ax] == 0) throw new IllegalArgumentException("argmax over an empty axis");
        boolean[] m = new boolean[a.dim()];
        m[ax] = true;
        if (a.storage.device != Device.CPU) return CudaOps.max(a, m, keepDim ? keptShape(a.shape, m) : dropShape(a.shape, m), true);
        int size = outSize(a, m);
        double[] best = new double[size], arg = new double[size];
        Arrays.fill(best, Double.NEGATIVE_INFINITY);
        Arrays.fill(arg, -1);
        long inner = Shape.contiguousStrides(a.shape)[ax];
        walk(a, m, (o, x, i) -> {
            int k = (int) ((i / inner) % a.shape[ax]);
            // NaN never compared greater: argmax skipped the NaN that max returned ([1, NaN, 3] gave 2)
            double b = best[(int) o];
            if (arg[(int) o] < 0 || (!Double.isNaN(b) && (x > b || Double.isNaN(x)))) { best[(int) o] = x; arg[(int) o] = k; }
        });
        int[] shape = keepDim ? keptShape(a.shape, m) : dropShape(a.shape, m);
        Tensor out = Tensor.empty(DType.F32, shape);
        for (int i = 0; i < size; i++) out.setAt(i, arg[i]);
        return out;
    }
}
