package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * torch.nn.Embedding(num, dim, padding_idx): parameter "weight" [num, dim] drawn N(0, 1) with the padding row zeroed, as
 * torch's init. {@link #forward(int[], int...)} takes the indices as an int[] with a shape; {@link #forward(Var)} takes
 * them as a tensor of integral values (tensors are floating point here), refusing any other value by position.
 */
public final class Embedding extends Module {
    public final int num, dim;
    private final Integer paddingIdx;
    private final Var weight;

    public Embedding(int num, int dim, Rng rng) { this(num, dim, null, rng); }

    /** paddingIdx null for none; a negative one counts from the end, as torch's. */
    public Embedding(int num, int dim, Integer paddingIdx, Rng rng) {
        if (num <= 0 || dim <= 0) throw new IllegalArgumentException("Embedding needs positive sizes, got " + num + " x " + dim);
        if (paddingIdx != null && (paddingIdx < -num || paddingIdx >= num))
            throw new IllegalArgumentException("Embedding: padding_idx " + paddingIdx + " out of range [" + -num + ", " + num + ") for " + num + " embeddings");
        this.num = num;
        this.dim = dim;
        this.paddingIdx = paddingIdx == null ? null : paddingIdx < 0 ? paddingIdx + num : paddingIdx;
        Tensor w = rng.normal(0, 1, num, dim);
        if (this.paddingIdx != null) try (Tensor row = w.slice(0, this.paddingIdx, this.paddingIdx + 1)) { row.fill(0); }
        this.weight = parameter("weight", w);
    }

    public Var weight() { return weight; }
    public Integer paddingIdx() { return paddingIdx; }

    /** The rows at indices (shape their shape): [*shape, dim]. */
    public Var forward(int[] indices, int... shape) { return NN.embedding(weight, indices, shape, paddingIdx); }

    /** The rows at x's values, which must be integers: [*x.shape, dim]. */
    @Override public Var forward(Var x) { return forward(indices(x.value()), x.shape()); }

    /** A tensor's values as indices; a value that is not an integer (NaN, 2.5, beyond int) is refused by position. */
    static int[] indices(Tensor t) {
        double[] v = t.toDoubleArray();
        int[] out = new int[v.length];
        for (int i = 0; i < v.length; i++) {
            if (v[i] != Math.rint(v[i]) || Math.abs(v[i]) > Integer.MAX_VALUE)
                throw new IllegalArgumentException("indices must be integers: value " + v[i] + " at flat position " + i + " of " + Shape.str(t.shape()));
            out[i] = (int) v[i];
        }
        return out;
    }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public Embedding train(boolean on) { super.train(on); return this; }
    @Override public Embedding train() { return train(true); }
    @Override public Embedding eval() { return train(false); }
    @Override public Embedding to(fst4j.tensor.Device d) { super.to(d); return this; }
}
