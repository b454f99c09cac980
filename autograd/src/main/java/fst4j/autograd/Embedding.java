package fst4j.autograd;

import fst4j.tensor.Rows;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * F.embedding(indices, weight, padding_idx): the rows of weight [V, D] at integer indices, out [*shape, D]. Indices are
 * an int[] with a shape, as {@link NN#crossEntropy} takes its labels (tensors here are floating point only). The weight's
 * gradient is the output's scattered back into the rows: a repeated index adds its rows, the padding row gets none (its
 * value is still looked up, as torch's). Both through {@link Rows}: CPU float32 / float64, CUDA float32 by its gather and
 * scatter kernels (sums in double in position order on either device: the same bits).
 */
final class Embedding extends Function {
    private final int[] indices, shape;
    private final int padding;   // normalized to [0, V), or -1 for none
    private int rows;

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
        try (Tensor y = Rows.gather(w, indices)) { return y.reshape(outShape(w.size(1))); }
    }

    protected Tensor[] backward(Tensor g) {
        try (Tensor g2 = g.reshape(indices.length, g.size(-1))) { return grads(Rows.scatterAdd(g2, indices, rows, padding)); }
    }
}
