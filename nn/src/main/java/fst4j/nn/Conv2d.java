package fst4j.nn;

import fst4j.autograd.Gemm3;
import fst4j.autograd.Layers;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;

/** 2-D convolution (NCHW, square kernel) through the Eq. 1-3 node. Kaiming-normal init (fan_in, ReLU). */
public final class Conv2d extends Module implements Sparse {
    public final int cin, cout, kernel, stride, padding;
    private final Var weight, bias;
    private Gemm3 node;
    private ReSprop resprop;   // the ReSprop preset's per-layer state, else null

    public Conv2d(int cin, int cout, int kernel, int stride, int padding, boolean bias, SparseConfig cfg, Rng rng) {
        if (cin <= 0 || cout <= 0 || kernel <= 0 || stride <= 0 || padding < 0)
            throw new IllegalArgumentException("Conv2d: bad geometry cin=" + cin + " cout=" + cout + " k=" + kernel + " stride=" + stride + " padding=" + padding);
        this.cin = cin; this.cout = cout; this.kernel = kernel; this.stride = stride; this.padding = padding;
        this.weight = parameter("weight", rng.kaimingNormal(cout, cin, kernel, kernel));
        this.bias = bias ? parameter("bias", fst4j.tensor.Tensor.zeros(cout)) : null;
        this.node = new Gemm3(cfg);
        this.resprop = reSpropFor(cfg);
    }

    /** A ReSprop state for a layer of that preset (kept across {@link #setSparsity} to the same preset), else null. */
    private ReSprop reSpropFor(SparseConfig cfg) {
        return ReSprop.forConfig(resprop, cfg, (((long) cin * 31 + cout) * 31 + kernel) * 31 + stride);
    }

    /** This layer's ReSprop state where its configuration is the ReSprop preset's, else null. */
    public ReSprop resprop() { return resprop; }

    /**
     * Analysis hook (used by fst4j.nn.analysis.FeatureRecorder): when set on the current thread, it is called with
     * this layer and its input tensor before every forward. The tensor belongs to the caller's scope, so a listener
     * that keeps it must copy it (e.g. {@code toFloatArray()}). Off (null) by default: one ThreadLocal read per call.
     */
    public static final ThreadLocal<java.util.function.BiConsumer<Conv2d, fst4j.tensor.Tensor>> INPUT_HOOK = new ThreadLocal<>();

    public Var weight() { return weight; }

    @Override public SparseConfig sparsity() { return node.config(); }
    @Override public void setSparsity(SparseConfig cfg) { Sparse.release(node.config(), cfg); node = new Gemm3(cfg); resprop = reSpropFor(cfg); }

    @Override
    public Var forward(Var x) {
        var hook = INPUT_HOOK.get();
        if (hook != null) hook.accept(this, x.value());
        if (resprop == null) return Layers.conv2d(node, x, weight, bias, stride, padding);
        return resprop.around(Layers.conv2d(node, x, weight, null, stride, padding), bias == null ? null : bias.reshape(1, cout, 1, 1));
    }

    @Override public void close() {
        Sparse.release(node.config(), null);
        super.close();
    }

    /** Moves the parameters; tensors a sparsifier cached on the old device (ASP's mask) are freed, rebuilt where used next. */
    @Override public Module to(fst4j.tensor.Device d) {
        Sparse.release(node.config(), null);
        return super.to(d);
    }
}
