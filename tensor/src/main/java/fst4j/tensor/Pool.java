package fst4j.tensor;

import fst4j.shim.Native;

/**
 * 2-D pooling (NCHW): max pool with argmax indices, average pool, adaptive average pool; each with an
 * explicit backward. Values are read and written in the input's dtype (float32 or float64), sums are
 * accumulated in double.
 */
public final class Pool {
    private Pool() {}

    /**
     * Max pool result: output [N, C, Ho, Wo] and, for each output element (row-major), the flat index
     * ih*W + iw of its maximum inside its own [H, W] input plane (PyTorch's convention).
     */
    public record MaxPool2d(Tensor output, Indices indices) implements AutoCloseable {
        @Override public void close() { output.close(); indices.close(); }
    }

    /**
     * Argmax indices of a max pool, kept where the pooling ran: on the host, or in device memory for a CUDA input (so a
     * training step does not copy them down and up again). {@link #toArray()} gives them on the host either way.
     */
    public sealed interface Indices extends AutoCloseable permits HostIndices, DeviceIndices {
        long count();
        /** The indices as a host array (copied from the device for {@link DeviceIndices}). */
        int[] toArray();
        @Override void close();
    }

    public record HostIndices(int[] values) implements Indices {
        @Override public long count() { return values.length; }
        @Override public int[] toArray() { return values; }
        @Override public void close() {}
    }

    /** int32 indices in CUDA memory, written by the max-pool kernel; freed by {@link #close()}. */
    public static final class DeviceIndices implements Indices {
        private final long count;
        private final Conv.Geom geom;   // the forward's pooling geometry, for the backward's gather kernel
        private CudaOps.Block block;
        DeviceIndices(CudaOps.Block block, long count, Conv.Geom geom) { this.block = block; this.count = count; this.geom = geom; }
        Conv.Geom geom() { return geom; }
        @Override public long count() { return count; }
        java.lang.foreign.MemorySegment ptr() {
            if (block == null) throw new IllegalStateException("max-pool indices are closed (freed with their graph)");
            return block.ptr();
        }
        @Override public int[] toArray() { return CudaOps.intsToHost(ptr(), count); }
        @Override public void close() { if (block != null) { block.close(); block = null; } }
    }

    /** Float32 max pooling runs in C (pool.c; equal to the loops here, which stay as the reference and the float64 path). */
    static boolean nativePool = !Boolean.getBoolean("fst4j.pool.java");

    private static boolean useNative(Tensor t) { return nativePool && t.dtype == DType.F32 && Native.isLoaded(); }

    private static int[] geom(String op, Tensor x, int kh, int kw, int sh, int sw, int ph, int pw) {
        x.check();
        Conv.Geom g = Conv.Geom.of(op, x.shape, kh, kw, sh, sw, ph, pw);
        return new int[]{g.n(), g.c(), g.h(), g.w(), g.ho(), g.wo()};
    }

    public static MaxPool2d maxPool2d(Tensor x, int k, int stride, int padding) {
        return maxPool2d(x, k, k, stride, stride, padding, padding);
    }

    public static MaxPool2d maxPool2d(Tensor x, int kh, int kw, int sh, int sw, int ph, int pw) {
        int[] g = geom("maxPool2d", x, kh, kw, sh, sw, ph, pw);
        if (2 * ph > kh || 2 * pw > kw)
            throw new IllegalArgumentException("maxPool2d: padding " + ph + "x" + pw + " must be at most half the kernel " + kh + "x" + kw
                    + " (input " + Shape.str(x.shape) + ")");
        if (x.storage.device != Device.CPU) return CudaOps.maxPool2d(x, Conv.Geom.of("maxPool2d", x.shape, kh, kw, sh, sw, ph, pw));
        int n = g[0], c = g[1], h = g[2], w = g[3], ho = g[4], wo = g[5];
        Tensor out = Tensor.empty(x.dtype, n, c, ho, wo);
        int[] idx = new int[Math.toIntExact(out.numel())];
        try (Tensor xc = x.contiguous()) {
            if (useNative(x) && out.numel() > 0) {
                Native.maxPool2d(xc.data(), (long) n * c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, out.data(), idx, Blas.threads());
                return new MaxPool2d(out, new HostIndices(idx));
            }
            long o = 0;
            for (int p = 0; p < n * c; p++) {
                long base = xc.offset + (long) p * h * w;
                for (int oh = 0; oh < ho; oh++) {
                    int h0 = Math.max(oh * sh - ph, 0), h1 = Math.min(oh * sh - ph + kh, h);
                    for (int ow = 0; ow < wo; ow++, o++) {
                        int w0 = Math.max(ow * sw - pw, 0), w1 = Math.min(ow * sw - pw + kw, w);
                        double best = Double.NEGATIVE_INFINITY;
                        int arg = h0 * w + w0;
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) {
                                double v = xc.getAt(base + (long) ih * w + iw);
                                if (v > best || Double.isNaN(v)) {
                                    best = v;
                                    arg = ih * w + iw;
                                    if (Double.isNaN(v)) { ih = h1; break; }
                                }
                            }
                        out.setAt(o, best);
                        idx[(int) o] = arg;
                    }
                }
            }
        }
        return new MaxPool2d(out, new HostIndices(idx));
    }

    /** dX of max pool from the forward's indices (host or device); inputShape is x's [N, C, H, W]. */
    public static Tensor maxPool2dBackward(Tensor dy, Indices indices, int[] inputShape) {
        dy.check();
        checkBackward(dy, indices.count(), inputShape);
        return switch (indices) {
            case HostIndices h -> maxPool2dBackward(dy, h.values(), inputShape);
            case DeviceIndices d -> {
                if (dy.storage.device != Device.CUDA)
                    throw new IllegalArgumentException("device mismatch: maxPool2dBackward got dy on " + dy.storage.device
                            + " and indices on CUDA; move dy with to(Device.CUDA)");
                yield CudaOps.maxPool2dBackward(dy, d, inputShape);
            }
        };
    }

    private static void checkBackward(Tensor dy, long count, int[] inputShape) {
        if (inputShape.length != 4 || dy.dim() != 4 || dy.shape[0] != inputShape[0] || dy.shape[1] != inputShape[1])
            throw new IllegalArgumentException("shape mismatch: maxPool2dBackward dy " + Shape.str(dy.shape) + " for input " + Shape.str(inputShape));
        if (count != dy.numel())
            throw new IllegalArgumentException("shape mismatch: maxPool2dBackward has " + count + " indices for dy " + Shape.str(dy.shape));
    }

    /** dX of max pool: each dy element added at its argmax (host indices, validated); inputShape is x's [N, C, H, W]. */
    public static Tensor maxPool2dBackward(Tensor dy, int[] indices, int[] inputShape) {
        dy.check();
        checkBackward(dy, indices.length, inputShape);
        if (dy.storage.device != Device.CPU) return CudaOps.maxPool2dBackward(dy, indices, inputShape);
        long plane = (long) inputShape[2] * inputShape[3];
        long outPlane = (long) dy.shape[2] * dy.shape[3];
        if (useNative(dy) && indices.length > 0) {
            Tensor dx = Tensor.empty(dy.dtype, inputShape);
            try (Tensor dyc = dy.contiguous()) {
                if (Native.maxPool2dBackward(dyc.data(), indices, (long) inputShape[0] * inputShape[1], inputShape[2], inputShape[3],
                        dy.shape[2], dy.shape[3], dx.data(), Blas.threads())) return dx;
            }
            dx.close();   // an index is out of range: the Java loop below names it
        }
        Tensor dx = Tensor.zeros(dy.dtype, inputShape);
        try (Tensor dyc = dy.contiguous()) {
            for (int o = 0; o < indices.length; o++) {
                int ix = indices[o];
                if (ix < 0 || ix >= plane) throw new IllegalArgumentException("maxPool2dBackward: index " + ix + " out of range for input " + Shape.str(inputShape));
                long t = (o / outPlane) * plane + ix;
                dx.setAt(t, dx.getAt(t) + dyc.getAt(dyc.offset + o));
            }
        }
        return dx;
    }

    public static Tensor avgPool2d(Tensor x, int k, int stride, int padding) {
        return avgPool2d(x, k, k, stride, stride, padding, padding, true);
    }

    /**
     * Average pool. With countIncludePad the divisor is kh*kw (PyTorch's default); otherwise it is the
     * number of window elements inside the input.
     */
    public static Tensor avgPool2d(Tensor x, int kh, int kw, int sh, int sw, int ph, int pw, boolean countIncludePad) {
        int[] g = geom("avgPool2d", x, kh, kw, sh, sw, ph, pw);
        if (x.storage.device != Device.CPU) return CudaOps.avgPool2d(x, Conv.Geom.of("avgPool2d", x.shape, kh, kw, sh, sw, ph, pw), countIncludePad);
        int n = g[0], c = g[1], h = g[2], w = g[3], ho = g[4], wo = g[5];
        Tensor out = Tensor.empty(x.dtype, n, c, ho, wo);
        try (Tensor xc = x.contiguous()) {
            long o = 0;
            for (int p = 0; p < n * c; p++) {
                long base = xc.offset + (long) p * h * w;
                for (int oh = 0; oh < ho; oh++) {
                    int h0 = Math.max(oh * sh - ph, 0), h1 = Math.min(oh * sh - ph + kh, h);
                    for (int ow = 0; ow < wo; ow++, o++) {
                        int w0 = Math.max(ow * sw - pw, 0), w1 = Math.min(ow * sw - pw + kw, w);
                        double s = 0;
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) s += xc.getAt(base + (long) ih * w + iw);
                        int div = countIncludePad ? kh * kw : Math.max((h1 - h0) * (w1 - w0), 1);
                        out.setAt(o, s / div);
                    }
                }
            }
        }
        return out;
    }

    public static Tensor avgPool2dBackward(Tensor dy, int[] inputShape, int k, int stride, int padding) {
        return avgPool2dBackward(dy, inputShape, k, k, stride, stride, padding, padding, true);
    }

    public static Tensor avgPool2dBackward(Tensor dy, int[] inputShape, int kh, int kw, int sh, int sw, int ph, int pw, boolean countIncludePad) {
        dy.check();
        Conv.Geom cg = Conv.Geom.of("avgPool2dBackward", inputShape, kh, kw, sh, sw, ph, pw);
        int n = cg.n(), c = cg.c(), h = cg.h(), w = cg.w(), ho = cg.ho(), wo = cg.wo();
        checkDy("avgPool2dBackward", dy, n, c, ho, wo);
        if (dy.storage.device != Device.CPU) return CudaOps.avgPool2dBackward(dy, cg, countIncludePad);
        Tensor dx = Tensor.zeros(dy.dtype, inputShape);
        try (Tensor dyc = dy.contiguous()) {
            long o = 0;
            for (int p = 0; p < n * c; p++) {
                long base = (long) p * h * w;
                for (int oh = 0; oh < ho; oh++) {
                    int h0 = Math.max(oh * sh - ph, 0), h1 = Math.min(oh * sh - ph + kh, h);
                    for (int ow = 0; ow < wo; ow++, o++) {
                        int w0 = Math.max(ow * sw - pw, 0), w1 = Math.min(ow * sw - pw + kw, w);
                        int div = countIncludePad ? kh * kw : Math.max((h1 - h0) * (w1 - w0), 1);
                        double g = dyc.getAt(dyc.offset + o) / div;
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) {
                                long t = base + (long) ih * w + iw;
                                dx.setAt(t, dx.getAt(t) + g);
                            }
                    }
                }
            }
        }
        return dx;
    }

    /** Adaptive average pool to [outH, outW]: bin i covers [floor(i*H/outH), ceil((i+1)*H/outH)), as in PyTorch. */
    public static Tensor adaptiveAvgPool2d(Tensor x, int outH, int outW) {
        x.check();
        if (x.dim() != 4) throw new IllegalArgumentException("wrong rank: adaptiveAvgPool2d needs input [N, C, H, W], got " + Shape.str(x.shape));
        if (outH <= 0 || outW <= 0) throw new IllegalArgumentException("adaptiveAvgPool2d: output size must be positive, got " + outH + "x" + outW);
        int n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        if (h == 0 || w == 0) throw new IllegalArgumentException("adaptiveAvgPool2d: empty input " + Shape.str(x.shape));
        if (x.storage.device != Device.CPU) return CudaOps.adaptiveAvgPool2d(x, outH, outW);
        Tensor out = Tensor.empty(x.dtype, n, c, outH, outW);
        try (Tensor xc = x.contiguous()) {
            if (useNative(x) && out.numel() > 0) {
                Native.adaptiveAvgPool2d(xc.data(), (long) n * c, h, w, outH, outW, out.data(), Blas.threads());
                return out;
            }
            long o = 0;
            for (int p = 0; p < n * c; p++) {
                long base = xc.offset + (long) p * h * w;
                for (int oh = 0; oh < outH; oh++) {
                    int h0 = start(oh, h, outH), h1 = end(oh, h, outH);
                    for (int ow = 0; ow < outW; ow++, o++) {
                        int w0 = start(ow, w, outW), w1 = end(ow, w, outW);
                        double s = 0;
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) s += xc.getAt(base + (long) ih * w + iw);
                        out.setAt(o, s / ((h1 - h0) * (w1 - w0)));
                    }
                }
            }
        }
        return out;
    }

    public static Tensor adaptiveAvgPool2dBackward(Tensor dy, int[] inputShape) {
        dy.check();
        if (inputShape.length != 4) throw new IllegalArgumentException("wrong rank: adaptiveAvgPool2dBackward input shape " + Shape.str(inputShape));
        if (dy.dim() != 4) throw new IllegalArgumentException("wrong rank: adaptiveAvgPool2dBackward dy " + Shape.str(dy.shape));
        int n = inputShape[0], c = inputShape[1], h = inputShape[2], w = inputShape[3], outH = dy.shape[2], outW = dy.shape[3];
        checkDy("adaptiveAvgPool2dBackward", dy, n, c, outH, outW);
        if (h == 0 || w == 0) throw new IllegalArgumentException("adaptiveAvgPool2dBackward: empty input " + Shape.str(inputShape));
        if (dy.storage.device != Device.CPU) return CudaOps.adaptiveAvgPool2dBackward(dy, inputShape);
        if (useNative(dy) && (long) n * c > 0) {
            Tensor dx = Tensor.empty(dy.dtype, inputShape);
            try (Tensor dyc = dy.contiguous()) {
                Native.adaptiveAvgPool2dBackward(dyc.data(), (long) n * c, h, w, outH, outW, dx.data(), Blas.threads());
                return dx;
            } catch (RuntimeException | Error e) {
                dx.close();
                throw e;
            }
        }
        Tensor dx = Tensor.zeros(dy.dtype, inputShape);
        try (Tensor dyc = dy.contiguous()) {
            long o = 0;
            for (int p = 0; p < n * c; p++) {
                long base = (long) p * h * w;
                for (int oh = 0; oh < outH; oh++) {
                    int h0 = start(oh, h, outH), h1 = end(oh, h, outH);
                    for (int ow = 0; ow < outW; ow++, o++) {
                        int w0 = start(ow, w, outW), w1 = end(ow, w, outW);
                        double g = dyc.getAt(dyc.offset + o) / ((h1 - h0) * (w1 - w0));
                        for (int ih = h0; ih < h1; ih++)
                            for (int iw = w0; iw < w1; iw++) {
                                long t = base + (long) ih * w + iw;
                                dx.setAt(t, dx.getAt(t) + g);
                            }
                    }
                }
            }
        }
        return dx;
    }

    private static int start(int i, int in, int out) { return (int) ((long) i * in / out); }
    private static int end(int i, int in, int out) { return (int) (((long) (i + 1) * in + out - 1) / out); }

    private static void checkDy(String op, Tensor dy, int n, int c, int ho, int wo) {
        if (dy.dim() != 4 || dy.shape[0] != n || dy.shape[1] != c || dy.shape[2] != ho || dy.shape[3] != wo)
            throw new IllegalArgumentException("shape mismatch: " + op + " dy " + Shape.str(dy.shape) + " should be [" + n + ", " + c + ", " + ho + ", " + wo + "]");
    }
}
