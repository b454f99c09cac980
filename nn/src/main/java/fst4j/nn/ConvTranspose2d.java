package fst4j.nn;

import fst4j.autograd.ConvParams;
import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;

/**
 * torch.nn.ConvTranspose2d(cin, cout, (kh, kw), stride, padding, output_padding, groups, bias, dilation): weight
 * [Cin, Cout / groups, kh, kw] (torch's layout), bias [Cout]. torch's default init: kaiming_uniform(a = sqrt(5)) of the
 * weight, uniform in +-1 / sqrt(fan_in), with fan_in as torch computes it from this layout (the weight's second axis
 * times the kernel: Cout / groups * kh * kw), and the bias in the same bound. Dense (no sparsity configuration): see
 * {@link NN#convTranspose2d(Var, Var, Var, ConvParams, int, int)}.
 */
public final class ConvTranspose2d extends Module {
    public final int cin, cout;
    private final int kh, kw, oph, opw;
    private final ConvParams params;
    private final Var weight, bias;

    /** Square kernel, one stride, padding and output padding for both axes, no dilation, one group. */
    public ConvTranspose2d(int cin, int cout, int kernel, int stride, int padding, int outputPadding, boolean bias, Rng rng) {
        this(cin, cout, new int[]{kernel, kernel}, ConvParams.of(stride, padding), new int[]{outputPadding, outputPadding}, bias, rng);
    }

    /** Per-axis kernel {kh, kw} and output padding {oph, opw}; p's stride, padding, dilation and groups. */
    public ConvTranspose2d(int cin, int cout, int[] kernel, ConvParams p, int[] outputPadding, boolean bias, Rng rng) {
        if (kernel == null || kernel.length != 2)
            throw new IllegalArgumentException("ConvTranspose2d: kernel needs two sizes {kh, kw}, got " + (kernel == null ? "null" : java.util.Arrays.toString(kernel)));
        if (outputPadding == null || outputPadding.length != 2)
            throw new IllegalArgumentException("ConvTranspose2d: output padding needs two sizes {oph, opw}, got "
                    + (outputPadding == null ? "null" : java.util.Arrays.toString(outputPadding)));
        if (cin <= 0 || cout <= 0 || kernel[0] <= 0 || kernel[1] <= 0)
            throw new IllegalArgumentException("ConvTranspose2d: bad geometry cin=" + cin + " cout=" + cout + " k=" + kernel[0] + "x" + kernel[1] + " " + p);
        if (cin % p.groups() != 0 || cout % p.groups() != 0)
            throw new IllegalArgumentException("ConvTranspose2d: in_channels " + cin + " and out_channels " + cout + " must both be divisible by groups " + p.groups());
        p.checkOutputPadding(outputPadding[0], outputPadding[1]);
        this.cin = cin; this.cout = cout; this.kh = kernel[0]; this.kw = kernel[1];
        this.oph = outputPadding[0]; this.opw = outputPadding[1]; this.params = p;
        double bound = 1 / Math.sqrt((double) cout / p.groups() * kh * kw);
        this.weight = parameter("weight", rng.uniform(-bound, bound, cin, cout / p.groups(), kh, kw));
        this.bias = bias ? parameter("bias", rng.uniform(-bound, bound, cout)) : null;
    }

    public Var weight() { return weight; }
    /** Stride, padding, dilation and groups. */
    public ConvParams params() { return params; }
    /** Output padding {height, width}. */
    public int[] outputPadding() { return new int[]{oph, opw}; }
    /** The kernel {kh, kw}. */
    public int[] kernelSize() { return new int[]{kh, kw}; }

    @Override public Var forward(Var x) { return NN.convTranspose2d(x, weight, bias, params, oph, opw); }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public ConvTranspose2d train(boolean on) { super.train(on); return this; }
    @Override public ConvTranspose2d train() { return train(true); }
    @Override public ConvTranspose2d eval() { return train(false); }
    @Override public ConvTranspose2d to(fst4j.tensor.Device d) { super.to(d); return this; }
}
