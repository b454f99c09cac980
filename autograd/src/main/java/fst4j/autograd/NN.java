package fst4j.autograd;

import fst4j.tensor.Conv;
import fst4j.tensor.Elementwise;
import fst4j.tensor.Loss;
import fst4j.tensor.Norm;
import fst4j.tensor.Pool;
import fst4j.tensor.Rng;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * Differentiable neural-network ops (torch.nn.functional): each a Function whose forward and backward
 * call the kernels of fst4j.tensor (Conv, Pool, Norm, Loss). Layout NCHW.
 */
public final class NN {
    private NN() {}

    /** Dense conv2d with square kernel, stride and padding; bias may be null. (Sparse convs: see Gemm3.) */
    public static Var conv2d(Var x, Var w, Var bias, int stride, int padding) {
        return bias == null ? new Conv2d(stride, padding).apply(x, w) : new Conv2d(stride, padding).apply(x, w, bias);
    }

    /**
     * Dense conv2d of any geometry torch's F.conv2d takes: x [N, Cin, H, W], w [Cout, Cin / groups, kh, kw], bias
     * [Cout] or null, per-axis stride, padding and dilation, groups ({@link ConvParams}). A plain geometry (square
     * kernel, one stride, one padding, no dilation, one group) is {@link #conv2d(Var, Var, Var, int, int)}; any other
     * runs the general path of {@link Layers#conv2d(Gemm3, Var, Var, Var, ConvParams)} with dense GEMMs.
     */
    public static Var conv2d(Var x, Var w, Var bias, ConvParams p) {
        int[] ws = w.shape();
        if (p.plain() && ws.length == 4 && ws[2] == ws[3]) return conv2d(x, w, bias, p.sh(), p.ph());
        return Layers.conv2d(new Gemm3(SparseConfig.Method.DENSE.config()), x, w, bias, p);
    }

    /**
     * F.conv_transpose2d(x, w, bias, stride, padding, output_padding, groups, dilation) with one value per argument for
     * both axes: see {@link #convTranspose2d(Var, Var, Var, ConvParams, int, int)}.
     */
    public static Var convTranspose2d(Var x, Var w, Var bias, int stride, int padding, int outputPadding, int groups, int dilation) {
        return convTranspose2d(x, w, bias, ConvParams.of(stride, padding, dilation, groups), outputPadding, outputPadding);
    }

    /**
     * F.conv_transpose2d: x [N, Cin, H, W], w [Cin, Cout / groups, kh, kw] (torch's layout), bias [Cout] or null; p's
     * per-axis stride, padding and dilation and its groups, and output padding oph x opw (each below its axis's stride or
     * dilation, as torch requires). y [N, Cout, Ho, Wo] with Ho = (H - 1) sh - 2 ph + dh (kh - 1) + oph + 1. Dense GEMMs
     * (no sparsity slots), CPU float32 / float64 and CUDA float32: see {@link ConvTranspose2d}.
     */
    public static Var convTranspose2d(Var x, Var w, Var bias, ConvParams p, int oph, int opw) {
        p.checkOutputPadding(oph, opw);   // refuses bad geometry before anything runs
        int[] ys = ConvTranspose2d.outputShape(x.shape(), w.shape(), p, oph, opw);
        if (bias != null && (bias.shape().length != 1 || bias.shape()[0] != ys[1]))
            throw new IllegalArgumentException("shape mismatch: convTranspose2d bias " + Shape.str(bias.shape()) + " for weight " + Shape.str(w.shape())
                    + " with groups " + p.groups() + " needs [" + ys[1] + "]");
        Var y = new ConvTranspose2d(p, oph, opw).apply(x, w);
        return bias == null ? y : y.add(bias.reshape(1, -1, 1, 1));
    }

    /**
     * F.interpolate's modes here: 'nearest' (torch's legacy floor rule), 'nearest-exact' (torch >= 1.11's rounding rule),
     * 'bilinear', 'bicubic' (A = -0.75) and 'area' (adaptive average pooling to the output size).
     */
    public enum InterpolateMode {
        NEAREST("nearest"), NEAREST_EXACT("nearest-exact"), BILINEAR("bilinear"), BICUBIC("bicubic"), AREA("area");

        private final String torchName;
        InterpolateMode(String torchName) { this.torchName = torchName; }

        /** The mode's name in torch ('nearest-exact' for NEAREST_EXACT). */
        public String torchName() { return torchName; }

        /** Whether align_corners may be set: the interpolating modes only, as torch's F.interpolate allows it. */
        public boolean takesAlignCorners() { return this == BILINEAR || this == BICUBIC; }
    }

    /**
     * F.interpolate(x, size=(outH, outW), mode, align_corners) on x [N, C, H, W]: NEAREST reads input index
     * min(floor(i * in / out), in - 1), NEAREST_EXACT min(floor((i + 0.5) in / out), in - 1); BILINEAR with alignCorners
     * reads source i (in - 1) / (out - 1), without it max((i + 0.5) in / out - 0.5, 0), weighting the two neighbours;
     * BICUBIC reads the same source (not clamped at 0) and weights the four neighbours floor(src) - 1 .. floor(src) + 2,
     * each clamped into the input, with Keys' cubic convolution (A = -0.75); AREA is {@link #adaptiveAvgPool2d} to the
     * output size (torch 1.13's CPU formulas, scale in the tensor's type). alignCorners must be false for NEAREST,
     * NEAREST_EXACT and AREA (torch refuses it there). Differentiable; CPU float32 / float64, CUDA float32 (see
     * {@link Interpolate}).
     */
    public static Var interpolate(Var x, int outH, int outW, InterpolateMode mode, boolean alignCorners) {
        return interpolate(x, outH, outW, mode, alignCorners, null);
    }

    /** {@link #interpolate}, bilinear weights kept on the device by cache (null: made for this call). */
    static Var interpolate(Var x, int outH, int outW, InterpolateMode mode, boolean alignCorners, InterpolateCache cache) {
        Interpolate.check(x.shape(), outH, outW, mode, alignCorners);
        return Interpolate.apply(x, outH, outW, Double.NaN, Double.NaN, mode, alignCorners, cache);
    }

    /**
     * F.interpolate(x, scale_factor=(scaleH, scaleW), mode, align_corners) with recompute_scale_factor unset (torch's
     * default): the output is floor(H scaleH) x floor(W scaleW), and the source indices use 1 / scale as torch's kernel
     * does (not in / out, which differs where the product is not whole), except bilinear and bicubic with alignCorners,
     * which use (in - 1) / (out - 1), and AREA, which only pools to the floored size. Scales must be finite and positive.
     */
    public static Var interpolateScale(Var x, double scaleH, double scaleW, InterpolateMode mode, boolean alignCorners) {
        return interpolateScale(x, scaleH, scaleW, mode, alignCorners, null);
    }

    /** {@link #interpolateScale}, bilinear weights kept on the device by cache (null: made for this call). */
    static Var interpolateScale(Var x, double scaleH, double scaleW, InterpolateMode mode, boolean alignCorners, InterpolateCache cache) {
        int[] s = x.shape();
        if (!(scaleH > 0) || !(scaleW > 0) || Double.isInfinite(scaleH) || Double.isInfinite(scaleW))
            throw new IllegalArgumentException("interpolate: scale factors must be finite and positive, got " + scaleH + "x" + scaleW);
        if (s.length != 4) throw new IllegalArgumentException("wrong rank: interpolate needs input [N, C, H, W], got " + Shape.str(s));
        double oh = Math.floor(s[2] * scaleH), ow = Math.floor(s[3] * scaleW);
        if (oh > Integer.MAX_VALUE || ow > Integer.MAX_VALUE)
            throw new IllegalArgumentException("interpolate: output size " + oh + "x" + ow + " exceeds 2^31 - 1 (input " + Shape.str(s) + ")");
        Interpolate.check(s, (int) oh, (int) ow, mode, alignCorners);
        return Interpolate.apply(x, (int) oh, (int) ow, scaleH, scaleW, mode, alignCorners, cache);
    }

    static final class Conv2d extends Function {
        private final int stride, padding;
        private Tensor x, w;
        Conv2d(int stride, int padding) { this.stride = stride; this.padding = padding; }
        protected Tensor forward(Tensor... in) {
            x = save(in[0]); w = save(in[1]);
            return Conv.conv2d(in[0], in[1], in.length > 2 ? in[2] : null, stride, padding);
        }
        protected Tensor[] backward(Tensor g) {
            Tensor dx = needsGrad(0) ? Conv.conv2dBackwardInput(g, w, x.shape(), stride, padding) : null;
            Tensor dw = needsGrad(1) ? Conv.conv2dBackwardWeight(g, x, w.shape(), stride, padding) : null;
            if (inputs.length == 2) return grads(dx, dw);
            return grads(dx, dw, needsGrad(2) ? Conv.conv2dBackwardBias(g) : null);
        }
    }

    public static Var maxPool2d(Var x, int k, int stride, int padding) { return new MaxPool(k, stride, padding).apply(x); }

    static final class MaxPool extends Function {
        private final int k, stride, padding;
        private Pool.Indices indices;
        private int[] inShape;
        MaxPool(int k, int stride, int padding) { this.k = k; this.stride = stride; this.padding = padding; }
        protected Tensor forward(Tensor... in) {
            inShape = in[0].shape();
            Pool.MaxPool2d r = Pool.maxPool2d(in[0], k, stride, padding);
            indices = retain(r.indices());   // freed with the graph (device memory for a CUDA input)
            return r.output();
        }
        protected Tensor[] backward(Tensor g) { return grads(Pool.maxPool2dBackward(g, indices, inShape)); }
    }

    public static Var avgPool2d(Var x, int k, int stride, int padding) { return new AvgPool(k, stride, padding).apply(x); }

    static final class AvgPool extends Function {
        private final int k, stride, padding;
        private int[] inShape;
        AvgPool(int k, int stride, int padding) { this.k = k; this.stride = stride; this.padding = padding; }
        protected Tensor forward(Tensor... in) { inShape = in[0].shape(); return Pool.avgPool2d(in[0], k, stride, padding); }
        protected Tensor[] backward(Tensor g) { return grads(Pool.avgPool2dBackward(g, inShape, k, stride, padding)); }
    }

    public static Var adaptiveAvgPool2d(Var x, int outH, int outW) { return new AdaptiveAvgPool(outH, outW).apply(x); }

    static final class AdaptiveAvgPool extends Function {
        private final int oh, ow;
        private int[] inShape;
        AdaptiveAvgPool(int oh, int ow) { this.oh = oh; this.ow = ow; }
        protected Tensor forward(Tensor... in) { inShape = in[0].shape(); return Pool.adaptiveAvgPool2d(in[0], oh, ow); }
        protected Tensor[] backward(Tensor g) { return grads(Pool.adaptiveAvgPool2dBackward(g, inShape)); }
    }

    /**
     * Batch norm over N, H, W per channel. In training, batch statistics are used and the running ones
     * (if non-null) updated in place; in eval, the running statistics are used.
     */
    public static Var batchNorm2d(Var x, Var gamma, Var beta, Tensor runningMean, Tensor runningVar,
                                  boolean training, double momentum, double eps) {
        return new BatchNorm(runningMean, runningVar, training, momentum, eps, false).apply(x, gamma, beta);
    }

    /**
     * relu(batchNorm2d(x, ...)) as one function: the ReLU is applied in batch norm's own pass and its mask in batch
     * norm's backward, saving a pass over the activation each way and one tensor. Same values and gradients as the
     * two ops in sequence (tested).
     */
    public static Var batchNorm2dRelu(Var x, Var gamma, Var beta, Tensor runningMean, Tensor runningVar,
                                      boolean training, double momentum, double eps) {
        return new BatchNorm(runningMean, runningVar, training, momentum, eps, true).apply(x, gamma, beta);
    }

    /**
     * relu(batchNorm2d(x, ...) + add) as one function: a ResNet block's end (relu(bn2(conv2(h)) + shortcut)). In
     * training on the CPU's native path the add and the ReLU run in batch norm's own pass, and the backward writes
     * add's gradient (dy masked by the ReLU) in its first pass: the batch norm's output is never stored and read back,
     * nor is the masked gradient read again. Same values and gradients as {@link #addRelu} of {@link #batchNorm2d}
     * (tested bit for bit); eval mode, and an add of another shape, dtype or device, run those two.
     */
    public static Var batchNorm2dAddRelu(Var x, Var gamma, Var beta, Var add, Tensor runningMean, Tensor runningVar,
                                         boolean training, double momentum, double eps) {
        Tensor xv = x.value(), av = add.value();
        if (!training || !java.util.Arrays.equals(av.shape(), xv.shape()) || av.dtype() != xv.dtype() || av.device() != xv.device())
            return addRelu(batchNorm2d(x, gamma, beta, runningMean, runningVar, training, momentum, eps), add);
        return new BatchNormAddRelu(runningMean, runningVar, momentum, eps).apply(x, gamma, beta, add);
    }

    /**
     * maxPool2d(batchNorm2dRelu(x, ...), 2, 2, 0) as one function (a CNN's conv - BN - ReLU - pool): in training on the
     * CPU's native path the ReLU's output is pooled plane by plane as it is computed and never stored, and the backward
     * expands the pooled gradient plane by plane inside batch norm's own passes, with the ReLU's mask recomputed from
     * x. Same values and gradients as the two functions (tested bit for bit); eval mode, and tensors off that path, run
     * them.
     */
    public static Var batchNorm2dReluMaxPool2(Var x, Var gamma, Var beta, Tensor runningMean, Tensor runningVar,
                                              boolean training, double momentum, double eps) {
        if (!training || !Norm.reluMaxPool2Fusable(x.value(), gamma == null ? null : gamma.value(), beta == null ? null : beta.value(),
                runningMean, runningVar))
            return maxPool2d(batchNorm2dRelu(x, gamma, beta, runningMean, runningVar, training, momentum, eps), 2, 2, 0);
        return new BatchNormReluMaxPool(runningMean, runningVar, momentum, eps).apply(x, gamma, beta);
    }

    static final class BatchNormReluMaxPool extends Function {
        private final Tensor runningMean, runningVar;
        private final double momentum, eps;
        private Tensor x, gamma, mean, invStd, affine;
        private fst4j.tensor.Pool.Indices indices;
        BatchNormReluMaxPool(Tensor rm, Tensor rv, double momentum, double eps) {
            this.runningMean = rm; this.runningVar = rv; this.momentum = momentum; this.eps = eps;
        }
        @Override public String name() { return "BatchNorm2dReluMaxPool"; }
        protected Tensor forward(Tensor... in) {
            x = save(in[0]); gamma = save(in[1]);
            Norm.BatchNormPool r = Norm.batchNorm2dReluMaxPool2Train(in[0], in[1], in[2], runningMean, runningVar, momentum, eps);
            mean = save(r.mean()); invStd = save(r.invStd()); affine = save(r.reluAffine());
            r.mean().close(); r.invStd().close(); r.reluAffine().close();
            indices = retain(r.indices());
            return r.output();
        }
        protected Tensor[] backward(Tensor g) {
            Norm.BatchNormGrads r = Norm.batchNorm2dReluMaxPool2Backward(g, indices, x, gamma, mean, invStd, affine);
            return grads(needsGrad(0) ? r.dx() : close(r.dx()), needsGrad(1) ? r.dgamma() : close(r.dgamma()),
                    needsGrad(2) ? r.dbeta() : close(r.dbeta()));
        }
    }

    static final class BatchNormAddRelu extends Function {
        private final Tensor runningMean, runningVar;
        private final double momentum, eps;
        private Tensor x, gamma, mean, invStd, out;
        BatchNormAddRelu(Tensor rm, Tensor rv, double momentum, double eps) {
            this.runningMean = rm; this.runningVar = rv; this.momentum = momentum; this.eps = eps;
        }
        @Override public String name() { return "BatchNorm2dAddRelu"; }
        protected Tensor forward(Tensor... in) {
            x = save(in[0]); gamma = save(in[1]);
            Norm.BatchNorm r = Norm.batchNorm2dTrain(in[0], in[1], in[2], runningMean, runningVar, momentum, eps, true, in[3]);
            mean = save(r.mean()); invStd = save(r.invStd());
            r.mean().close(); r.invStd().close();
            out = save(r.output());
            return r.output();
        }
        protected Tensor[] backward(Tensor g) {
            Norm.BatchNormGrads r = Norm.batchNorm2dBackward(g, x, gamma, mean, invStd, out, null, needsGrad(3));
            return grads(needsGrad(0) ? r.dx() : close(r.dx()), needsGrad(1) ? r.dgamma() : close(r.dgamma()),
                    needsGrad(2) ? r.dbeta() : close(r.dbeta()), r.dyMasked());
        }
    }

    static final class BatchNorm extends Function {
        private Tensor runningMean, runningVar;
        private final boolean training, relu;
        private final double momentum, eps;
        private Tensor x, gamma, mean, invStd, out, reluAffine;
        BatchNorm(Tensor rm, Tensor rv, boolean training, double momentum, double eps, boolean relu) {
            this.runningMean = rm; this.runningVar = rv; this.training = training; this.momentum = momentum; this.eps = eps; this.relu = relu;
        }
        @Override public String name() { return relu ? "BatchNorm2dRelu" : "BatchNorm2d"; }
        protected Tensor forward(Tensor... in) {
            x = save(in[0]); gamma = save(in[1]);
            if (!training) {
                // eval's backward reads the running statistics: saved, so that a training forward moving them before it is refused
                if (runningMean != null) runningMean = save(runningMean);
                if (runningVar != null) runningVar = save(runningVar);
                Tensor y = Norm.batchNorm2dEval(in[0], in[1], in[2], runningMean, runningVar, eps);
                if (!relu) return y;
                try (y) { Tensor r = y.relu(); out = save(r); return r; }
            }
            Norm.BatchNorm r = Norm.batchNorm2dTrain(in[0], in[1], in[2], runningMean, runningVar, momentum, eps, relu);
            mean = save(r.mean()); invStd = save(r.invStd());
            r.mean().close(); r.invStd().close();
            // the ReLU's mask: recomputed from x by the native backward where the forward kept its scale and shift, else
            // read from the output (kept either way: any path can run the backward, and an output changed in place is
            // refused as before)
            if (r.reluAffine() != null) { reluAffine = save(r.reluAffine()); r.reluAffine().close(); }
            if (relu) out = save(r.output());
            return r.output();
        }
        protected Tensor[] backward(Tensor g) {
            Norm.BatchNormGrads r;
            if (training) r = Norm.batchNorm2dBackward(g, x, gamma, mean, invStd, out, reluAffine);
            else if (!relu) r = Norm.batchNorm2dEvalBackward(g, x, gamma, runningMean, runningVar, eps);
            else try (Tensor gm = Elementwise.reluBackward(g, out)) { r = Norm.batchNorm2dEvalBackward(gm, x, gamma, runningMean, runningVar, eps); }
            return grads(needsGrad(0) ? r.dx() : close(r.dx()), needsGrad(1) ? r.dgamma() : close(r.dgamma()), needsGrad(2) ? r.dbeta() : close(r.dbeta()));
        }
    }

    private static Tensor close(Tensor t) { t.close(); return null; }

    /**
     * F.batch_norm on [N, C] or [N, C, L] (torch.nn.BatchNorm1d's input): statistics per channel over N (and L). The
     * same normalisation as {@link #batchNorm2d} over [N, C, L, 1], which it runs on a reshaped view, so running
     * statistics, momentum, eps, training and eval mode mean what they mean there (and in torch). gamma and beta may
     * be null (affine=False), and so may both running statistics (track_running_stats=False: batch statistics always,
     * pass training true).
     */
    public static Var batchNorm1d(Var x, Var gamma, Var beta, Tensor runningMean, Tensor runningVar, boolean training, double momentum, double eps) {
        int[] s = x.shape();
        if (s.length != 2 && s.length != 3)
            throw new IllegalArgumentException("wrong rank: batchNorm1d needs input [N, C] or [N, C, L], got " + Shape.str(s));
        if ((gamma == null) != (beta == null))
            throw new IllegalArgumentException("batchNorm1d: gamma and beta are given together or not at all (affine), got only " + (gamma == null ? "beta" : "gamma"));
        if (training && (long) s[0] * (s.length == 3 ? s[2] : 1) == 1)   // named with the caller's shape, not batchNorm2d's [N, C, L, 1]
            throw new IllegalArgumentException("batchNorm1d: expected more than 1 value per channel when training, got input " + Shape.str(s)
                    + ": use a batch of at least 2, or eval mode");
        Var x4 = x.reshape(s[0], s[1], s.length == 3 ? s[2] : 1, 1);
        Var y;
        if (gamma != null) {
            y = batchNorm2d(x4, gamma, beta, runningMean, runningVar, training, momentum, eps);
        } else {
            // no affine transform: gamma 1 and beta 0 as constants (batch norm's saved alias of gamma outlives these Vars)
            Tensor xv = x.value();
            try (Var one = Var.of(Tensor.empty(xv.device(), xv.dtype(), s[1]).fill(1.0));
                 Var zero = Var.of(Tensor.zeros(xv.device(), xv.dtype(), s[1]))) {
                y = batchNorm2d(x4, one, zero, runningMean, runningVar, training, momentum, eps);
            }
        }
        return y.reshape(s);
    }

    /** relu(a + b) as one function (a ResNet block's end): one pass, one tensor; the ReLU mask applies to both gradients. */
    public static Var addRelu(Var a, Var b) { return new AddRelu().apply(a, b); }

    static final class AddRelu extends Function {
        private Tensor out;
        protected Tensor forward(Tensor... in) {
            Tensor r = Elementwise.addRelu(in[0], in[1]);
            out = save(r);
            return r;
        }
        protected Tensor[] backward(Tensor g) {
            Tensor m = Elementwise.reluBackward(g, out);
            // the engine sums each gradient down to its input's shape (broadcast adds) and closes both
            return grads(needsGrad(0) ? m : null, needsGrad(1) ? (needsGrad(0) ? m.alias() : m) : null);
        }
    }

    /**
     * Mean cross-entropy of logits [N, C] against labels, with label smoothing eps (0 = none). As torch's
     * {@code F.cross_entropy}, logits [N, C, d1, ..., dk] take one label per position (N*d1*...*dk of them, in the
     * row-major order of [N, d1, ..., dk]) and the mean is over all positions: a sequence model's [B, V, T] or a
     * segmentation's [N, C, H, W] without a reshape of one's own.
     */
    public static Var crossEntropy(Var logits, int[] labels, double smoothing) {
        int[] s = logits.shape();
        if (s.length > 2) {
            long positions = 1;
            for (int i = 0; i < s.length; i++) if (i != 1) positions *= s[i];
            if (labels.length != positions)
                throw new IllegalArgumentException("shape mismatch: crossEntropy of logits " + Shape.str(s) + " needs " + positions
                        + " labels (one per position of [N, d1, ...]), got " + labels.length);
            int[] perm = new int[s.length];   // the classes last: [N, d1, ..., dk, C], then one row per position
            for (int i = 1; i < s.length - 1; i++) perm[i] = i + 1;
            perm[s.length - 1] = 1;
            return new CrossEntropy(labels, smoothing).apply(logits.permute(perm).reshape(-1, s[1]));
        }
        return new CrossEntropy(labels, smoothing).apply(logits);
    }

    static final class CrossEntropy extends Function {
        private final int[] labels;
        private final double smoothing;
        private Tensor grad;
        CrossEntropy(int[] labels, double smoothing) { this.labels = labels.clone(); this.smoothing = smoothing; }
        protected Tensor forward(Tensor... in) {
            Loss.CrossEntropy r = Loss.crossEntropy(in[0], labels, smoothing);
            grad = save(r.grad());
            r.grad().close();
            return r.loss();
        }
        protected Tensor[] backward(Tensor g) { return grads(grad.mul(g.item())); }
    }

    /**
     * Layer norm as torch's F.layer_norm: over the last normalizedShape.length axes of x (which must end in
     * normalizedShape), y = (x - mean) / sqrt(var + eps) * gamma + beta with the biased variance; gamma and beta (each
     * of normalizedShape, or null for none) are optional. Gradients for x, gamma and beta. Composed of named tensor ops
     * (mean, sub, mul, add, pow), so it runs on the CPU and on CUDA with the same formula (x, gamma and beta on one device).
     */
    public static Var layerNorm(Var x, int[] normalizedShape, Var gamma, Var beta, double eps) {
        int[] s = x.shape();
        int k = normalizedShape.length;
        if (k == 0) throw new IllegalArgumentException("layerNorm needs a normalizedShape of at least one axis (the last axes of x), got []");
        boolean fits = k <= s.length;
        StringBuilder want = new StringBuilder("[*");
        for (int i = 0; i < k; i++) {
            want.append(", ").append(normalizedShape[i]);
            fits = fits && s[s.length - k + i] == normalizedShape[i];
        }
        if (!fits)
            throw new IllegalArgumentException("shape mismatch: layerNorm over normalizedShape " + Shape.str(normalizedShape) + " needs input " + want
                    + "], got " + Shape.str(s));
        for (Var p : new Var[]{gamma, beta})
            if (p != null && !java.util.Arrays.equals(p.shape(), normalizedShape))
                throw new IllegalArgumentException("shape mismatch: layerNorm's " + (p == gamma ? "gamma " : "beta ") + Shape.str(p.shape())
                        + " must be normalizedShape " + Shape.str(normalizedShape));
        if (!(eps >= 0) || Double.isInfinite(eps)) throw new IllegalArgumentException("layerNorm: eps must be finite and >= 0, got " + eps);
        int[] axes = new int[k];
        for (int i = 0; i < k; i++) axes[i] = s.length - k + i;
        LayerNorm f = new LayerNorm(axes, eps, gamma != null, beta != null);
        return gamma == null ? (beta == null ? f.apply(x) : f.apply(x, beta)) : (beta == null ? f.apply(x, gamma) : f.apply(x, gamma, beta));
    }

    /**
     * xhat = (x - mean) rstd, y = xhat gamma + beta; dx = rstd (d - mean(d) - xhat mean(d xhat)) with d = g gamma,
     * dgamma = g xhat and dbeta = g (the engine sums both over the leading axes).
     */
    static final class LayerNorm extends Function {
        private final int[] axes;
        private final double eps;
        private final boolean hasGamma, hasBeta;
        private Tensor xhat, rstd, gamma;
        LayerNorm(int[] axes, double eps, boolean hasGamma, boolean hasBeta) { this.axes = axes; this.eps = eps; this.hasGamma = hasGamma; this.hasBeta = hasBeta; }
        protected Tensor forward(Tensor... in) {
            try (Tensor mu = in[0].mean(true, axes); Tensor xc = in[0].sub(mu); Tensor sq = xc.mul(xc); Tensor var = sq.mean(true, axes);
                 Tensor ve = var.add(eps); Tensor r = ve.pow(-0.5); Tensor xh = xc.mul(r)) {
                rstd = save(r); xhat = save(xh);
                if (hasGamma) gamma = save(in[1]);
                try (Tensor scaled = hasGamma ? xh.mul(in[1]) : xh.alias()) { return hasBeta ? scaled.add(in[in.length - 1]) : scaled.alias(); }
            }
        }
        protected Tensor[] backward(Tensor g) {
            Tensor[] out = new Tensor[inputs.length];
            if (needsGrad(0))
                try (Tensor d = hasGamma ? g.mul(gamma) : g.alias(); Tensor md = d.mean(true, axes); Tensor dx = d.mul(xhat); Tensor mdx = dx.mean(true, axes);
                     Tensor t = xhat.mul(mdx); Tensor u = d.sub(md); Tensor v = u.sub(t)) { out[0] = v.mul(rstd); }
            if (hasGamma && needsGrad(1)) out[1] = g.mul(xhat);
            if (hasBeta && needsGrad(inputs.length - 1)) out[inputs.length - 1] = g.alias();
            return out;
        }
    }

    // ------------------------------------------------------------------ losses (torch.nn.functional's, with reduction)

    /** How a loss's per-element values are reduced, as torch's {@code reduction='none'|'mean'|'sum'}. */
    public enum Reduction { NONE, MEAN, SUM }

    private static Var reduce(Var perElement, Reduction r) {
        return switch (r) { case NONE -> perElement; case SUM -> perElement.sum(); case MEAN -> perElement.mean(); };
    }

    /** input and target of one shape (torch broadcasts some losses with only a warning; a mismatch here is refused). */
    private static void sameShape(String loss, Var input, Var target, Reduction r) {
        if (r == null) throw new IllegalArgumentException(loss + ": reduction is null; use Reduction.NONE, MEAN or SUM");
        if (!java.util.Arrays.equals(input.shape(), target.shape()))
            throw new IllegalArgumentException("shape mismatch: " + loss + " of input " + Shape.str(input.shape()) + " and target "
                    + Shape.str(target.shape()) + "; they must have the same shape");
    }

    /** torch's mse_loss: (input - target)^2, reduced. Both may require a gradient. CPU and CUDA (named ops). */
    public static Var mseLoss(Var input, Var target, Reduction r) {
        sameShape("mseLoss", input, target, r);
        return reduce(new SquaredError().apply(input, target), r);
    }

    public static Var mseLoss(Var input, Var target) { return mseLoss(input, target, Reduction.MEAN); }

    /** (x - y)^2; d/dx = 2 (x - y), d/dy = -d/dx. */
    static final class SquaredError extends Function {
        private Tensor d;
        protected Tensor forward(Tensor... in) { try (Tensor t = in[0].sub(in[1])) { d = save(t); return t.mul(t); } }
        protected Tensor[] backward(Tensor g) {
            try (Tensor gd = g.mul(d); Tensor gx = gd.mul(2.0)) { return grads(needsGrad(0) ? gx.alias() : null, needsGrad(1) ? gx.neg() : null); }
        }
    }

    /** torch's l1_loss: |input - target|, reduced; the gradient at input == target is 0 (sign(0)). CPU and CUDA (named ops). */
    public static Var l1Loss(Var input, Var target, Reduction r) {
        sameShape("l1Loss", input, target, r);
        return reduce(new AbsoluteError().apply(input, target), r);
    }

    public static Var l1Loss(Var input, Var target) { return l1Loss(input, target, Reduction.MEAN); }

    /** |x - y|; d/dx = sign(x - y) as g where d > 0 minus g where d < 0 (ReLU's backward twice: named ops, so CUDA too). */
    static final class AbsoluteError extends Function {
        private Tensor d;
        protected Tensor forward(Tensor... in) { try (Tensor t = in[0].sub(in[1])) { d = save(t); return t.abs(); } }
        protected Tensor[] backward(Tensor g) {
            try (Tensor nd = d.neg(); Tensor pos = Elementwise.reluBackward(g, d); Tensor neg = Elementwise.reluBackward(g, nd);
                 Tensor gx = pos.sub(neg)) {
                return grads(needsGrad(0) ? gx.alias() : null, needsGrad(1) ? gx.neg() : null);
            }
        }
    }

    /**
     * torch's smooth_l1_loss: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target), reduced; beta 0
     * is the L1 loss. CPU and CUDA (Loss.smoothL1 and its backward: the same formula on both).
     */
    public static Var smoothL1Loss(Var input, Var target, Reduction r, double beta) {
        sameShape("smoothL1Loss", input, target, r);
        if (!(beta >= 0) || Double.isInfinite(beta)) throw new IllegalArgumentException("smoothL1Loss: beta must be finite and >= 0, got " + beta);
        return reduce(new SmoothL1(beta).apply(input, target), r);
    }

    public static Var smoothL1Loss(Var input, Var target) { return smoothL1Loss(input, target, Reduction.MEAN, 1.0); }

    /** Huber's branches on d = x - y; d/dx = d / beta inside, sign(d) outside. */
    static final class SmoothL1 extends Function {
        private final double beta;
        private Tensor d;
        SmoothL1(double beta) { this.beta = beta; }
        protected Tensor forward(Tensor... in) {
            try (Tensor t = in[0].sub(in[1])) {
                d = save(t);
                return Loss.smoothL1(t, beta);
            }
        }
        protected Tensor[] backward(Tensor g) {
            try (Tensor gx = Loss.smoothL1Backward(g, d, beta)) {
                return grads(needsGrad(0) ? gx.alias() : null, needsGrad(1) ? gx.neg() : null);
            }
        }
    }

    /**
     * torch's binary_cross_entropy_with_logits: -[p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))] per element, in the
     * stable form (1 - y) x + (1 + (p - 1) y) softplus(-x) with softplus(-x) = max(-x, 0) + log1p(exp(-|x|)) (no overflow
     * for large |x|). posWeight p (a constant broadcast against input, torch's pos_weight, e.g. [C]) may be null (1).
     * Targets are probabilities in [0, 1] (not checked, as in torch) and may require a gradient. CPU and CUDA (Loss's element
     * formulas, the same on both); posWeight must be on input's device.
     */
    public static Var binaryCrossEntropyWithLogits(Var input, Var target, Tensor posWeight, Reduction r) {
        sameShape("binaryCrossEntropyWithLogits", input, target, r);
        if (posWeight != null) {
            posWeight.check();
            if (posWeight.device() != input.value().device())
                throw new IllegalArgumentException("device mismatch: binaryCrossEntropyWithLogits got input on " + input.value().device() + " and posWeight on "
                        + posWeight.device() + "; move them to one device with to(Device)");
            int[] b;
            try { b = Shape.broadcast(posWeight.shape(), input.shape()); } catch (IllegalArgumentException e) { b = null; }
            if (!java.util.Arrays.equals(b, input.shape()))
                throw new IllegalArgumentException("shape mismatch: binaryCrossEntropyWithLogits posWeight " + Shape.str(posWeight.shape())
                        + " does not broadcast to input " + Shape.str(input.shape()));
        }
        return reduce(new BceWithLogits(posWeight).apply(input, target), r);
    }

    public static Var binaryCrossEntropyWithLogits(Var input, Var target) { return binaryCrossEntropyWithLogits(input, target, null, Reduction.MEAN); }

    /**
     * (1 - y) x + w softplus(-x), w = 1 + (p - 1) y; d/dx = (1 - y) - w sigmoid(-x) (sigmoid(x) - y when p = 1),
     * d/dy = (p - 1) softplus(-x) - x.
     */
    static final class BceWithLogits extends Function {
        private final Tensor p;   // pos_weight or null
        private Tensor x, y, sp, w;
        BceWithLogits(Tensor posWeight) { p = posWeight == null ? null : save(posWeight); }
        protected Tensor forward(Tensor... in) {
            x = save(in[0]); y = save(in[1]);
            try (Tensor s = Loss.softplusNeg(in[0]); Tensor lin = Loss.bceLinear(in[0], in[1])) {
                sp = save(s);
                if (p == null) return lin.add(s);
                try (Tensor pm1 = p.add(-1); Tensor t = pm1.mul(in[1]); Tensor ww = t.add(1); Tensor ws = ww.mul(s)) {
                    w = save(ww);
                    return lin.add(ws);
                }
            }
        }
        protected Tensor[] backward(Tensor g) {
            Tensor gx = null, gy = null;
            if (needsGrad(0)) {
                try (Tensor sn = Loss.sigmoidNeg(x); Tensor wsn = w == null ? sn.alias() : w.mul(sn); Tensor oneMinusY = Elementwise.rsubScalar(1, y);
                     Tensor dx = oneMinusY.sub(wsn)) { gx = g.mul(dx); }
            }
            if (needsGrad(1)) {
                if (p == null) try (Tensor gxx = g.mul(x)) { gy = gxx.neg(); }
                else try (Tensor pm1 = p.add(-1); Tensor t = pm1.mul(sp); Tensor dy = t.sub(x)) { gy = g.mul(dy); }
            }
            return grads(gx, gy);
        }
    }

    /**
     * torch's nll_loss: -logProbs[i, labels[i]] for logProbs [N, C] (log-probabilities, e.g. logSoftmax's) and N labels in
     * [0, C), reduced; a label equal to ignoreIndex (torch's default -100) adds nothing and MEAN divides by the labels not
     * ignored (NaN when all are, as torch). No class weights. CPU and CUDA: a one-hot mask made on the host selects each
     * row's label on logProbs' device (ReLU's backward as the select, so a -inf or NaN at another class adds nothing).
     */
    public static Var nllLoss(Var logProbs, int[] labels, Reduction r, int ignoreIndex) {
        if (r == null) throw new IllegalArgumentException("nllLoss: reduction is null; use Reduction.NONE, MEAN or SUM");
        int[] s = logProbs.shape();
        if (s.length != 2) throw new IllegalArgumentException("wrong rank: nllLoss needs log-probabilities [N, C], got " + Shape.str(s));
        if (labels.length != s[0]) throw new IllegalArgumentException("shape mismatch: " + labels.length + " labels for log-probabilities " + Shape.str(s));
        int kept = 0;
        for (int i = 0; i < labels.length; i++) {
            if (labels[i] == ignoreIndex) continue;
            if (labels[i] < 0 || labels[i] >= s[1])
                throw new IllegalArgumentException("label " + labels[i] + " at index " + i + " out of range [0, " + s[1] + ") for log-probabilities "
                        + Shape.str(s) + " (ignoreIndex " + ignoreIndex + ")");
            kept++;
        }
        Var each = new Nll(labels, ignoreIndex).apply(logProbs);
        return r == Reduction.MEAN ? each.sum().mul(1.0 / kept) : reduce(each, r);
    }

    public static Var nllLoss(Var logProbs, int[] labels) { return nllLoss(logProbs, labels, Reduction.MEAN, -100); }

    /** -sum over C of x where m > 0, m the one-hot mask of the labels (a zero row where ignored); d/dx = -g m. */
    static final class Nll extends Function {
        private final int[] labels;
        private final int ignore;
        private Tensor m;
        Nll(int[] labels, int ignore) { this.labels = labels.clone(); this.ignore = ignore; }
        protected Tensor forward(Tensor... in) {
            try (Tensor host = Tensor.zeros(in[0].dtype(), in[0].shape())) {
                for (int i = 0; i < labels.length; i++) if (labels[i] != ignore) host.set(1, i, labels[i]);
                try (Tensor mask = host.to(in[0].device()); Tensor picked = Elementwise.reluBackward(in[0], mask); Tensor s = picked.sum(false, 1)) {
                    m = save(mask);
                    return s.neg();
                }
            }
        }
        protected Tensor[] backward(Tensor g) {
            try (Tensor gc = g.reshape(labels.length, 1); Tensor t = gc.mul(m)) { return grads(t.neg()); }
        }
    }

    public static Var logSoftmax(Var x, int axis) { return new LogSoftmax(axis, true).apply(x); }
    public static Var softmax(Var x, int axis) { return new LogSoftmax(axis, false).apply(x); }

    static final class LogSoftmax extends Function {
        private final int axis;
        private final boolean log;
        private Tensor y;
        LogSoftmax(int axis, boolean log) { this.axis = axis; this.log = log; }
        protected Tensor forward(Tensor... in) {
            Tensor out = log ? Loss.logSoftmax(in[0], axis) : Loss.softmax(in[0], axis);
            y = save(out);
            return out;
        }
        protected Tensor[] backward(Tensor g) { return grads(log ? Loss.logSoftmaxBackward(y, g, axis) : Loss.softmaxBackward(y, g, axis)); }
    }

    // ---- activations (torch.nn.functional's); formulas, NaN and infinities as torch 1.13's (fst4j.tensor.Activation) ----

    /** GELU's two forms, torch's approximate='none' (x Phi(x), with erf) and approximate='tanh'. */
    public enum GeluApproximate { NONE, TANH }

    /** F.gelu: x Phi(x), Phi the standard normal CDF (the exact form, torch's default). */
    public static Var gelu(Var x) { return gelu(x, GeluApproximate.NONE); }

    /** F.gelu(x, approximate): NONE is x Phi(x); TANH is 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
    public static Var gelu(Var x, GeluApproximate approximate) {
        return switch (approximate) {
            case NONE -> Activations.gelu(x);
            case TANH -> Activations.geluTanh(x);
        };
    }

    /** F.silu (swish): x sigmoid(x). */
    public static Var silu(Var x) { return Activations.silu(x); }

    /** F.mish: x tanh(softplus(x)). */
    public static Var mish(Var x) { return Activations.mish(x); }

    /** F.leaky_relu: x where x > 0, else negativeSlope x (finite; torch's default 0.01); the gradient at 0 is the slope. */
    public static Var leakyRelu(Var x, double negativeSlope) { return Activations.leakyRelu(x, negativeSlope); }

    /** F.elu: x where x > 0, else alpha (exp(x) - 1) (alpha finite; torch's default 1). */
    public static Var elu(Var x, double alpha) { return Activations.elu(x, alpha); }

    /**
     * F.softplus: log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (torch's defaults: beta 1, threshold
     * 20). beta finite and non-zero, threshold not NaN.
     */
    public static Var softplus(Var x, double beta, double threshold) { return Activations.softplus(x, beta, threshold); }

    /** F.softplus with torch's defaults (beta 1, threshold 20). */
    public static Var softplus(Var x) { return softplus(x, 1, 20); }

    /**
     * F.hardtanh: x clamped to [min, max] (min <= max, not NaN; torch's defaults -1, 1). Its gradient is 0 at the bounds
     * themselves and passes through a NaN, as torch's (Var.clamp's is the other way round at both).
     */
    public static Var hardtanh(Var x, double min, double max) { return Activations.hardtanh(x, min, max); }

    /** F.relu6: hardtanh(x, 0, 6). */
    public static Var relu6(Var x) { return hardtanh(x, 0, 6); }

    /**
     * Inverted dropout: zero with probability p, scale kept values by 1/(1-p). Identity when not training (a new Var over
     * x's memory, so that closing the result leaves x open, whatever the mode). p = 1 zeroes everything, as torch's. The
     * mask is drawn on the host from rng (the same draws on either device) and multiplied on x's device.
     */
    public static Var dropout(Var x, double p, boolean training, Rng rng) {
        if (!(p >= 0 && p <= 1)) throw new IllegalArgumentException("dropout probability must be in [0, 1], got " + p);
        if (!training || p == 0) return new Ops.Alias().apply(x);
        if (rng == null) throw new IllegalArgumentException("dropout in training mode needs an Rng for its masks, got null");
        if (p == 1) {   // no value kept: 1 / (1 - p) is infinite, and 0 * inf would be NaN
            try (Tensor zero = Tensor.zeros(x.value().device(), x.value().dtype(), x.shape())) { return x.mul(Var.of(zero.alias())); }
        }
        // to(x's device): the host mask met a CUDA x with a device mismatch
        try (Tensor keep = rng.bernoulli(x.value().dtype(), 1 - p, x.shape()); Tensor m = keep.mul(1 / (1 - p))) {
            return x.mul(Var.of(m.to(x.value().device())));
        }
    }

    // ---- padding ----

    /** The modes of {@link #pad}, as F.pad's mode strings ('constant', 'reflect', 'replicate', 'circular'). */
    public enum PadMode { CONSTANT, REFLECT, REPLICATE, CIRCULAR }

    /**
     * F.pad(x, pad, mode, value): pad = (left, right) of the last axis, then of the one before, ... Constant mode fills
     * with value, and a negative pad crops; reflect mirrors without the edge (pads < the axis's size), replicate repeats
     * the edge, circular wraps round (pads <= the size); those three refuse negative pads and take any rank (torch 1.13
     * limits them to the last 1-3 axes of a 2-5 dimensional input). Constant mode is slices and cats; the other three
     * are one index map (a gather forward, a scatter-add backward): CUDA too.
     */
    public static Var pad(Var x, int[] pad, PadMode mode, double value) {
        return ShapeOps.pad(x, pad, ShapeOps.PadMode.valueOf(mode.name()), value);
    }

    /** F.pad in constant mode. */
    public static Var pad(Var x, int[] pad, double value) { return pad(x, pad, PadMode.CONSTANT, value); }

    // ---- sequences: embedding and attention ----

    /**
     * F.embedding: the rows of weight [V, D] at indices (an int[] with its shape, as crossEntropy's labels), out
     * [*shape, D]; each index must be in [0, V). The weight's gradient adds the output's rows back at their indices
     * (repeated indices add). See {@link Embedding} for the devices.
     */
    public static Var embedding(Var weight, int[] indices, int... shape) { return embedding(weight, indices, shape, null); }

    /**
     * F.embedding with padding_idx (null for none; a negative one counts from the end, as torch's): that row is looked up
     * as any other but gets no gradient.
     */
    public static Var embedding(Var weight, int[] indices, int[] shape, Integer paddingIdx) {
        int pad = Embedding.check(weight.value(), indices, shape, paddingIdx);
        return new Embedding(indices, shape, pad).apply(weight);
    }

    /**
     * F.scaled_dot_product_attention (torch 2.x) without dropout: softmax(q k^T / sqrt(E) + mask) v for q [..., L, E],
     * k [..., S, E], v [..., S, Ev], batch axes broadcast. attnMask is additive (float, -inf where a query must not see a
     * key; torch's boolean masks have no dtype here) and broadcasts to [..., L, S]; isCausal masks j > i (not both).
     * A query whose every key is masked (a row of -inf) gets NaN outputs and gradients, as torch's math path.
     */
    public static Var scaledDotProductAttention(Var q, Var k, Var v, Tensor attnMask, boolean isCausal) {
        return Attention.sdpa(q, k, v, attnMask, isCausal, 0, null);
    }

    /** As above with dropout p on the attention weights (drawn from rng), applied whenever p > 0, as torch's. */
    public static Var scaledDotProductAttention(Var q, Var k, Var v, Tensor attnMask, boolean isCausal, double dropoutP, Rng rng) {
        return Attention.sdpa(q, k, v, attnMask, isCausal, dropoutP, rng);
    }

    /** An attention's output and its weights softmax(q k^T / sqrt(E) + mask) [..., L, S], as they multiply v. */
    public record Attended(Var output, Var weights) {}

    /** {@link #scaledDotProductAttention(Var, Var, Var, Tensor, boolean, double, Rng)} that also returns the weights (after dropout). */
    public static Attended scaledDotProductAttentionWithWeights(Var q, Var k, Var v, Tensor attnMask, boolean isCausal, double dropoutP, Rng rng) {
        return Attention.sdpaWithWeights(q, k, v, attnMask, isCausal, dropoutP, rng);
    }

    /**
     * torch's causal mask as an additive float64 CPU tensor [L, S]: 0 where key j <= query i, -inf elsewhere (the
     * top-left aligned tril(ones(L, S))). A new tensor in the current scope: callers that run it every step keep one.
     */
    public static Tensor causalMask(int l, int s) {
        if (l < 0 || s < 0) throw new IllegalArgumentException("causalMask needs L, S >= 0, got " + l + ", " + s);
        return Attention.causalMask(l, s);
    }
}
