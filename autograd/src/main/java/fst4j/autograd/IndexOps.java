package fst4j.autograd;

import fst4j.tensor.Device;
import fst4j.tensor.Reduce;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

import java.util.Arrays;

/**
 * Indexing with int[] indices (there is no integer dtype: indices travel as int[] plus a shape, as NN.embedding's):
 * index_select and gather (IndexMap, CPU or CUDA), masked_fill (a where, any device), argmax / argmin (int[]) and min.
 */
final class IndexOps {
    private IndexOps() {}

    /** torch.index_select(axis, idx): the slices at idx along axis, in that order; each index in [0, size). */
    static Var indexSelect(Var x, int axis, int[] idx) {
        int[] s = x.shape();
        if (s.length == 0) throw new IllegalArgumentException("indexSelect: a scalar has no axis to select from");
        int a = Shape.axis(axis, s.length);
        for (int i = 0; i < idx.length; i++)
            if (idx[i] < 0 || idx[i] >= s[a])
                throw new IndexOutOfBoundsException("indexSelect: index " + idx[i] + " (at " + i + ") out of range for axis " + a + " of size " + s[a]
                        + " (shape " + Shape.str(s) + ")");
        int[] out = s.clone();
        out[a] = idx.length;
        long inner = 1;
        for (int d = a + 1; d < s.length; d++) inner *= s[d];
        long outer = Shape.numel(out) == 0 ? 0 : Shape.numel(out) / ((long) idx.length * inner);
        int[] src = new int[Math.toIntExact(Shape.numel(out))];
        int at = 0;
        for (long o = 0; o < outer; o++)
            for (int k : idx)
                for (long j = 0; j < inner; j++) src[at++] = (int) ((o * s[a] + k) * inner + j);
        return new IndexMap("IndexSelect", src, out).apply(x);
    }

    /**
     * torch.gather(axis, index): out[i][j][k] = x[index[i][j][k]][j][k] (axis 0), index given flat (row-major) with its
     * shape, of x's rank and no larger than x on the other axes (torch 1.13's rule); the output has index's shape.
     */
    static Var gather(Var x, int axis, int[] index, int[] indexShape) {
        int[] s = x.shape();
        if (s.length == 0) throw new IllegalArgumentException("gather: a scalar has no axis to gather from");
        int a = Shape.axis(axis, s.length);
        if (indexShape.length != s.length)
            throw new IllegalArgumentException("gather: index shape " + Shape.str(indexShape) + " must have the input's rank " + s.length + " (input " + Shape.str(s) + ")");
        for (int d = 0; d < s.length; d++) {
            if (indexShape[d] < 0) throw new IllegalArgumentException("gather: negative size in index shape " + Shape.str(indexShape));
            if (d != a && indexShape[d] > s[d])
                throw new IllegalArgumentException("gather: index shape " + Shape.str(indexShape) + " is larger than input " + Shape.str(s) + " on axis " + d);
        }
        if (index.length != Shape.numel(indexShape))
            throw new IllegalArgumentException("gather: " + index.length + " indices for index shape " + Shape.str(indexShape));
        long[] st = Shape.contiguousStrides(s);
        int[] idx = new int[s.length];
        int[] src = new int[index.length];
        for (int i = 0; i < index.length; i++) {
            int k = index[i];
            if (k < 0 || k >= s[a])
                throw new IndexOutOfBoundsException("gather: index " + k + " (at " + i + ") out of range for axis " + a + " of size " + s[a] + " (shape " + Shape.str(s) + ")");
            long o = 0;
            for (int d = 0; d < s.length; d++) o += (d == a ? k : idx[d]) * st[d];
            src[i] = (int) o;
            for (int d = s.length - 1; d >= 0; d--) { if (++idx[d] < indexShape[d]) break; idx[d] = 0; }
        }
        return new IndexMap("Gather", src, indexShape.clone()).apply(x);
    }

    /**
     * torch.masked_fill(mask, value): value where mask is non-zero (a 0/1 tensor, as Var.where's condition; NaN counts
     * as true there too), x elsewhere; mask broadcasts to x's shape, and the filled places get no gradient.
     */
    static Var maskedFill(Var x, Tensor mask, double value) {
        int[] s = x.shape();
        int[] b;
        try {
            b = Shape.broadcast(mask.shape(), s);
        } catch (IllegalArgumentException e) {
            b = null;
        }
        if (b == null || !Arrays.equals(b, s))
            throw new IllegalArgumentException("maskedFill: mask " + Shape.str(mask.shape()) + " does not broadcast to the input's shape " + Shape.str(s));
        Tensor v = x.value();
        if (mask.device() != v.device())
            throw new IllegalArgumentException("maskedFill: mask on " + mask.device() + ", input on " + v.device());
        Var fill = Var.of(Tensor.empty(v.device(), v.dtype()).fill(value));
        return Var.where(mask, fill, x);
    }

    /** torch.argmax(axis, keepdim): the first index of the largest (NaN counts as largest), as int[] in the result's row-major order. */
    static int[] argmax(Var x, int axis, boolean keepDim) { return toInts(Reduce.argmax(x.value(), axis, keepDim)); }

    /** torch.argmin: argmax of -x (the first smallest; NaN still wins, as torch's). */
    static int[] argmin(Var x, int axis, boolean keepDim) {
        int[] s = x.shape();
        if (s.length > 0 && s[fst4j.tensor.Shape.axis(axis, s.length)] == 0)   // named as argmin, not the argmax it runs
            throw new IllegalArgumentException("argmin over an empty axis (axis " + axis + " of " + fst4j.tensor.Shape.str(s) + ")");
        try (Tensor n = x.value().neg()) { return toInts(Reduce.argmax(n, axis, keepDim)); }
    }

    private static int[] toInts(Tensor t) {
        try (t; Tensor h = t.device() == Device.CPU ? t.alias() : t.to(Device.CPU)) {
            double[] v = h.toDoubleArray();
            int[] out = new int[v.length];
            for (int i = 0; i < v.length; i++) out[i] = (int) v[i];
            return out;
        }
    }
}
