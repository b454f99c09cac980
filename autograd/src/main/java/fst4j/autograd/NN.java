package fst4j.autograd;

import fst4j.tensor.Conv;
import fst4j.tensor.Elementwise;
import fst4j.tensor.Loss;
import fst4j.tensor.Norm;
import fst4j.tensor.Pool;
import fst4j.tensor.Rng;
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

    static final class BatchNorm extends Function {
        private Tensor runningMean, runningVar;
        private final boolean training, relu;
        private final double momentum, eps;
        private Tensor x, gamma, mean, invStd, out;
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
            if (relu) out = save(r.output());
            return r.output();
        }
        protected Tensor[] backward(Tensor g) {
            Norm.BatchNormGrads r;
            if (training) r = Norm.batchNorm2dBackward(g, x, gamma, mean, invStd, out);
            else if (!relu) r = Norm.batchNorm2dEvalBackward(g, x, gamma, runningMean, runningVar, eps);
            else try (Tensor gm = Elementwise.reluBackward(g, out)) { r = Norm.batchNorm2dEvalBackward(gm, x, gamma, runningMean, runningVar, eps); }
            return grads(needsGrad(0) ? r.dx() : close(r.dx()), needsGrad(1) ? r.dgamma() : close(r.dgamma()), needsGrad(2) ? r.dbeta() : close(r.dbeta()));
        }
    }

    private static Tensor close(Tensor t) { t.close(); return null; }

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

    /** Mean cross-entropy of logits [N, C] against labels, with label smoothing eps (0 = none). */
    public static Var crossEntropy(Var logits, int[] labels, double smoothing) { return new CrossEntropy(labels, smoothing).apply(logits); }

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

    /**
     * Inverted dropout: zero with probability p, scale kept values by 1/(1-p). Identity when not training. The mask is
     * drawn on the host from rng (the same draws on either device) and multiplied on x's device.
     */
    public static Var dropout(Var x, double p, boolean training, Rng rng) {
        if (p < 0 || p >= 1) throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + p);
        if (!training || p == 0) return x;
        // to(x's device): the host mask met a CUDA x with a device mismatch
        try (Tensor keep = rng.bernoulli(x.value().dtype(), 1 - p, x.shape()); Tensor m = keep.mul(1 / (1 - p))) {
            return x.mul(Var.of(m.to(x.value().device())));
        }
    }
}
