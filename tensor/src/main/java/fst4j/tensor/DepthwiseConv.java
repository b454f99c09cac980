package fst4j.tensor;

import fst4j.shim.Native;

/**
 * Depthwise convolution (NCHW, groups == Cin) computed directly: x [N, C, H, W], weight [C * mult, 1, kh, kw] (torch's
 * layout for groups = C; mult > 1 is a channel multiplier, output channel co reading input channel co / mult), torch's
 * per-axis stride, padding and dilation. A depthwise group is one output row by K = kh*kw, which the general path's
 * per-group GEMMs run at a fraction of their speed (and its im2col is kh*kw times the input), so these loops replace
 * them: float32 in the C shim (conv_depthwise.c, vectorised along output rows, threaded over planes or channels),
 * float64 in Java loops (the reference, and gradcheck's path). CPU only. The sums run in another order than the GEMMs'
 * (taps in (i, j) order, then the bias), so float32 results equal the general path's within rounding, not bit for bit.
 */
public final class DepthwiseConv {
    private DepthwiseConv() {}

    /** Whether x [N, Cin, H, W] and weight w with groups take this path's layout: groups == Cin, w [Cin * mult, 1, kh, kw]. */
    public static boolean isDepthwise(int[] x, int[] w, int groups) {
        return x.length == 4 && w.length == 4 && groups == x[1] && w[1] == 1 && w[0] % x[1] == 0 && w[0] > 0;
    }

    /** y = conv(x, w) + bias (bias [C * mult] or null): [N, C * mult, Ho, Wo]. */
    public static Tensor forward(Tensor x, Tensor w, Tensor bias, int sh, int sw, int ph, int pw, int dh, int dw) {
        Geom g = geom("depthwise conv2d", x, w, sh, sw, ph, pw, dh, dw);
        if (bias != null) {
            bias.check();
            same("bias", bias, x);
            if (bias.dim() != 1 || bias.size(0) != g.cout())
                throw new IllegalArgumentException("shape mismatch: depthwise conv2d bias " + Shape.str(bias.shape) + ", expected [" + g.cout() + "]");
        }
        Tensor y = Tensor.empty(x.dtype, g.c.n(), g.cout(), g.c.ho(), g.c.wo());
        if (y.numel() == 0) return y;
        try (Tensor xc = x.contiguous(); Tensor wc = w.contiguous(); Tensor bc = bias == null ? null : bias.contiguous()) {
            if (useNative(x.dtype)) {
                Native.dwconvForward(g.longs(), xc.data(), wc.data(), bc == null ? java.lang.foreign.MemorySegment.NULL : bc.data(), y.data(), Blas.threads());
                y.markModified();
            } else {
                double[] out = forwardRef(g, xc.toDoubleArray(), wc.toDoubleArray(), bc == null ? null : bc.toDoubleArray());
                put(y, out);
            }
            return y;
        } catch (RuntimeException | Error e) {
            y.close();
            throw e;
        }
    }

    /** dX [N, C, H, W] of the depthwise convolution of an input of shape xShape by w, from dy [N, C * mult, Ho, Wo]. */
    public static Tensor inputGrad(Tensor dy, Tensor w, int[] xShape, int sh, int sw, int ph, int pw, int dh, int dw) {
        Geom g = geom("depthwise conv2d input gradient", xShape, w, sh, sw, ph, pw, dh, dw);
        checkDy(g, dy, w);
        Tensor dx = Tensor.empty(w.dtype, xShape);
        if (dx.numel() == 0) return dx;
        try (Tensor dyc = dy.contiguous(); Tensor wc = w.contiguous()) {
            if (useNative(w.dtype)) {
                Native.dwconvInputGrad(g.longs(), dyc.data(), wc.data(), dx.data(), Blas.threads());
                dx.markModified();
            } else {
                put(dx, inputGradRef(g, dyc.toDoubleArray(), wc.toDoubleArray()));
            }
            return dx;
        } catch (RuntimeException | Error e) {
            dx.close();
            throw e;
        }
    }

    /**
     * {dW [C * mult, 1, kh, kw] or null, dBias [C * mult] or null} of the depthwise convolution of x with a kh x kw kernel,
     * from dy; weight and bias say which to compute. An empty batch gives zeros.
     */
    public static Tensor[] weightGrad(Tensor x, Tensor dy, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, boolean weight, boolean bias) {
        x.check(); dy.check();
        if (dy.dim() != 4 || x.dim() != 4)
            throw new IllegalArgumentException("wrong rank: depthwise conv2d weight gradient needs x [N, C, H, W] and dy [N, Cout, Ho, Wo], got "
                    + Shape.str(x.shape) + " and " + Shape.str(dy.shape));
        int cout = dy.size(1);
        Geom g = geom("depthwise conv2d weight gradient", x.shape, x.dtype, x.device(), new int[]{cout, 1, kh, kw}, sh, sw, ph, pw, dh, dw);
        same("dy", dy, x);
        if (dy.size(0) != g.c.n() || dy.size(2) != g.c.ho() || dy.size(3) != g.c.wo())
            throw new IllegalArgumentException("shape mismatch: depthwise conv2d dy " + Shape.str(dy.shape) + ", expected [" + g.c.n() + ", " + cout + ", "
                    + g.c.ho() + ", " + g.c.wo() + "] for input " + Shape.str(x.shape));
        if (!weight && !bias) return new Tensor[]{null, null};
        Tensor dwt = weight ? Tensor.empty(x.dtype, cout, 1, kh, kw) : null;
        Tensor db = bias ? Tensor.empty(x.dtype, cout) : null;
        try (Tensor xc = x.contiguous(); Tensor dyc = dy.contiguous()) {
            if (useNative(x.dtype)) {
                var nul = java.lang.foreign.MemorySegment.NULL;
                Native.dwconvWeightGrad(g.longs(), g.c.n() == 0 ? nul : xc.data(), g.c.n() == 0 ? nul : dyc.data(),
                        dwt == null ? nul : dwt.data(), db == null ? nul : db.data(), Blas.threads());
                if (dwt != null) dwt.markModified();
                if (db != null) db.markModified();
            } else {
                double[][] r = weightGradRef(g, xc.toDoubleArray(), dyc.toDoubleArray());
                if (dwt != null) put(dwt, r[0]);
                if (db != null) put(db, r[1]);
            }
            return new Tensor[]{dwt, db};
        } catch (RuntimeException | Error e) {
            if (dwt != null) dwt.close();
            if (db != null) db.close();
            throw e;
        }
    }

    // ------------------------------------------------------------------ geometry and checks

    /** Conv's validated geometry, the multiplier and the output channels. */
    private record Geom(Conv.Geom c, int mult) {
        int cout() { return c.c() * mult; }
        long[] longs() {
            return new long[]{c.n(), c.c(), mult, c.h(), c.w(), c.kh(), c.kw(), c.sh(), c.sw(), c.ph(), c.pw(), c.dh(), c.dw(), c.ho(), c.wo()};
        }
    }

    private static Geom geom(String op, Tensor x, Tensor w, int sh, int sw, int ph, int pw, int dh, int dw) {
        x.check();
        return geom(op, x.shape, x.dtype, x.device(), w, sh, sw, ph, pw, dh, dw);
    }

    private static Geom geom(String op, int[] xShape, Tensor w, int sh, int sw, int ph, int pw, int dh, int dw) {
        return geom(op, xShape, w.dtype, w.device(), w, sh, sw, ph, pw, dh, dw);
    }

    private static Geom geom(String op, int[] xShape, DType dtype, Device device, Tensor w, int sh, int sw, int ph, int pw, int dh, int dw) {
        w.check();
        if (w.dtype != dtype) throw new IllegalArgumentException("dtype mismatch in " + op + ": input " + dtype + ", weight " + w.dtype);
        if (w.device() != device) throw new IllegalArgumentException("device mismatch in " + op + ": input on " + device + ", weight on " + w.device());
        return geom(op, xShape, dtype, device, w.shape, sh, sw, ph, pw, dh, dw);
    }

    private static Geom geom(String op, int[] xShape, DType dtype, Device device, int[] wShape, int sh, int sw, int ph, int pw, int dh, int dw) {
        if (device != Device.CPU) throw new IllegalArgumentException(op + " runs on the CPU only, got tensors on " + device);
        if (xShape.length != 4 || wShape.length != 4)
            throw new IllegalArgumentException("wrong rank: " + op + " needs x [N, C, H, W] and weight [C * mult, 1, kh, kw], got "
                    + Shape.str(xShape) + " and " + Shape.str(wShape));
        if (!isDepthwise(xShape, wShape, xShape[1]))
            throw new IllegalArgumentException("shape mismatch: " + op + " needs weight [C * mult, 1, kh, kw] for input " + Shape.str(xShape)
                    + " (C = " + xShape[1] + "), got " + Shape.str(wShape));
        Conv.Geom c = Conv.Geom.of(op, xShape, wShape[2], wShape[3], sh, sw, ph, pw, dh, dw);
        c.nl(); c.k();   // sizes past 2^31 - 1 refused by name
        Math.multiplyExact((long) c.n() * wShape[0], (long) c.ho() * c.wo());
        return new Geom(c, wShape[0] / xShape[1]);
    }

    private static void checkDy(Geom g, Tensor dy, Tensor w) {
        dy.check();
        same("dy", dy, w);
        int[] want = {g.c.n(), g.cout(), g.c.ho(), g.c.wo()};
        if (!java.util.Arrays.equals(dy.shape, want))
            throw new IllegalArgumentException("shape mismatch: depthwise conv2d dy " + Shape.str(dy.shape) + ", expected " + Shape.str(want));
    }

    private static void same(String what, Tensor t, Tensor ref) {
        if (t.dtype != ref.dtype) throw new IllegalArgumentException("dtype mismatch in depthwise conv2d: " + what + " " + t.dtype + ", expected " + ref.dtype);
        if (t.device() != ref.device())
            throw new IllegalArgumentException("device mismatch in depthwise conv2d: " + what + " on " + t.device() + ", expected " + ref.device());
    }

    private static boolean useNative(DType t) { return t == DType.F32 && Native.isLoaded(); }

    private static void put(Tensor dst, double[] v) {
        try (Tensor src = Tensor.of(v, dst.shape)) { dst.copyFrom(src); }
    }

    // ------------------------------------------------------------------ the Java reference (float64 arithmetic)

    static double[] forwardRef(Geom gg, double[] x, double[] w, double[] b) {
        Conv.Geom g = gg.c;
        int cout = gg.cout(), khw = g.kh() * g.kw();
        double[] y = new double[g.n() * cout * g.ho() * g.wo()];
        for (int n = 0; n < g.n(); n++)
            for (int co = 0; co < cout; co++) {
                int xp = (n * g.c() + co / gg.mult) * g.h() * g.w(), yp = (n * cout + co) * g.ho() * g.wo();
                for (int oh = 0; oh < g.ho(); oh++)
                    for (int ow = 0; ow < g.wo(); ow++) {
                        double s = 0;
                        for (int i = 0; i < g.kh(); i++) {
                            int ih = oh * g.sh() - g.ph() + i * g.dh();
                            if (ih < 0 || ih >= g.h()) continue;
                            for (int j = 0; j < g.kw(); j++) {
                                int iw = ow * g.sw() - g.pw() + j * g.dw();
                                if (iw >= 0 && iw < g.w()) s += w[co * khw + i * g.kw() + j] * x[xp + ih * g.w() + iw];
                            }
                        }
                        y[yp + oh * g.wo() + ow] = s + (b == null ? 0 : b[co]);
                    }
            }
        return y;
    }

    static double[] inputGradRef(Geom gg, double[] dy, double[] w) {
        Conv.Geom g = gg.c;
        int cout = gg.cout(), khw = g.kh() * g.kw();
        double[] dx = new double[g.n() * g.c() * g.h() * g.w()];
        for (int n = 0; n < g.n(); n++)
            for (int co = 0; co < cout; co++) {
                int xp = (n * g.c() + co / gg.mult) * g.h() * g.w(), yp = (n * cout + co) * g.ho() * g.wo();
                for (int oh = 0; oh < g.ho(); oh++)
                    for (int ow = 0; ow < g.wo(); ow++)
                        for (int i = 0; i < g.kh(); i++) {
                            int ih = oh * g.sh() - g.ph() + i * g.dh();
                            if (ih < 0 || ih >= g.h()) continue;
                            for (int j = 0; j < g.kw(); j++) {
                                int iw = ow * g.sw() - g.pw() + j * g.dw();
                                if (iw >= 0 && iw < g.w()) dx[xp + ih * g.w() + iw] += w[co * khw + i * g.kw() + j] * dy[yp + oh * g.wo() + ow];
                            }
                        }
            }
        return dx;
    }

    static double[][] weightGradRef(Geom gg, double[] x, double[] dy) {
        Conv.Geom g = gg.c;
        int cout = gg.cout(), khw = g.kh() * g.kw();
        double[] dw = new double[cout * khw], db = new double[cout];
        for (int n = 0; n < g.n(); n++)
            for (int co = 0; co < cout; co++) {
                int xp = (n * g.c() + co / gg.mult) * g.h() * g.w(), yp = (n * cout + co) * g.ho() * g.wo();
                for (int oh = 0; oh < g.ho(); oh++)
                    for (int ow = 0; ow < g.wo(); ow++) {
                        double d = dy[yp + oh * g.wo() + ow];
                        db[co] += d;
                        for (int i = 0; i < g.kh(); i++) {
                            int ih = oh * g.sh() - g.ph() + i * g.dh();
                            if (ih < 0 || ih >= g.h()) continue;
                            for (int j = 0; j < g.kw(); j++) {
                                int iw = ow * g.sw() - g.pw() + j * g.dw();
                                if (iw >= 0 && iw < g.w()) dw[co * khw + i * g.kw() + j] += d * x[xp + ih * g.w() + iw];
                            }
                        }
                    }
            }
        return new double[][]{dw, db};
    }
}
