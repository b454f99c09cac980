package fst4j.autograd;

import fst4j.autograd.Profile.Part;
import fst4j.tensor.Conv;
import fst4j.tensor.SharedOperand;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * A convolution of any geometry torch's F.conv2d takes (per-axis kernel, stride and padding, dilation, groups) through
 * the Eq. 1-3 node: the general path behind {@link Layers#conv2d(Gemm3, Var, Var, Var, ConvParams)} for what the fast
 * paths of {@link Layers.Conv2d} (planned lowering, blocked convolution, half-K Eq. 3 while packing, the stride-2 rules)
 * do not take. Simpler and slower: the whole batch lowered by (dilated) im2col, the node's GEMMs on it, col2im back.
 * <p>
 * Groups (torch's: input channels [g Cin/G, (g+1) Cin/G) meet weight rows [g Cout/G, (g+1) Cout/G), whose
 * [Cout, Cin/G, kh, kw] layout is torch's) are each their own Eq. 1-3 product with K = Cin/G * kh * kw: Eq. 1
 * S(W)_g X_g, Eq. 2 S(W_g^T) dY_g, Eq. 3 dY_g S(X_g^T) with the IR shift, every slot's rule applied to that group's
 * operand. The one exception is the W slot: its rule sees the layer's whole W as [Cout, K] once per step (see
 * {@link Gemm3#prepareForwardGroups}), which for the row-wise magnitude 2:4 is each group's own S(W_g). Where K is not
 * a multiple of 4 (a depthwise 3x3: K = 9), 2:4 along K zero-pads the last group of 4, as for the first convolution of
 * a one-channel input: 2 + 2 + 1 of 9 weights kept; along Cout, a group of fewer than 4 output channels (depthwise:
 * one) keeps them all.
 */
final class GeneralConv2d extends Function {
    private final Gemm3 node;
    private final ConvParams p;
    private Tensor x, w, sw;
    private int ho, wo;

    GeneralConv2d(Gemm3 node, ConvParams p) { this.node = node; this.p = p; }

    @Override protected boolean profilesItself() { return true; }

    @Override protected String profileLabel(Tensor... in) {
        if (in.length < 2 || in[0].dim() != 4 || in[1].dim() != 4) return super.profileLabel(in);
        return "Conv2d " + in[1].size(1) * p.groups() + "->" + in[1].size(0) + " k" + in[1].size(2) + "x" + in[1].size(3) + " s" + p.sh() + "x" + p.sw()
                + (p.dh() != 1 || p.dw() != 1 ? " d" + p.dh() + "x" + p.dw() : "") + (p.groups() != 1 ? " g" + p.groups() : "")
                + " @" + in[0].size(2) + "x" + in[0].size(3);
    }

    protected Tensor forward(Tensor... in) {
        Tensor xin = in[0], win = in[1];
        p.check(xin.shape(), win.shape());
        if (xin.dtype() != win.dtype())
            throw new IllegalArgumentException("dtype mismatch in conv2d: input " + xin.dtype() + ", weight " + win.dtype());
        if (xin.device() != win.device())
            throw new IllegalArgumentException("device mismatch in conv2d: input on " + xin.device() + ", weight on " + win.device());
        int groups = p.groups(), n = xin.size(0), cout = win.size(0), coutG = cout / groups, kh = win.size(2), kw = win.size(3);
        int kRows = Math.multiplyExact(win.size(1), kh * kw);
        if (groups > 1 && node.config().w() instanceof fst4j.sparse.Transposable24 && coutG % 4 != 0)
            throw new IllegalArgumentException("conv2d with groups " + groups + ": " + node.config().name() + "'s transposable 2:4 mask is 2:4 along Cout in"
                    + " blocks of 4 output channels, which groups of " + coutG + " output channels cut (Cout / groups must be a multiple of 4)");
        ho = Conv.outSize(xin.size(2), kh, p.sh(), p.ph(), p.dh());
        wo = Conv.outSize(xin.size(3), kw, p.sw(), p.pw(), p.dw());
        int l = ho * wo;
        x = save(xin);
        w = save(win);
        // no columns (an empty batch): no products, whose views of empty matrices the GEMMs refuse; as torch, zeros
        if ((long) n * l == 0) return Tensor.zeros(xin.device(), xin.dtype(), n, cout, ho, wo);
        // Eq. 1's products side by side as [Cout, N*L]: group g's rows are a contiguous block (CUDA copies into no
        // strided view), then one permute to NCHW
        Tensor ym = Tensor.empty(xin.device(), xin.dtype(), cout, n * l);
        // pgSw: S(W) for Eq. 2 (wtFromSparse), which PreparedGroups.close() leaves to its caller: closed here on every
        // exit, a failed group product included, after save took its own reference
        try (ym; Tensor wm = win.reshape(cout, kRows); Gemm3.PreparedGroups pg = node.prepareForwardGroups(wm, xin.dtype(), groups, !needsGrad(1));
             Tensor pgSw = pg.sw()) {
            for (int g = 0; g < groups; g++) {
                try (Tensor cols = columnsOf(xin, g); Tensor y = ym.slice(0, g * coutG, (g + 1) * coutG)) {
                    long t1 = Profile.start();
                    pg.lefts()[g].times(cols, y);
                    Profile.stop(Part.EQ1, t1);
                }
            }
            if (pgSw != null) sw = save(pgSw);
            long t2 = Profile.start();
            Tensor out;
            try (Tensor y4 = ym.reshape(cout, n, ho, wo); Tensor yp = y4.permute(1, 0, 2, 3)) {
                out = yp.contiguous();
            } catch (RuntimeException | Error e) {
                Profile.stop(Part.ELEMENTWISE, t2);
                throw e;
            }
            return Profile.stop(Part.ELEMENTWISE, t2, out);
        }
    }

    /** im2col (dilated) of group g's input channels of xs: [Cin/G * kh * kw, N * Ho * Wo]. */
    private Tensor columnsOf(Tensor xs, int g) {
        int cinG = w.size(1);
        long t = Profile.start();
        Tensor cols;
        try (Tensor xg = p.groups() == 1 ? xs.alias() : xs.slice(1, g * cinG, (g + 1) * cinG)) {
            cols = Conv.im2col(xg, w.size(2), w.size(3), p.sh(), p.sw(), p.ph(), p.pw(), p.dh(), p.dw());
        } catch (RuntimeException | Error e) {
            Profile.stop(Part.IM2COL, t);
            throw e;
        }
        return Profile.stop(Part.IM2COL, t, cols);
    }

    /** Eq. 3's X of group g: every column, or Eq. 7's kept ones (even positions of each image's Ho*Wo). */
    private Gemm3.Columns columns(int g) {
        return new Gemm3.Columns() {
            public Tensor all() { return columnsOf(x, g); }
            public Tensor kept(int[] pos, int images) {
                int l = ho * wo, half = (l + 1) / 2;
                if (pos.length != half) throw new IllegalArgumentException("kept columns: " + pos.length + " positions per image of " + l + " (Eq. 7: " + half + ")");
                try (Tensor all = all();
                     Tensor v = all.asStrided(new int[]{all.size(0), images, half}, new long[]{all.strides()[0], l, 2}, all.offset());
                     Tensor c = v.contiguous()) {
                    return c.reshape(all.size(0), images * half);
                }
            }
        };
    }

    protected Tensor[] backward(Tensor gr) {
        int groups = p.groups(), n = x.size(0), cout = w.size(0), coutG = cout / groups, cinG = w.size(1), kh = w.size(2), kw = w.size(3);
        int kRows = cinG * kh * kw, l = ho * wo;
        int[] groupShape = {n, cinG, x.size(2), x.size(3)};
        if ((long) n * l == 0)
            return grads(needsGrad(0) ? Tensor.zeros(x.device(), x.dtype(), x.shape()) : null, needsGrad(1) ? Tensor.zeros(w.device(), w.dtype(), w.shape()) : null);
        // dX group by group into [Cin, N, H, W], whose group blocks are contiguous (as Eq. 1's output), permuted at the end
        Tensor dxc = needsGrad(0) && groups > 1 ? Tensor.empty(x.device(), x.dtype(), x.size(1), n, x.size(2), x.size(3)) : null;
        Tensor dx = null;
        Tensor dw = needsGrad(1) ? Tensor.empty(w.device(), w.dtype(), cout, kRows) : null;
        try {
            try (Tensor wm = w.reshape(cout, kRows)) {
                for (int g = 0; g < groups; g++) {
                    long t0 = Profile.start();
                    SharedOperand byChannel;
                    try (Tensor s = gr.slice(1, g * coutG, (g + 1) * coutG); Tensor dyg = s.contiguous()) {
                        byChannel = Conv.byChannel(dyg, n, coutG, l);   // [Cout/G, N*L]
                    }
                    Profile.stop(Part.ELEMENTWISE, t0, byChannel);
                    try (byChannel) {
                        Tensor dyc = byChannel.tensor();
                        if (needsGrad(0)) {
                            try (Tensor wg = wm.slice(0, g * coutG, (g + 1) * coutG); Tensor swg = sw == null ? null : sw.slice(0, g * coutG, (g + 1) * coutG);
                                 Tensor dcols = node.inputGrad(wg, swg, dyc)) {
                                long t1 = Profile.start();
                                Tensor dxg = Conv.col2im(dcols, groupShape, kh, kw, p.sh(), p.sw(), p.ph(), p.pw(), p.dh(), p.dw());
                                if (dxc == null) dx = dxg;
                                else try (dxg; Tensor src = dxg.permute(1, 0, 2, 3); Tensor dst = dxc.slice(0, g * cinG, (g + 1) * cinG)) {
                                    dst.copyFrom(src);
                                }
                                Profile.stop(Part.IM2COL, t1);
                            }
                        }
                        if (dw != null) {
                            try (Tensor dwg = node.weightGrad(dyc, columns(g), l, kRows); Tensor dst = dw.slice(0, g * coutG, (g + 1) * coutG)) {
                                dst.copyFrom(dwg);
                            }
                        }
                    } finally {
                        node.dropSharedDy();   // Eq. 2's S(dY), where Eq. 3 did not take it
                    }
                }
            }
            if (dxc != null) try (Tensor p4 = dxc.permute(1, 0, 2, 3)) { dx = p4.contiguous(); }
            Tensor dw4 = null;
            if (dw != null) try (Tensor dwm = dw) { dw4 = dwm.reshape(w.shape()); }
            return grads(dx, dw4);
        } catch (RuntimeException | Error e) {
            if (dx != null) dx.close();
            if (dw != null && !dw.isClosed()) dw.close();
            throw e;
        } finally {
            if (dxc != null) dxc.close();
        }
    }

    @Override public String toString() { return "GeneralConv2d[" + p + ", weight " + (w == null ? "?" : Shape.str(w.shape())) + "]"; }
}
