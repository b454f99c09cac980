package fst4j.autograd;

import fst4j.autograd.Profile.Part;
import fst4j.tensor.DepthwiseConv;
import fst4j.tensor.Tensor;

/**
 * A depthwise convolution (groups == Cin, weight [Cin * mult, 1, kh, kw], any stride, padding and dilation) of a DENSE
 * layer on the CPU, with its bias: {@link DepthwiseConv}'s direct loops in place of {@link GeneralConv2d}'s per-channel
 * GEMMs of one output row (forward, dX, dW and dBias; Eq. 1, 2 and 3 in the profile). Only a dense layer takes it: under
 * a sparse preset the layer's Eq. 1-3 products are what the preset defines (S(W) with 2 + 2 + 1 of a 3x3 group's 9
 * weights kept, S(W^T), the masked or shifted dY and X^T, stateful rules), and those stay on the general path, whose
 * node applies them; a dense node would compute the same products as these loops, so here they are only faster.
 */
final class DepthwiseConv2d extends Function {
    private final ConvParams p;
    private Tensor x, w;
    private boolean hasBias;

    DepthwiseConv2d(ConvParams p) { this.p = p; }

    /**
     * Whether a layer of node's configuration with x [N, Cin, H, W] and w takes this path: dense, on the CPU, float32 or
     * float64, depthwise (groups == Cin, w [Cin * mult, 1, kh, kw]).
     */
    static boolean takes(Gemm3 node, Tensor x, Tensor w, ConvParams p) {
        return node.config().isDense() && x.device() == fst4j.tensor.Device.CPU && w.device() == fst4j.tensor.Device.CPU
                && x.dtype() == w.dtype() && DepthwiseConv.isDepthwise(x.shape(), w.shape(), p.groups());
    }

    @Override protected boolean profilesItself() { return true; }

    @Override protected String profileLabel(Tensor... in) {
        if (in.length < 2 || in[0].dim() != 4 || in[1].dim() != 4) return super.profileLabel(in);
        return "Conv2d " + in[0].size(1) + "->" + in[1].size(0) + " k" + in[1].size(2) + "x" + in[1].size(3) + " s" + p.sh() + "x" + p.sw()
                + (p.dh() != 1 || p.dw() != 1 ? " d" + p.dh() + "x" + p.dw() : "") + " depthwise @" + in[0].size(2) + "x" + in[0].size(3);
    }

    protected Tensor forward(Tensor... in) {
        Tensor xin = in[0], win = in[1], b = in.length > 2 ? in[2] : null;
        hasBias = b != null;
        p.check(xin.shape(), win.shape());
        x = save(xin);
        w = save(win);
        long t = Profile.start();
        return Profile.stop(Part.EQ1, t, DepthwiseConv.forward(xin, win, b, p.sh(), p.sw(), p.ph(), p.pw(), p.dh(), p.dw()));
    }

    protected Tensor[] backward(Tensor g) {
        Tensor dx = null;
        boolean bias = hasBias && needsGrad(2);
        try {
            if (needsGrad(0)) {
                long t = Profile.start();
                dx = DepthwiseConv.inputGrad(g, w, x.shape(), p.sh(), p.sw(), p.ph(), p.pw(), p.dh(), p.dw());
                Profile.stop(Part.EQ2, t);
            }
            Tensor[] wb = {null, null};
            if (needsGrad(1) || bias) {
                long t = Profile.start();
                Tensor[] made = DepthwiseConv.weightGrad(x, g, w.size(2), w.size(3), p.sh(), p.sw(), p.ph(), p.pw(), p.dh(), p.dw(), needsGrad(1), bias);
                Profile.stop(Part.EQ3, t, () -> { for (Tensor m : made) if (m != null) m.close(); });   // a failed stop frees them
                wb = made;
            }
            return hasBias ? grads(dx, wb[0], wb[1]) : grads(dx, wb[0]);
        } catch (RuntimeException | Error e) {
            if (dx != null) dx.close();
            throw e;
        }
    }

    @Override public String toString() { return "DepthwiseConv2d[" + p + "]"; }
}
