package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.tensor.Tensor;

/**
 * Layer norm over the last axes, as torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True): with the
 * affine transform its parameters are "weight" (ones) and "bias" (zeros) of normalizedShape; no running statistics, the
 * same in training and eval. {@link NN#layerNorm}: CPU and CUDA (moved with {@code to(Device.CUDA)}, the same formula).
 */
public final class LayerNorm extends Module {
    private final int[] normalizedShape;
    private final double eps;
    private final Var weight, bias;

    public LayerNorm(int... normalizedShape) { this(normalizedShape, 1e-5, true); }

    public LayerNorm(int[] normalizedShape, double eps, boolean elementwiseAffine) {
        if (normalizedShape.length == 0) throw new IllegalArgumentException("LayerNorm needs a normalized shape (its last axes), got none");
        for (int d : normalizedShape)
            if (d <= 0) throw new IllegalArgumentException("LayerNorm needs positive sizes, got " + java.util.Arrays.toString(normalizedShape));
        if (!(eps >= 0) || Double.isInfinite(eps)) throw new IllegalArgumentException("LayerNorm: eps must be finite and >= 0, got " + eps);
        this.normalizedShape = normalizedShape.clone();
        this.eps = eps;
        this.weight = elementwiseAffine ? parameter("weight", Tensor.ones(normalizedShape)) : null;
        this.bias = elementwiseAffine ? parameter("bias", Tensor.zeros(normalizedShape)) : null;
    }

    public int[] normalizedShape() { return normalizedShape.clone(); }

    @Override
    public Var forward(Var x) { return NN.layerNorm(x, normalizedShape, weight, bias, eps); }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public LayerNorm train(boolean on) { super.train(on); return this; }
    @Override public LayerNorm train() { return train(true); }
    @Override public LayerNorm eval() { return train(false); }
    @Override public LayerNorm to(fst4j.tensor.Device d) { super.to(d); return this; }
}
