package fst4j.autograd;

import fst4j.autograd.NN.InterpolateMode;
import fst4j.tensor.DType;
import fst4j.tensor.FlatIndex;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * F.interpolate on [N, C, H, W] for the modes 'nearest', 'nearest-exact', 'bilinear' and 'bicubic' (align_corners true
 * and false for the last two), with torch 1.13's CPU source indices and weights (ATen/native/UpSample.h), and 'area',
 * which is torch's adaptive_avg_pool2d to the output size ({@link NN#adaptiveAvgPool2d}, CPU and CUDA).
 * <p>
 * The other modes are separable: each output element is the width interpolation of one, two or four input rows,
 * interpolated along the height, torch's own order of operations (T = x[., w0] l0 + x[., w1] l1 + ... along W, summed
 * left to right, then T[h0] l0' + T[h1] l1' + ...: upsample_generic_Nd_kernel_impl's Interpolate<2>). Each
 * axis is a row gather of the tensor with that axis first ({@link NN#embedding}: CPU float32 / float64, CUDA float32),
 * times its weights, so the op is differentiable (the gathers' backward scatters and adds) and runs wherever the
 * gather, permutes and products run, with no kernel of its own. It moves the tensor through two transposed copies
 * per axis, which a fused kernel would not.
 */
final class Interpolate {
    private Interpolate() {}

    /**
     * One axis: output position i reads input rows idx[j][i] for each tap j (one for the nearest modes, two for bilinear,
     * four for bicubic), weighted by w[j][i] (null for the nearest modes). Never mutated.
     */
    record Axis(int[][] idx, double[][] w) {
        int taps() { return idx.length; }
    }

    /** What one axis's indices and weights depend on (the scale only where given: NaN otherwise, equal to itself here). */
    record AxisKey(int in, int out, double scale, InterpolateMode mode, boolean alignCorners, DType dtype) {}

    /**
     * The axes built lately, host arrays only (no off-heap memory, so nothing to free): a model resizing the same
     * geometry every step builds its indices and weights once. Bounded, least recently used dropped. Shared by every
     * thread, so guarded by its own lock (an access-ordered map moves an entry on every get).
     */
    private static final int AXES = 64;
    private static final java.util.LinkedHashMap<AxisKey, Axis> axes = new java.util.LinkedHashMap<>(16, 0.75f, true) {
        @Override protected boolean removeEldestEntry(java.util.Map.Entry<AxisKey, Axis> e) { return size() > AXES; }
    };
    private static int axisBuilds;

    /** {@link #axis}, from the cache of recent axes where it is there; null where the axis is the identity. */
    static Axis axisCached(AxisKey k) {
        // bilinear copies where the sizes are equal, whatever the scale, and nearest where no scale is given (see axis)
        if (k.in() == k.out() && (k.mode() == InterpolateMode.BILINEAR || k.mode() == InterpolateMode.NEAREST && !(k.scale() > 0))) return null;
        synchronized (axes) {
            Axis a = axes.get(k);
            if (a == null) {
                a = axis(k.in(), k.out(), k.scale(), k.mode(), k.alignCorners(), k.dtype());
                axes.put(k, a);
                axisBuilds++;
            }
            return a;
        }
    }

    /** Tests: how many axes have been built, and forgetting them all (the uncached path's reference). */
    static int axisBuilds() { synchronized (axes) { return axisBuilds; } }

    static void clearAxes() { synchronized (axes) { axes.clear(); } }

    /**
     * scale: the user's scale factor for this axis (torch passes it to the kernel when recompute_scale_factor is not
     * set), or NaN where an output size was given. Null where the axis is the identity (nothing to do).
     */
    static Axis axis(int in, int out, double scale, InterpolateMode mode, boolean alignCorners, DType dt) {
        boolean f32 = dt == DType.F32;
        boolean given = scale > 0;   // torch's compute_scales_value: a scale that is present and > 0, else in / out
        if (mode == InterpolateMode.AREA) throw new IllegalArgumentException("interpolate: mode 'area' is adaptive average pooling, not separable taps");
        if (mode == InterpolateMode.NEAREST_EXACT) return InterpolateTaps.nearestExact(in, out, scale, dt);
        if (mode == InterpolateMode.BICUBIC) return InterpolateTaps.bicubic(in, out, scale, alignCorners, dt);
        if (mode == InterpolateMode.NEAREST) {
            // the forward of torch 1.13's NCHW kernel (HelperInterpNearest): floorf(scale * i) at most in - 1, OpenCV's
            // INTER_NEAREST, with the scale in the tensor's type (a float product for float32; for float64 a double one,
            // rounded to float by floorf's argument) and no shortcut: a given scale that floors to in or 2 in rows
            // still moves indices (1.25 on 2 rows reads 0, 0; 2.2 on 3 reads 0, 0, 0, 1, 1, 2). nearest_idx's copy and
            // i / 2 shortcuts are only its backward's and its channels-last kernel's; without a scale they agree.
            // Null where the map is the identity, since a gather would copy.
            if (in == out && !given) return null;
            int[] idx = new int[out];
            boolean identity = in == out;
            double sd = given ? 1.0 / scale : (double) in / out;
            float s = given ? (float) (1.0 / scale) : (float) in / (float) out;
            for (int i = 0; i < out; i++) {
                float real = f32 ? s * (float) i : (float) (sd * i);
                idx[i] = (int) Math.min((long) Math.floor(real), in - 1);
                identity &= idx[i] == i;
            }
            return identity ? null : new Axis(new int[][]{idx}, null);
        }
        if (in == out) return null;   // compute_source_index_and_lambda copies where the sizes are equal, whatever the scale
        // area_pixel_compute_scale and the source index in the tensor's type (opmath_t, float for float32 on the CPU:
        // scale * (i + 0.5) - 0.5 is evaluated in double, since 0.5 is a double, then stored as a float; with align_corners
        // scale * i is a float product), and the weights real - index0 in that type, as compute_source_index_and_lambda
        double s;
        if (alignCorners) s = out > 1 ? (f32 ? (double) ((float) (in - 1) / (float) (out - 1)) : (double) (in - 1) / (out - 1)) : 0;
        else if (f32) s = given ? (float) (1.0 / scale) : (float) in / (float) out;
        else s = given ? 1.0 / scale : (double) in / out;
        int[] i0 = new int[out], i1 = new int[out];
        double[] l0 = new double[out], l1 = new double[out];
        for (int i = 0; i < out; i++) {
            double real = alignCorners ? s * i : Math.max(s * (i + 0.5) - 0.5, 0);   // align_corners=false clamps at 0
            if (f32) real = alignCorners ? (float) s * (float) i : Math.max((float) (s * (i + 0.5) - 0.5), 0f);
            int a = (int) Math.min((long) real, in - 1);
            i0[i] = a;
            i1[i] = a + (a < in - 1 ? 1 : 0);
            if (f32) {
                float lam1 = (float) (real - a);
                l1[i] = lam1;
                l0[i] = 1f - lam1;
            } else {
                l1[i] = real - a;
                l0[i] = 1 - l1[i];
            }
        }
        return new Axis(new int[][]{i0, i1}, new double[][]{l0, l1});
    }

    /**
     * x [N, C, H, W] to [N, C, outH, outW]; scaleH, scaleW the user's scale factors or NaN (see {@link #axis}). Checked by
     * the caller.
     */
    static Var apply(Var x, int outH, int outW, double scaleH, double scaleW, InterpolateMode mode, boolean alignCorners, InterpolateCache cache) {
        int[] s = x.shape();
        int n = s[0], c = s[1], h = s[2], w = s[3];
        DType dt = x.value().dtype();
        // the gathers are NN.embedding's, float32 only on CUDA: refused here by this op's name, not embedding's, and in
        // every case (an axis left as it is gathers nothing, so it used to run where a resized one was refused)
        if (x.value().device() == fst4j.tensor.Device.CUDA && dt != DType.F32)
            throw new UnsupportedOperationException("interpolate on CUDA supports float32 only (its row gathers are NN.embedding's CUDA kernels), got " + dt
                    + " input " + Shape.str(s));
        // F.interpolate's 'area' is adaptive_avg_pool2d to the output size (a scale factor only sets that size)
        if (mode == InterpolateMode.AREA) return NN.adaptiveAvgPool2d(x, outH, outW);
        // the row gathers hold at most 2^31 - 1 elements: refused here, by this op's name, before any axis's index arrays
        // are built (a scale of 1e9 used to fill the Java heap with them before the gather's own refusal was reached)
        for (int[] o : new int[][]{{n, c, outH, outW}, {n, c, h, outW}}) {
            java.math.BigInteger e = java.math.BigInteger.ONE;
            for (int d : o) e = e.multiply(java.math.BigInteger.valueOf(d));
            if (e.compareTo(java.math.BigInteger.valueOf(Integer.MAX_VALUE)) > 0)
                throw new IllegalArgumentException("interpolate: " + (o[2] != outH ? "the width-resized intermediate " : "output ") + Shape.str(o)
                        + " would hold " + e + " elements, more than 2^31 - 1 (mode '" + mode.torchName() + "' resizes by row gathers; input " + Shape.str(s) + ")");
        }
        AxisKey kw = new AxisKey(w, outW, scaleW, mode, alignCorners, dt), kh = new AxisKey(h, outH, scaleH, mode, alignCorners, dt);
        Axis aw = axisCached(kw), ah = axisCached(kh);
        Var t = x;
        if (aw != null) {   // along W first, the inner sum of torch's
            Var rows = x.reshape(n * c * h, w).transpose(0, 1);          // [W, N C H]
            t = gather(rows, kw, aw, cache).transpose(0, 1).reshape(n, c, h, outW);
        }
        if (ah != null) {
            Var rows = t.permute(2, 0, 1, 3).reshape(h, n * c * outW);    // [H, N C outW]
            t = gather(rows, kh, ah, cache).reshape(outH, n, c, outW).permute(1, 2, 0, 3).reshape(n, c, outH, outW);
        }
        return t == x ? x.reshape(s) : t;   // an identity still gives a new Var, as torch returns a new tensor
    }

    /**
     * rows [in, D] to [out, D]: row i is rows[idx[0][i]] (nearest modes), or rows[idx[0][i]] w[0][i] + rows[idx[1][i]]
     * w[1][i] + ..., summed left to right as torch does. Where there is a cache, the gathers read its index tables and
     * the products its weights (as references of their own, so a graph still holding them outlives an eviction or the
     * cache's close): nothing is built or copied to the device per call. Else the gathers take the host indices (copied
     * down per call on CUDA) and the weights [out, 1], in rows' dtype on its device, are made for this call.
     */
    private static Var gather(Var rows, AxisKey k, Axis a, InterpolateCache cache) {
        if (cache == null) return gather(rows, a, null, a.w() == null ? null : weights(k, a, rows.value().device()));
        try (InterpolateCache.Taps t = cache.taps(k, a, rows.value().device())) {
            // new references in an array of their own, which gather below owns (and closes); t's own are closed with t
            // (written back into t's array, they were overwritten and never closed: the weights outlived the cache)
            Tensor[] ws = t.weights() == null ? null : new Tensor[t.weights().length];
            if (ws != null) for (int j = 0; j < ws.length; j++) ws[j] = t.weights()[j].alias();
            return gather(rows, a, t.tables(), ws);
        }
    }

    /** The gathers (by tables where given, else by a's indices) and the weighted sum; closes ws (null for the nearest modes). */
    private static Var gather(Var rows, Axis a, fst4j.tensor.RowIndex[] tables, Tensor[] ws) {
        int out = a.idx()[0].length;
        Var[] wv = ws == null ? null : new Var[ws.length];
        try {
            if (ws != null) for (int j = 0; j < ws.length; j++) wv[j] = Var.of(ws[j]);
            Var t = null;
            for (int j = 0; j < a.taps(); j++) {
                Var r = tables != null ? new RowGather(tables[j]).apply(rows) : NN.embedding(rows, a.idx()[j], out);
                if (wv != null) r = r.mul(wv[j]);
                t = t == null ? r : t.add(r);
            }
            return t;
        } finally {
            // the Vars' references only (a Var made of a tensor owns it); the graph keeps its own. Those never wrapped closed here.
            if (ws != null) for (int j = 0; j < ws.length; j++) if (wv[j] != null) wv[j].close(); else ws[j].close();
        }
    }

    /** a's weights, one [out, 1] tensor per tap, of k's dtype on device (float32: each double rounded once, as before). */
    static Tensor[] weights(AxisKey k, Axis a, fst4j.tensor.Device device) {
        int[] shape = {a.idx()[0].length, 1};
        Tensor[] ws = new Tensor[a.taps()];
        try {
            for (int j = 0; j < ws.length; j++)
                try (Tensor h = FlatIndex.ofDoubles(a.w()[j], k.dtype(), shape)) { ws[j] = h.to(device); }
            return ws;
        } catch (RuntimeException | Error e) {
            for (Tensor t : ws) if (t != null) t.close();
            throw e;
        }
    }

    /** Checks x's rank and sizes and the mode's options; throws IllegalArgumentException naming the problem. */
    static void check(int[] s, int outH, int outW, InterpolateMode mode, boolean alignCorners) {
        if (mode == null) throw new IllegalArgumentException("interpolate: mode is null; use one of InterpolateMode's (NEAREST, NEAREST_EXACT, BILINEAR, BICUBIC, AREA)");
        if (s.length != 4) throw new IllegalArgumentException("wrong rank: interpolate needs input [N, C, H, W], got " + Shape.str(s));
        if (s[2] <= 0 || s[3] <= 0) throw new IllegalArgumentException("interpolate: input height and width must be positive, got " + Shape.str(s));
        if (outH <= 0 || outW <= 0)
            throw new IllegalArgumentException("interpolate: output size " + outH + "x" + outW + " must be positive (input " + Shape.str(s) + ")");
        if (alignCorners && !mode.takesAlignCorners())
            throw new IllegalArgumentException("interpolate: align_corners applies to bilinear and bicubic only (torch refuses it with mode '" + mode.torchName() + "')");
    }
}
