package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * F.embedding(indices, weight, padding_idx): the rows of weight [V, D] at integer indices, out [*shape, D]. Indices are
 * an int[] with a shape, as {@link NN#crossEntropy} takes its labels (tensors here are floating point only). The weight's
 * gradient is the output's scattered back into the rows: a repeated index adds its rows, the padding row gets none (its
 * value is still looked up, as torch's). CPU: a gather and a scatter over the rows. CUDA: the product of a one-hot
 * [N, V] matrix (built on the host) with W on the device's GEMM, and its transpose for the gradient, so the same
 * values (an exact 1 times the row; but a non-finite value anywhere in W poisons every row through 0 * inf) at N*V*D
 * multiply-adds: meant for small vocabularies.
 */
final class Embedding extends Function {
    private final int[] indices, shape;
    private final int padding;   // normalized to [0, V), or -1 for none
    private int rows;
    private Tensor onehot;       // CUDA only: the padding-free one-hot for the gradient

    Embedding(int[] indices, int[] shape, int padding) { this.indices = indices.clone(); this.shape = shape.clone(); this.padding = padding; }

    /** Checks indices against weight [V, D] and the shape; returns padding normalized (torch's negative form allowed), -1 for none. */
    static int check(Tensor w, int[] indices, int[] shape, Integer paddingIdx) {
        if (w.dim() != 2) throw new IllegalArgumentException("wrong rank: embedding needs a weight [numEmbeddings, dim], got " + Shape.str(w.shape()));
        if (indices == null || shape == null) throw new IllegalArgumentException("embedding: indices and their shape must not be null");
        for (int d : shape) if (d < 0) throw new IllegalArgumentException("embedding: negative size in the indices' shape " + Shape.str(shape));
        long n = Shape.numel(shape);
        if (n != indices.length)
            throw new IllegalArgumentException("shape mismatch: " + indices.length + " embedding indices for the shape " + Shape.str(shape) + " (" + n + " elements)");
        int v = w.size(0);
        int pad = -1;
        if (paddingIdx != null) {
            int p = paddingIdx;
            if (p < -v || p >= v) throw new IllegalArgumentException("embedding: padding_idx " + p + " out of range [" + -v + ", " + v + ") for " + v + " embeddings");
            pad = p < 0 ? p + v : p;
        }
        for (int i = 0; i < indices.length; i++)
            if (indices[i] < 0 || indices[i] >= v)
                throw new IllegalArgumentException("embedding index " + indices[i] + " at position " + i + " out of range [0, " + v + ") for weight " + Shape.str(w.shape()));
        return pad;
    }

    private int[] outShape(int d) { int[] o = java.util.Arrays.copyOf(shape, shape.length + 1); o[shape.length] = d; return o; }

    protected Tensor forward(Tensor... in) {
        Tensor w = in[0];
        rows = w.size(0);
        int d = w.size(1), n = indices.length;
        if (w.device() != Device.CPU) {
            try (Tensor oh = oneHot(w.dtype(), w.device(), -1); Tensor y = oh.matmul(w)) {
                if (needsGrad(0)) try (Tensor g = oneHot(w.dtype(), w.device(), padding)) { onehot = save(g); }
                return y.reshape(outShape(d));
            }
        }
        try (Tensor wc = w.contiguous()) {
            if (w.dtype() == DType.F64) {
                double[] src = wc.toDoubleArray(), dst = new double[Math.multiplyExact(n, d)];
                for (int i = 0; i < n; i++) System.arraycopy(src, indices[i] * d, dst, i * d, d);
                return Tensor.of(dst, outShape(d));
            }
            float[] src = wc.toFloatArray(), dst = new float[Math.multiplyExact(n, d)];
            for (int i = 0; i < n; i++) System.arraycopy(src, indices[i] * d, dst, i * d, d);
            return Tensor.of(dst, outShape(d));
        }
    }

    protected Tensor[] backward(Tensor g) {
        int n = indices.length, d = g.size(-1);
        if (g.device() != Device.CPU) {
            try (Tensor g2 = g.reshape(n, d); Tensor oht = onehot.transpose(0, 1)) { return grads(oht.matmul(g2)); }
        }
        // accumulated in double either way: repeated indices add in a fixed order, float32 rounding once at the end
        double[] acc = new double[Math.multiplyExact(rows, d)];
        try (Tensor gc = g.contiguous()) {
            double[] src = gc.toDoubleArray();
            for (int i = 0; i < n; i++) {
                if (indices[i] == padding) continue;
                int at = indices[i] * d;
                for (int j = 0; j < d; j++) acc[at + j] += src[i * d + j];
            }
        }
        try (Tensor t = Tensor.of(acc, rows, d)) { return grads(t.to(g.dtype())); }
    }

    /** [N, V] with a 1 at (i, indices[i]), none in the rows whose index is skip. */
    private Tensor oneHot(DType dtype, Device device, int skip) {
        try (Tensor host = Tensor.zeros(dtype, indices.length, rows)) {
            for (int i = 0; i < indices.length; i++) if (indices[i] != skip) host.set(1, i, indices[i]);
            return host.to(device);
        }
    }
}
