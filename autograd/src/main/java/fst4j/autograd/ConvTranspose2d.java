package fst4j.autograd;

import fst4j.tensor.Blas;
import fst4j.tensor.Conv;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * torch's F.conv_transpose2d: x [N, Cin, H, W], w [Cin, Cout / groups, kh, kw], per-axis stride, padding, dilation and
 * output padding, groups; y [N, Cout, Ho, Wo] with Ho = (H - 1) sh - 2 ph + dh (kh - 1) + oph + 1 (W likewise).
 * <p>
 * Computed as frameworks do, as the input gradient of the convolution it transposes (the convolution of a
 * [N, Cout, Ho, Wo] input by w read as [Cin, Cout / groups, kh, kw], whose output is x's H x W): per group g,
 * columns = W_g^T X_g ([Cout/G kh kw, N H W], one GEMM) summed back into the image by col2im. Its gradients are that
 * convolution's forward and weight gradient: dX_g = W_g im2col(dY_g), dW_g = X_g im2col(dY_g)^T.
 * <p>
 * Output padding only adds rows and columns at the bottom and right that the kernel reaches from no extra input; where it
 * is at least the stride (allowed when below the dilation, as torch allows), the convolution read back from Ho has
 * H + floor(oph / sh) output rows, so x is taken with that many zero rows appended (columns likewise) and its gradient
 * is cut back to H x W.
 * <p>
 * The GEMMs are dense (Blas: the native SGEMM for float32, the Java loop for float64, the CUDA SGEMM for a CUDA
 * float32 tensor), with the shim's (dilated) im2col / col2im on either device: no SparseConfig is taken. The Eq. 1-3
 * node's slots are roles of a convolution's own W, X and dY; a transposed convolution's forward is a convolution's
 * Eq. 2, so sparsifying it would need a node whose Eq. 1 is Eq. 2 and whose W slot masks along the other axis, which
 * is not a clean reuse of the presets.
 */
final class ConvTranspose2d extends Function {
    private final ConvParams p;
    private final int oph, opw;
    private Tensor xm, w;                 // xm: x by channel, [Cin, N * hc * wc], zero-padded to hc x wc
    private int n, h, wd, hc, wc;         // hc x wc: the output size of the convolution this transposes

    ConvTranspose2d(ConvParams p, int oph, int opw) {
        p.checkOutputPadding(oph, opw);
        this.p = p; this.oph = oph; this.opw = opw;
    }

    /**
     * Checks x [N, Cin, H, W] and w [Cin, Cout / groups, kh, kw] against the geometry and returns the output shape
     * [N, Cout, Ho, Wo]; throws IllegalArgumentException naming the problem.
     */
    static int[] outputShape(int[] x, int[] w, ConvParams p, int oph, int opw) {
        if (x.length != 4 || w.length != 4)
            throw new IllegalArgumentException("wrong rank: convTranspose2d needs x [N, Cin, H, W] and w [Cin, Cout/groups, kh, kw], got "
                    + Shape.str(x) + " and " + Shape.str(w));
        int cin = x[1], groups = p.groups();
        if (x[2] <= 0 || x[3] <= 0)
            throw new IllegalArgumentException("convTranspose2d: input height and width must be positive, got input " + Shape.str(x));
        if (cin % groups != 0)
            throw new IllegalArgumentException("convTranspose2d: input channels " + cin + " (input " + Shape.str(x) + ") not divisible by groups " + groups);
        if (w[0] != cin)
            throw new IllegalArgumentException("channel mismatch: convTranspose2d input " + Shape.str(x) + " has " + cin + " channels but weight "
                    + Shape.str(w) + " has " + w[0] + " (weight [Cin, Cout/groups, kh, kw])");
        if (w[2] <= 0 || w[3] <= 0) throw new IllegalArgumentException("convTranspose2d: kernel size must be positive, got weight " + Shape.str(w));
        long ho = (long) (x[2] - 1) * p.sh() - 2L * p.ph() + (long) p.dh() * (w[2] - 1) + oph + 1;
        long wo = (long) (x[3] - 1) * p.sw() - 2L * p.pw() + (long) p.dw() * (w[3] - 1) + opw + 1;
        if (ho <= 0 || wo <= 0)
            throw new IllegalArgumentException("convTranspose2d: output size " + ho + "x" + wo + " is not positive (input " + Shape.str(x) + ", weight "
                    + Shape.str(w) + ", " + p + ", output padding " + oph + "x" + opw + "): the padding is too large");
        long cout = (long) w[1] * groups;
        if (ho > Integer.MAX_VALUE || wo > Integer.MAX_VALUE || cout > Integer.MAX_VALUE)
            throw new IllegalArgumentException("convTranspose2d: output [" + x[0] + ", " + cout + ", " + ho + ", " + wo + "] exceeds 2^31 - 1 per axis");
        return new int[]{x[0], (int) cout, (int) ho, (int) wo};
    }

    @Override public String name() { return "ConvTranspose2d"; }

    protected Tensor forward(Tensor... in) {
        Tensor xin = in[0], win = in[1];
        int[] ys = outputShape(xin.shape(), win.shape(), p, oph, opw);
        if (xin.dtype() != win.dtype())
            throw new IllegalArgumentException("dtype mismatch in convTranspose2d: input " + xin.dtype() + ", weight " + win.dtype());
        if (xin.device() != win.device())
            throw new IllegalArgumentException("device mismatch in convTranspose2d: input on " + xin.device() + ", weight on " + win.device());
        if (xin.device() == Device.CUDA && xin.dtype() != DType.F32)
            throw new UnsupportedOperationException("convTranspose2d on CUDA supports float32 only (its GEMMs are the CUDA SGEMM), got " + xin.dtype());
        int groups = p.groups(), cin = xin.size(1), cinG = cin / groups, coutG = win.size(1), kh = win.size(2), kw = win.size(3);
        n = xin.size(0); h = xin.size(2); wd = xin.size(3);
        // the transposed convolution's output size, as Conv.outSize reads it back from Ho x Wo: H + floor(oph / sh)
        hc = Conv.outSize(ys[2], kh, p.sh(), p.ph(), p.dh());
        wc = Conv.outSize(ys[3], kw, p.sw(), p.pw(), p.dw());
        if (hc < h || wc < wd) throw new IllegalStateException("convTranspose2d: geometry reads back " + hc + "x" + wc + " from input " + h + "x" + wd);
        try (Tensor wcont = win.contiguous()) { w = save(wcont); }
        if (Shape.numel(ys) == 0) return Tensor.zeros(xin.device(), xin.dtype(), ys);
        int l = Math.multiplyExact(hc, wc), cols = Math.multiplyExact(n, l), k = Math.multiplyExact(coutG, Math.multiplyExact(kh, kw));
        try (Tensor xp = padded(xin); Tensor x3 = xp.reshape(n, cin, l); Tensor xt = x3.permute(1, 0, 2); Tensor xc = xt.contiguous();
             Tensor m = xc.reshape(cin, cols)) {
            xm = save(m);
        }
        int[] groupShape = {n, coutG, ys[2], ys[3]};
        Tensor y = groups == 1 ? null : Tensor.empty(xin.device(), xin.dtype(), ys);
        try (Tensor wm = w.reshape(cin, k)) {
            for (int g = 0; g < groups; g++) {
                Tensor yg;
                try (Tensor wg = wm.slice(0, g * cinG, (g + 1) * cinG); Tensor wgt = wg.t(); Tensor xg = xm.slice(0, g * cinG, (g + 1) * cinG);
                     Tensor c = Tensor.empty(xin.device(), xin.dtype(), k, cols)) {
                    Blas.gemm(1f, wgt, xg, 0f, c);
                    yg = Conv.col2im(c, groupShape, kh, kw, p.sh(), p.sw(), p.ph(), p.pw(), p.dh(), p.dw());
                }
                if (y == null) return yg;
                try (yg; Tensor dst = y.slice(1, g * coutG, (g + 1) * coutG)) { dst.copyFrom(yg); }
            }
            return y;
        } catch (RuntimeException | Error e) {
            if (y != null) y.close();
            throw e;
        }
    }

    /** x with zero rows and columns appended up to hc x wc (an alias where none are needed). */
    private Tensor padded(Tensor x) {
        if (hc == h && wc == wd) return x.alias();
        Tensor z = Tensor.zeros(x.device(), x.dtype(), n, x.size(1), hc, wc);
        try (Tensor a = z.slice(2, 0, h); Tensor b = a.slice(3, 0, wd)) {
            b.copyFrom(x);
        } catch (RuntimeException | Error e) {
            z.close();
            throw e;
        }
        return z;
    }

    protected Tensor[] backward(Tensor gr) {
        int groups = p.groups(), cin = w.size(0), cinG = cin / groups, coutG = w.size(1), kh = w.size(2), kw = w.size(3);
        int[] xs = {n, cin, h, wd};
        if (xm == null)   // an empty output: nothing flows back
            return grads(needsGrad(0) ? Tensor.zeros(w.device(), w.dtype(), xs) : null, needsGrad(1) ? Tensor.zeros(w.device(), w.dtype(), w.shape()) : null);
        int k = coutG * kh * kw, cols = xm.size(1);
        Tensor dxm = needsGrad(0) ? Tensor.empty(w.device(), w.dtype(), cin, cols) : null;
        Tensor dwm = needsGrad(1) ? Tensor.empty(w.device(), w.dtype(), cin, k) : null;
        Tensor dx = null;
        try {
            try (Tensor wm = w.reshape(cin, k)) {
                for (int g = 0; g < groups; g++) {
                    // the convolution's lowering of dY's group g: [Cout/G kh kw, N hc wc]
                    try (Tensor dyg = groups == 1 ? gr.alias() : gr.slice(1, g * coutG, (g + 1) * coutG);
                         Tensor dcols = Conv.im2col(dyg, kh, kw, p.sh(), p.sw(), p.ph(), p.pw(), p.dh(), p.dw())) {
                        if (dxm != null)
                            try (Tensor wg = wm.slice(0, g * cinG, (g + 1) * cinG); Tensor dst = dxm.slice(0, g * cinG, (g + 1) * cinG)) {
                                Blas.gemm(1f, wg, dcols, 0f, dst);
                            }
                        if (dwm != null)
                            try (Tensor xg = xm.slice(0, g * cinG, (g + 1) * cinG); Tensor dt = dcols.t(); Tensor dst = dwm.slice(0, g * cinG, (g + 1) * cinG)) {
                                Blas.gemm(1f, xg, dt, 0f, dst);
                            }
                    }
                }
            }
            if (dxm != null)
                try (Tensor d4 = dxm.reshape(cin, n, hc, wc); Tensor dp = d4.permute(1, 0, 2, 3); Tensor a = dp.slice(2, 0, h); Tensor b = a.slice(3, 0, wd)) {
                    dx = b.contiguous();
                }
            Tensor dw = dwm == null ? null : dwm.reshape(w.shape());
            return grads(dx, dw);
        } catch (RuntimeException | Error e) {
            if (dx != null) dx.close();
            throw e;
        } finally {
            if (dxm != null) dxm.close();
            if (dwm != null) dwm.close();
        }
    }

    @Override public String toString() {
        return "ConvTranspose2d[" + p + ", output padding " + oph + "x" + opw + ", weight " + (w == null ? "?" : Shape.str(w.shape())) + "]";
    }
}
