package fst4j.autograd;

import fst4j.autograd.Profile.Part;
import fst4j.tensor.Conv;
import fst4j.tensor.Tensor;

/**
 * The Eq. 1-3 node as differentiable functions: a linear layer and a 2-D convolution (im2col + the
 * node) whose three GEMMs go through one {@link Gemm3} with its sparsity configuration.
 */
public final class Layers {
    private Layers() {}

    /** y = x W^T + b for x [N, in], W [out, in], b [out] or null. */
    public static Var linear(Gemm3 node, Var x, Var w, Var b) {
        Var y = new Linear(node).apply(x, w);
        return b == null ? y : y.add(b);
    }

    /** conv2d (NCHW, square kernel) whose GEMMs go through node; b [Cout] or null. */
    public static Var conv2d(Gemm3 node, Var x, Var w, Var b, int stride, int padding) {
        Var y = new Conv2d(node, stride, padding).apply(x, w);
        if (b == null) return y;
        return y.add(b.reshape(1, -1, 1, 1));
    }

    static final class Linear extends Function {
        private final Gemm3 node;
        private Tensor x, w, sw;
        Linear(Gemm3 node) { this.node = node; }
        private void keep(Tensor s) { if (s != null) { sw = save(s); s.close(); } }

        protected Tensor forward(Tensor... in) {
            Tensor xin = in[0], win = in[1];
            if (xin.dim() != 2 || win.dim() != 2 || xin.size(1) != win.size(1))
                throw new IllegalArgumentException("shape mismatch: linear input " + fst4j.tensor.Shape.str(xin.shape()) + " with weight " + fst4j.tensor.Shape.str(win.shape()));
            x = save(xin); w = save(win);
            try (Tensor xt = xin.t()) {
                Gemm3.Forward f = node.forward(win, xt);
                keep(f.sw());
                try (Tensor y = f.y(); Tensor yt = y.t()) { return yt.contiguous(); }
            }
        }

        protected Tensor[] backward(Tensor g) {
            try (Tensor dy = g.t()) {
                Tensor dx = null, dw = null;
                if (needsGrad(0)) try (Tensor dxt = node.inputGrad(w, sw, dy)) { dx = dxt.t(); }
                if (needsGrad(1)) {
                    Gemm3.Columns cols = new Gemm3.Columns() {
                        public Tensor all() { return x.t(); }
                        public Tensor kept(int[] pos, int images) {
                            try (Tensor xt = x.t()) { return fst4j.sparse.HalfK.gatherKept(xt, x.size(0)); }
                        }
                    };
                    dw = node.weightGrad(dy, cols, x.size(0), w.size(1));
                }
                return grads(dx, dw);
            }
        }
    }

    static final class Conv2d extends Function {
        private final Gemm3 node;
        private final int stride, padding;
        private Tensor x, w, sw;
        private int ho, wo;
        Conv2d(Gemm3 node, int stride, int padding) { this.node = node; this.stride = stride; this.padding = padding; }
        private void keep(Tensor s) { if (s != null) { sw = save(s); s.close(); } }

        protected Tensor forward(Tensor... in) {
            Tensor xin = in[0], win = in[1];
            if (xin.dim() != 4 || win.dim() != 4)
                throw new IllegalArgumentException("wrong rank: conv2d needs x [N, C, H, W] and w [Cout, Cin, k, k], got " + fst4j.tensor.Shape.str(xin.shape()) + " and " + fst4j.tensor.Shape.str(win.shape()));
            if (xin.size(1) != win.size(1))
                throw new IllegalArgumentException("channel mismatch: input has " + xin.size(1) + " channels, weight expects " + win.size(1));
            if (win.size(2) != win.size(3)) throw new IllegalArgumentException("conv2d: only square kernels, got " + fst4j.tensor.Shape.str(win.shape()));
            x = save(xin); w = save(win);
            int n = xin.size(0), cout = win.size(0), k = win.size(2);
            ho = Conv.outSize(xin.size(2), k, stride, padding);
            wo = Conv.outSize(xin.size(3), k, stride, padding);
            long t0 = Profile.start();
            Tensor cols = Conv.im2col(xin, k, stride, padding);
            Profile.stop(Part.IM2COL, t0);
            Gemm3.Forward f;
            try (cols; Tensor wm = win.reshape(cout, -1)) { f = node.forward(wm, cols); }
            keep(f.sw());
            try (Tensor y = f.y(); Tensor y3 = y.reshape(cout, n, ho * wo); Tensor p = y3.permute(1, 0, 2)) {
                long t1 = Profile.start();
                Tensor out = p.contiguous();
                Profile.stop(Part.ELEMENTWISE, t1);
                try (out) { return out.reshape(n, cout, ho, wo); }
            }
        }

        protected Tensor[] backward(Tensor g) {
            int n = x.size(0), cout = w.size(0), k = w.size(2), kRows = w.size(1) * k * k, p = ho * wo;
            long t0 = Profile.start();
            Tensor dyc;
            try (Tensor g3 = g.reshape(n, cout, p); Tensor gp = g3.permute(1, 0, 2); Tensor gc = gp.contiguous()) {
                dyc = gc.reshape(cout, n * p);
            }
            Profile.stop(Part.ELEMENTWISE, t0);
            try (dyc; Tensor wm = w.reshape(cout, kRows)) {
                Tensor dx = null, dw = null;
                if (needsGrad(0)) {
                    try (Tensor dcols = node.inputGrad(wm, sw, dyc)) {
                        long t1 = Profile.start();
                        dx = Conv.col2im(dcols, x.shape(), k, stride, padding);
                        Profile.stop(Part.IM2COL, t1);
                    }
                }
                if (needsGrad(1)) {
                    Gemm3.Columns cols = new Gemm3.Columns() {
                        public Tensor all() {
                            long t = Profile.start();
                            try { return Conv.im2col(x, k, stride, padding); } finally { Profile.stop(Part.IM2COL, t); }
                        }
                        public Tensor kept(int[] pos, int images) {
                            long t = Profile.start();
                            // Even positions of each image's Ho*Wo with Wo even are every other column of every
                            // row: exactly im2col with the horizontal stride doubled (a streaming copy, not a gather).
                            boolean rowAligned = wo % 2 == 0 && pos.length * 2 == ho * wo && pos.length > 0 && pos[pos.length - 1] == ho * wo - 2;
                            Tensor out = rowAligned ? Conv.im2col(x, k, k, stride, 2 * stride, padding, padding)
                                    : Conv.im2colAt(x, pos, k, k, stride, stride, padding, padding);
                            Profile.stop(Part.IM2COL, t);
                            return out;
                        }
                    };
                    try (Tensor dwm = node.weightGrad(dyc, cols, p, kRows)) { dw = dwm.reshape(w.shape()); }
                }
                return grads(dx, dw);
            }
        }
    }
}
