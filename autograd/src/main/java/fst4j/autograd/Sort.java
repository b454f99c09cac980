package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.LineSort;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

import java.util.Arrays;
import java.util.Comparator;

/**
 * torch.sort, torch.topk, torch.kthvalue and torch.median along one axis: each line is sorted (a stable sort), and a run
 * of its sorted positions is kept as values (differentiable) and indices (float32 values, {@link Tensor#argmax}'s
 * convention, exact up to 2^24 along the axis; a non-differentiable output), from one node with two outputs, as
 * {@link MaxWithIndices}. The values' gradient goes back to the source positions (a scatter; each is selected at most
 * once). On the CPU a loop in double; on CUDA (float32) a device sort of (key, position) pairs ({@link LineSort}:
 * a bitonic network whose keys order floats as {@link #compare} does and whose positions break ties, which is the
 * stable sort) and a scatter for the gradient, giving the CPU path's bits: values, indices and gradient.
 * <p>
 * Order, as torch 1.13's {@code sort(stable=True)}: NaN is larger than every number (last ascending, first descending),
 * -0 equals 0, and equal values keep their input order, descending too (a stable sort by the reversed order, not the
 * ascending one reversed). torch's default sort, topk, kthvalue and median do not promise an order among ties; here
 * every one of them is the stable sort's: topk is the first k of sort(descending = largest), kthvalue the k-th of the
 * ascending stable sort, median its ((n - 1) / 2)-th, the lower median, or, as torch's, the first NaN of a line that
 * holds one.
 */
final class Sort extends MultiFunction {
    private enum Kind { SORT, TOPK, KTH, MEDIAN }

    private final Kind kind;
    private final int axis, k;
    private final boolean descending, keepDim;
    private int[] inShape, src;   // src: for each output element, the flat input position it came from
    private DType dtype;
    private LineSort.Sources sources;   // CUDA: src on the device, for backward

    private Sort(Kind kind, int axis, int k, boolean descending, boolean keepDim) {
        this.kind = kind; this.axis = axis; this.k = k; this.descending = descending; this.keepDim = keepDim;
    }

    static Sort sort(int axis, boolean descending) { return new Sort(Kind.SORT, axis, -1, descending, true); }
    static Sort topk(int k, int axis, boolean largest) { return new Sort(Kind.TOPK, axis, k, largest, true); }
    static Sort kthvalue(int k, int axis, boolean keepDim) { return new Sort(Kind.KTH, axis, k, false, keepDim); }
    static Sort median(int axis, boolean keepDim) { return new Sort(Kind.MEDIAN, axis, -1, false, keepDim); }

    @Override
    public String name() {
        return switch (kind) { case SORT -> "Sort"; case TOPK -> "TopK"; case KTH -> "KthValue"; case MEDIAN -> "Median"; };
    }

    /** NaN above everything, -0 == 0 (so ties), as torch's comparison; Double.compare would order -0 before 0. */
    static int compare(double a, double b) {
        boolean na = Double.isNaN(a), nb = Double.isNaN(b);
        if (na || nb) return na == nb ? 0 : na ? 1 : -1;
        return a < b ? -1 : a > b ? 1 : 0;
    }

    /** The selection over a row-major copy of x: values, indices (positions along the axis) and src, with the output's shape. */
    private record Selected(double[] values, int[] indices, int[] src, int[] shape) {}

    /** x seen as [outer, n, inner] along the axis, count positions kept per line, and the output's shape. */
    private record Lines(int n, int count, int outer, int inner, int[] shape) {}

    private Lines lines(Tensor x) {
        String op = name();
        if (x.device() != Device.CPU && x.dtype() != DType.F32)   // CudaOps.require's wording, before anything is allocated
            throw new UnsupportedOperationException(op + " on CUDA supports float32 only, got " + x.dtype().name().toLowerCase());
        int[] s = x.shape();
        int ax;
        int[] line;   // the shape seen as lines: a scalar is one line of one element (torch allows axis 0 or -1 there)
        if (s.length == 0) {
            if (axis != 0 && axis != -1) throw new IllegalArgumentException(op + ": axis " + axis + " out of range for a scalar (0 or -1)");
            ax = 0;
            line = new int[]{1};
        } else {
            ax = Shape.axis(axis, s.length);
            line = s;
        }
        int n = line[ax];
        if (n > 1 << 24)
            throw new IllegalArgumentException(op + ": axis " + ax + " of " + Shape.str(s) + " has " + n
                    + " elements, more than float32 indices count exactly (2^24)");
        int count = switch (kind) {
            case SORT -> n;
            case TOPK -> {
                if (k < 0 || k > n)
                    throw new IllegalArgumentException("topk: k = " + k + " is out of range for axis " + ax + " of size " + n + " (shape " + Shape.str(s) + "): 0 <= k <= " + n);
                if (s.length == 0 && k == 0) throw new IllegalArgumentException("topk: k = 0 of a scalar (it has no axis to leave empty)");
                yield k;
            }
            case KTH -> {
                if (k < 1 || k > n)
                    throw new IllegalArgumentException("kthvalue: k = " + k + " is out of range for axis " + ax + " of size " + n + " (shape " + Shape.str(s) + "): 1 <= k <= " + n);
                yield 1;
            }
            case MEDIAN -> {
                if (n == 0) throw new IllegalArgumentException("median: axis " + ax + " of " + Shape.str(s) + " is empty");
                yield 1;
            }
        };
        long outerL = 1, innerL = 1;
        for (int d = 0; d < ax; d++) outerL *= line[d];
        for (int d = ax + 1; d < line.length; d++) innerL *= line[d];
        // an empty x has no lines, whatever its other axes multiply to: they may pass an int (nothing is allocated)
        boolean empty = x.numel() == 0;
        int outer = empty ? 0 : Math.toIntExact(outerL), inner = empty ? 0 : Math.toIntExact(innerL);
        int[] shape;
        if (s.length == 0) shape = new int[0];
        else if (keepDim) { shape = s.clone(); shape[ax] = count; }
        else { shape = new int[s.length - 1]; for (int d = 0, j = 0; d < s.length; d++) if (d != ax) shape[j++] = s[d]; }
        return new Lines(n, count, outer, inner, shape);
    }

    /** On the device: the same selection by LineSort (sources: keep the flat offsets for backward). */
    private LineSort.Selection onDevice(Tensor x, boolean sources) {
        Lines l = lines(x);
        return LineSort.select(name(), x, l.outer(), l.n(), l.inner(), descending, kind == Kind.KTH ? k - 1 : 0, kind == Kind.MEDIAN, l.count(),
                l.shape(), sources);
    }

    private Selected select(Tensor x) {
        Lines l = lines(x);
        int n = l.n(), count = l.count(), outer = l.outer(), inner = l.inner();
        int[] shape = l.shape();
        double[] v = x.toDoubleArray();   // row-major whatever x's strides (a non-contiguous view reads as its logical order)
        int total = Math.toIntExact((long) outer * count * inner);
        double[] vals = new double[total];
        int[] idx = new int[total], from = new int[total];
        double[] lv = new double[n];
        Integer[] order = new Integer[n];
        // Arrays.sort on objects is a merge sort (TimSort): stable, so ties keep their input order
        Comparator<Integer> cmp = descending ? (a, b) -> compare(lv[b], lv[a]) : (a, b) -> compare(lv[a], lv[b]);
        for (int o = 0; o < outer; o++)
            for (int j = 0; j < inner; j++) {
                int nans = 0;
                for (int p = 0; p < n; p++) {
                    lv[p] = v[(o * n + p) * inner + j];
                    if (Double.isNaN(lv[p])) nans++;
                    order[p] = p;
                }
                Arrays.sort(order, cmp);
                int start = switch (kind) {
                    case SORT, TOPK -> 0;
                    case KTH -> k - 1;
                    case MEDIAN -> nans > 0 ? n - nans : (n - 1) / 2;   // ascending: the NaNs last, the first of them in input order
                };
                for (int c = 0; c < count; c++) {
                    int p = order[start + c], at = (o * count + c) * inner + j;
                    from[at] = (o * n + p) * inner + j;
                    vals[at] = v[from[at]];
                    idx[at] = p;
                }
            }
        return new Selected(vals, idx, from, shape);
    }

    /** The indices alone (argsort), as int[] in the output's row-major order. */
    static int[] indices(Sort s, Tensor x) {
        if (x.device() == Device.CPU) return s.select(x).indices();
        LineSort.Selection sel = s.onDevice(x, false);
        float[] f;
        try (Tensor v = sel.values(); Tensor i = sel.indices()) { f = i.toFloatArray(); }
        int[] out = new int[f.length];
        for (int j = 0; j < f.length; j++) out[j] = (int) f[j];
        return out;
    }

    @Override
    protected Tensor[] forwardMulti(Tensor... x) {
        if (x[0].device() != Device.CPU) {
            LineSort.Selection sel = onDevice(x[0], needsGrad(0));
            inShape = x[0].shape();
            dtype = x[0].dtype();
            if (sel.sources() != null) sources = retain(sel.sources());
            return outputs(sel.values(), markNonDifferentiable(sel.indices()));
        }
        Selected sel = select(x[0]);
        inShape = x[0].shape();
        dtype = x[0].dtype();
        if (needsGrad(0)) src = sel.src();
        double[] idx = new double[sel.indices().length];
        for (int i = 0; i < idx.length; i++) idx[i] = sel.indices()[i];
        Tensor values = fst4j.tensor.FlatIndex.ofDoubles(sel.values(), dtype, sel.shape());
        Tensor indices;
        try {
            indices = fst4j.tensor.FlatIndex.ofDoubles(idx, DType.F32, sel.shape());
        } catch (RuntimeException | Error e) {
            values.close();
            throw e;
        }
        return outputs(values, markNonDifferentiable(indices));
    }

    @Override
    protected boolean materializeGrads() { return false; }   // one differentiable output: it always has a gradient

    @Override
    protected Tensor[] backwardMulti(Tensor[] g) {
        if (sources != null) return grads(LineSort.scatter(name() + " backward", g[0], sources, inShape));
        double[] gv = g[0].toDoubleArray();
        double[] acc = new double[Math.toIntExact(Shape.numel(inShape))];
        for (int i = 0; i < src.length; i++) acc[src[i]] = gv[i];   // each source position is selected at most once
        return grads(fst4j.tensor.FlatIndex.ofDoubles(acc, dtype, inShape));
    }
}
