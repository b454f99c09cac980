package fst4j.nn;

import fst4j.autograd.ConvParams;
import fst4j.autograd.Layers;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;

/**
 * 2-D convolution (NCHW) through the Eq. 1-3 node, as torch.nn.Conv2d: kernel, stride, padding and dilation per axis,
 * groups (weight [Cout, Cin / groups, kh, kw]). Kaiming-normal init (fan_in = Cin / groups * kh * kw, ReLU). A square
 * kernel with one stride and one padding, no dilation and one group takes the fast paths; any other geometry the
 * general one, with each group its own Eq. 1-3 product ({@link Layers#conv2d(fst4j.autograd.Gemm3, Var, Var, Var, ConvParams)}).
 */
public final class Conv2d extends NodeLayer {
    public final int cin, cout;
    private final int kh, kw, sh, sw, ph, pw, dh, dw, groups;
    private final ConvParams params;
    private final Var weight, bias;

    public Conv2d(int cin, int cout, int kernel, int stride, int padding, boolean bias, SparseConfig cfg, Rng rng) {
        this(cin, cout, new int[]{kernel, kernel}, ConvParams.of(stride, padding), bias, cfg, rng);
    }

    /** torch.nn.Conv2d(cin, cout, (kh, kw), stride, padding, dilation, groups, bias) with p's stride, padding, dilation and groups. */
    public Conv2d(int cin, int cout, int[] kernel, ConvParams p, boolean bias, SparseConfig cfg, Rng rng) {
        if (kernel == null || kernel.length != 2)
            throw new IllegalArgumentException("Conv2d: kernel needs two sizes {kh, kw}, got " + (kernel == null ? "null" : java.util.Arrays.toString(kernel)));
        if (cin <= 0 || cout <= 0 || kernel[0] <= 0 || kernel[1] <= 0)
            throw new IllegalArgumentException("Conv2d: bad geometry cin=" + cin + " cout=" + cout + " k=" + kernel[0] + "x" + kernel[1] + " " + p);
        if (cin % p.groups() != 0 || cout % p.groups() != 0)
            throw new IllegalArgumentException("Conv2d: in_channels " + cin + " and out_channels " + cout + " must both be divisible by groups " + p.groups());
        boolean square = kernel[0] == kernel[1] && p.plain();
        // the salt (ReSprop's image draws) of a square layer is what it always was
        super(cfg, square ? (((long) cin * 31 + cout) * 31 + kernel[0]) * 31 + p.sh()
                : java.util.Objects.hash(cin, cout, kernel[0], kernel[1], p.sh(), p.sw(), p.ph(), p.pw(), p.dh(), p.dw(), p.groups()));
        this.cin = cin; this.cout = cout;
        this.kh = kernel[0]; this.kw = kernel[1]; this.sh = p.sh(); this.sw = p.sw(); this.ph = p.ph(); this.pw = p.pw();
        this.dh = p.dh(); this.dw = p.dw(); this.groups = p.groups(); this.params = p;
        this.weight = parameter("weight", rng.kaimingNormal(cout, cin / p.groups(), kh, kw));
        this.bias = bias ? parameter("bias", fst4j.tensor.Tensor.zeros(cout)) : null;
    }

    /**
     * One of torch.nn.Conv2d's per-axis sizes (kernel_size, stride, padding, dilation): the height axis's value, then the
     * width axis's. The layer has no single "kernel" or "stride" number: a 5x3 kernel or a 2x1 stride has two.
     */
    public record Pair(int h, int w) {
        /** Whether both axes have the same value. */
        public boolean square() { return h == w; }
        @Override public String toString() { return h + "x" + w; }
    }

    /** The kernel's height and width (kh, kw), as torch's kernel_size. */
    public Pair kernelSize() { return new Pair(kh, kw); }
    /** Stride per axis (sh, sw). */
    public Pair stride() { return new Pair(sh, sw); }
    /** Zero padding per axis (ph, pw). */
    public Pair padding() { return new Pair(ph, pw); }
    /** Dilation per axis (dh, dw). */
    public Pair dilation() { return new Pair(dh, dw); }
    /** Groups: input channels [g Cin/G, (g+1) Cin/G) meet output channels [g Cout/G, (g+1) Cout/G). */
    public int groups() { return groups; }

    /** Stride, padding, dilation and groups, as the autograd layer takes them. */
    public ConvParams params() { return params; }

    /** Whether this is the built-in models' kind of layer: a square kernel, one stride and one padding, no dilation, one group. */
    public boolean plain() { return kh == kw && params.plain(); }

    /**
     * Analysis hook (used by fst4j.nn.analysis.FeatureRecorder): when set on the current thread, it is called with
     * this layer and its input tensor before every forward. The tensor belongs to the caller's scope, so a listener
     * that keeps it must copy it (e.g. {@code toFloatArray()}). Off (null) by default: one ThreadLocal read per call.
     */
    public static final ThreadLocal<java.util.function.BiConsumer<Conv2d, fst4j.tensor.Tensor>> INPUT_HOOK = new ThreadLocal<>();

    public Var weight() { return weight; }

    @Override protected String extraRepr() {
        return cin + ", " + cout + ", kernel_size=" + kh + "x" + kw + ", stride=" + (sh == sw ? sh : sh + "x" + sw) + ", padding="
                + (ph == pw ? ph : ph + "x" + pw) + (dh != 1 || dw != 1 ? ", dilation=" + dh + "x" + dw : "") + (groups != 1 ? ", groups=" + groups : "")
                + ", bias=" + (bias != null) + ", sparsity=" + sparsity().name();
    }

    @Override
    public Var forward(Var x) {
        var hook = INPUT_HOOK.get();
        if (hook != null) hook.accept(this, x.value());
        ReSprop resprop = resprop();
        if (resprop == null) return conv(x, bias);
        return resprop.around(conv(x, null), bias == null ? null : bias.reshape(1, cout, 1, 1));
    }

    private Var conv(Var x, Var b) {
        if (plain()) return Layers.conv2d(node(), x, weight, b, sh, ph);
        return Layers.conv2d(node(), x, weight, b, params);
    }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public Conv2d train(boolean on) { super.train(on); return this; }
    @Override public Conv2d train() { return train(true); }
    @Override public Conv2d eval() { return train(false); }
    @Override public Conv2d to(fst4j.tensor.Device d) { super.to(d); return this; }
}
