package fst4j.nn;

import fst4j.autograd.Layers;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;

/** 2-D convolution (NCHW, square kernel) through the Eq. 1-3 node. Kaiming-normal init (fan_in, ReLU). */
public final class Conv2d extends NodeLayer {
    public final int cin, cout, kernel, stride, padding;
    private final Var weight, bias;

    public Conv2d(int cin, int cout, int kernel, int stride, int padding, boolean bias, SparseConfig cfg, Rng rng) {
        if (cin <= 0 || cout <= 0 || kernel <= 0 || stride <= 0 || padding < 0)
            throw new IllegalArgumentException("Conv2d: bad geometry cin=" + cin + " cout=" + cout + " k=" + kernel + " stride=" + stride + " padding=" + padding);
        super(cfg, (((long) cin * 31 + cout) * 31 + kernel) * 31 + stride);
        this.cin = cin; this.cout = cout; this.kernel = kernel; this.stride = stride; this.padding = padding;
        this.weight = parameter("weight", rng.kaimingNormal(cout, cin, kernel, kernel));
        this.bias = bias ? parameter("bias", fst4j.tensor.Tensor.zeros(cout)) : null;
    }

    /**
     * Analysis hook (used by fst4j.nn.analysis.FeatureRecorder): when set on the current thread, it is called with
     * this layer and its input tensor before every forward. The tensor belongs to the caller's scope, so a listener
     * that keeps it must copy it (e.g. {@code toFloatArray()}). Off (null) by default: one ThreadLocal read per call.
     */
    public static final ThreadLocal<java.util.function.BiConsumer<Conv2d, fst4j.tensor.Tensor>> INPUT_HOOK = new ThreadLocal<>();

    public Var weight() { return weight; }

    @Override
    public Var forward(Var x) {
        var hook = INPUT_HOOK.get();
        if (hook != null) hook.accept(this, x.value());
        ReSprop resprop = resprop();
        if (resprop == null) return Layers.conv2d(node(), x, weight, bias, stride, padding);
        return resprop.around(Layers.conv2d(node(), x, weight, null, stride, padding), bias == null ? null : bias.reshape(1, cout, 1, 1));
    }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public Conv2d train(boolean on) { super.train(on); return this; }
    @Override public Conv2d train() { return train(true); }
    @Override public Conv2d eval() { return train(false); }
    @Override public Conv2d to(fst4j.tensor.Device d) { super.to(d); return this; }
}
