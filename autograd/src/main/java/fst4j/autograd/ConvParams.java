package fst4j.autograd;

import fst4j.tensor.Shape;

/**
 * A convolution's stride, padding, dilation (each per axis: height, width) and groups, as torch.nn.functional.conv2d
 * takes them; the kernel size comes from the weight [Cout, Cin / groups, kh, kw]. {@link #plain()} geometries (one
 * stride, one padding, no dilation, one group) take {@link Layers}' fast paths exactly as before; every other one the
 * general path ({@link GeneralConv2d}).
 */
public record ConvParams(int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    public ConvParams {
        if (sh <= 0 || sw <= 0) throw new IllegalArgumentException("conv2d: stride must be positive, got " + sh + "x" + sw);
        if (ph < 0 || pw < 0) throw new IllegalArgumentException("conv2d: padding must be >= 0, got " + ph + "x" + pw);
        if (dh <= 0 || dw <= 0) throw new IllegalArgumentException("conv2d: dilation must be positive, got " + dh + "x" + dw);
        if (groups <= 0) throw new IllegalArgumentException("conv2d: groups must be positive, got " + groups);
    }

    /** One stride and one padding for both axes, no dilation, one group: the square convolutions of the ResNets. */
    public static ConvParams of(int stride, int padding) { return new ConvParams(stride, stride, padding, padding, 1, 1, 1); }

    /** One stride, padding and dilation for both axes, and groups. */
    public static ConvParams of(int stride, int padding, int dilation, int groups) {
        return new ConvParams(stride, stride, padding, padding, dilation, dilation, groups);
    }

    /** Per-axis stride, padding and dilation ({height, width} each), and groups. */
    public static ConvParams of(int[] stride, int[] padding, int[] dilation, int groups) {
        return new ConvParams(pair("stride", stride)[0], pair("stride", stride)[1], pair("padding", padding)[0], pair("padding", padding)[1],
                pair("dilation", dilation)[0], pair("dilation", dilation)[1], groups);
    }

    private static int[] pair(String what, int[] v) {
        if (v == null || v.length != 2)
            throw new IllegalArgumentException("conv2d: " + what + " needs two values {height, width}, got " + (v == null ? "null" : java.util.Arrays.toString(v)));
        return v;
    }

    /** Whether this is one stride and one padding for both axes with no dilation and one group (the fast paths' geometry). */
    public boolean plain() { return sh == sw && ph == pw && dh == 1 && dw == 1 && groups == 1; }

    /**
     * Checks x [N, Cin, H, W] and w [Cout, Cin / groups, kh, kw] against this geometry: ranks, channels divisible by
     * groups, the weight's input channels, and the dilated kernel fitting the padded input. Throws
     * IllegalArgumentException naming the problem.
     */
    void check(int[] x, int[] w) {
        if (x.length != 4 || w.length != 4)
            throw new IllegalArgumentException("wrong rank: conv2d needs x [N, C, H, W] and w [Cout, Cin/groups, kh, kw], got " + Shape.str(x) + " and " + Shape.str(w));
        int cin = x[1], cout = w[0];
        if (cin % groups != 0)
            throw new IllegalArgumentException("conv2d: input channels " + cin + " (input " + Shape.str(x) + ") not divisible by groups " + groups);
        if (cout % groups != 0)
            throw new IllegalArgumentException("conv2d: output channels " + cout + " (weight " + Shape.str(w) + ") not divisible by groups " + groups);
        if ((long) w[1] * groups != cin)   // in long: 4 x (2^30 + 1) wraps to 4
            throw new IllegalArgumentException("channel mismatch: conv2d input " + Shape.str(x) + " has " + cin + " channels but weight " + Shape.str(w)
                    + " with groups " + groups + " expects " + (long) w[1] * groups + " (weight [Cout, Cin/groups, kh, kw])");
        if (w[2] <= 0 || w[3] <= 0) throw new IllegalArgumentException("conv2d: kernel size must be positive, got weight " + Shape.str(w));
        long ekh = (long) dh * (w[2] - 1) + 1, ekw = (long) dw * (w[3] - 1) + 1;
        long hp = x[2] + 2L * ph, wp = x[3] + 2L * pw;
        if (ekh > hp || ekw > wp)
            throw new IllegalArgumentException("conv2d: kernel " + w[2] + "x" + w[3] + " with dilation " + dh + "x" + dw + " spans " + ekh + "x" + ekw
                    + ", larger than the padded input " + hp + "x" + wp + " (input " + Shape.str(x) + ", padding " + ph + "x" + pw + ")");
    }

    /**
     * A transposed convolution's output padding against this geometry, torch's rule: per axis >= 0 and smaller than that
     * axis's stride or its dilation (it only adds rows the kernel reaches from no extra input). Throws
     * IllegalArgumentException naming it.
     */
    public void checkOutputPadding(int oph, int opw) {
        if (oph < 0 || opw < 0) throw new IllegalArgumentException("convTranspose2d: output padding must be >= 0, got " + oph + "x" + opw);
        if (!(oph < sh || oph < dh) || !(opw < sw || opw < dw))
            throw new IllegalArgumentException("convTranspose2d: output padding " + oph + "x" + opw + " must be smaller than either the stride "
                    + sh + "x" + sw + " or the dilation " + dh + "x" + dw + " on each axis");
    }

    @Override public String toString() {
        return "stride " + sh + "x" + sw + ", padding " + ph + "x" + pw + ", dilation " + dh + "x" + dw + ", groups " + groups;
    }
}
