package fst4j.autograd;

import fst4j.tensor.FlatIndex;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * out[i] = x[src[i]] over row-major flat indices, out of the given shape: flip, index_select and gather are this map
 * with different src. backward scatters the gradient back, adding where an input element was read more than once (a
 * repeated index), as torch's index_add does. Both are {@link FlatIndex}'s, on the CPU (in double) or on CUDA (float32,
 * the same bits).
 */
final class IndexMap extends Function {
    private final String name;
    private final int[] src, outShape;
    private int[] inShape;

    IndexMap(String name, int[] src, int[] outShape) {
        if (src.length != Shape.numel(outShape)) throw new IllegalArgumentException(name + ": " + src.length + " indices for output " + Shape.str(outShape));
        this.name = name; this.src = src; this.outShape = outShape;
    }

    @Override public String name() { return name; }

    protected Tensor forward(Tensor... x) {
        inShape = x[0].shape();
        return FlatIndex.gather(name, x[0], src, outShape);
    }

    protected Tensor[] backward(Tensor g) {
        return grads(FlatIndex.scatterAdd(name + " backward", g, src, inShape));
    }
}
