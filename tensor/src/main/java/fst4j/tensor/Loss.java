package fst4j.tensor;

/**
 * Softmax, log-softmax (along any axis, max-subtracted so large logits are stable) and cross-entropy
 * from logits with label smoothing and mean reduction. Computed in double, stored in the input dtype.
 */
public final class Loss {
    private Loss() {}

    /** Loss (a scalar tensor) and its gradient w.r.t. the logits ([N, C], for an upstream gradient of 1). */
    public record CrossEntropy(Tensor loss, Tensor grad) implements AutoCloseable {
        @Override public void close() { loss.close(); grad.close(); }
    }

    /** The input as [outer, n, inner] around axis: sizes and a contiguous copy/alias. */
    private record Axis(int outer, int n, int inner) {
        static Axis of(int[] shape, int axis) {
            int a = Shape.axis(axis, shape.length);
            long outer = 1, inner = 1;
            for (int i = 0; i < a; i++) outer *= shape[i];
            for (int i = a + 1; i < shape.length; i++) inner *= shape[i];
            return new Axis(Math.toIntExact(outer), shape[a], Math.toIntExact(inner));
        }
    }

    // ---- the element formulas of the smooth-L1 and binary cross-entropy losses (fst4j.autograd.NN): a Java function on
    // the CPU, the same formula in double on CUDA (fst_k_unary / fst_k_binary), each rounded once ----

    /** Smooth L1 (Huber) of the difference d: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta finite, >= 0). */
    public static Tensor smoothL1(Tensor d, double beta) {
        checkBeta(beta);
        if (d.device() != Device.CPU) return CudaOps.unary("smoothL1", CudaOps.SMOOTH_L1, beta, d);
        return Elementwise.map(d, v -> Math.abs(v) < beta ? 0.5 * v * v / beta : Math.abs(v) - 0.5 * beta);
    }

    /** Smooth L1's gradient: g d / beta where |d| < beta, else g signum(d) (g and d broadcast). */
    public static Tensor smoothL1Backward(Tensor g, Tensor d, double beta) {
        checkBeta(beta);
        if (g.device() != Device.CPU || d.device() != Device.CPU) return CudaOps.binary("smoothL1Backward", CudaOps.SMOOTH_L1_BWD, beta, g, d);
        return Elementwise.zip(g, d, (gv, v) -> gv * (Math.abs(v) < beta ? v / beta : Math.signum(v)));
    }

    private static void checkBeta(double beta) {
        if (!(beta >= 0) || Double.isInfinite(beta)) throw new IllegalArgumentException("smoothL1: beta must be finite and >= 0, got " + beta);
    }

    /** softplus(-x) = max(-x, 0) + log1p(exp(-|x|)), without overflow for large |x|. */
    public static Tensor softplusNeg(Tensor x) {
        if (x.device() != Device.CPU) return CudaOps.unary("softplusNeg", CudaOps.SOFTPLUS_NEG, 0, x);
        return Elementwise.map(x, v -> Math.max(-v, 0) + Math.log1p(Math.exp(-Math.abs(v))));
    }

    /** sigmoid(-x) = exp(-x) / (1 + exp(-x)) for x >= 0, else 1 / (1 + exp(x)). */
    public static Tensor sigmoidNeg(Tensor x) {
        if (x.device() != Device.CPU) return CudaOps.unary("sigmoidNeg", CudaOps.SIGMOID_NEG, 0, x);
        return Elementwise.map(x, v -> v >= 0 ? Math.exp(-v) / (1 + Math.exp(-v)) : 1 / (1 + Math.exp(v)));
    }

    /** (1 - y) x, the linear part of binary cross-entropy with logits x and targets y (broadcast). */
    public static Tensor bceLinear(Tensor x, Tensor y) {
        if (x.device() != Device.CPU || y.device() != Device.CPU) return CudaOps.binary("bceLinear", CudaOps.BCE_LIN, x, y);
        return Elementwise.zip(x, y, (v, t) -> (1 - t) * v);
    }

    public static Tensor softmax(Tensor x, int axis) { return softmaxImpl(x, axis, false); }

    public static Tensor logSoftmax(Tensor x, int axis) { return softmaxImpl(x, axis, true); }

    private static Tensor softmaxImpl(Tensor x, int axis, boolean log) {
        x.check();
        if (x.dim() == 0) throw new IllegalArgumentException("wrong rank: softmax of a scalar");
        Axis ax = Axis.of(x.shape, axis);
        if (x.storage.device != Device.CPU) return CudaOps.softmax(x, ax.outer, ax.n, ax.inner, log);
        Tensor out = Tensor.empty(x.dtype, x.shape);
        if (ax.n == 0) return out;
        try (Tensor xc = x.contiguous()) {
            for (int o = 0; o < ax.outer; o++)
                for (int in = 0; in < ax.inner; in++) {
                    long base = (long) o * ax.n * ax.inner + in;
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int k = 0; k < ax.n; k++) mx = Math.max(mx, xc.getAt(xc.offset + base + (long) k * ax.inner));
                    if (mx == Double.NEGATIVE_INFINITY) mx = 0;
                    double s = 0;
                    for (int k = 0; k < ax.n; k++) s += Math.exp(xc.getAt(xc.offset + base + (long) k * ax.inner) - mx);
                    double lse = Math.log(s);
                    for (int k = 0; k < ax.n; k++) {
                        long i = base + (long) k * ax.inner;
                        double z = xc.getAt(xc.offset + i) - mx;
                        out.setAt(i, log ? z - lse : Math.exp(z) / s);
                    }
                }
        }
        return out;
    }

    /** dx of y = softmax(x): y (dy - sum(dy y)) along axis. */
    public static Tensor softmaxBackward(Tensor y, Tensor dy, int axis) { return softmaxBackwardImpl(y, dy, axis, false); }

    /** dx of y = logSoftmax(x): dy - exp(y) sum(dy) along axis. */
    public static Tensor logSoftmaxBackward(Tensor y, Tensor dy, int axis) { return softmaxBackwardImpl(y, dy, axis, true); }

    private static Tensor softmaxBackwardImpl(Tensor y, Tensor dy, int axis, boolean log) {
        y.check(); dy.check();
        if (!java.util.Arrays.equals(y.shape, dy.shape))
            throw new IllegalArgumentException("shape mismatch: softmax backward y " + Shape.str(y.shape) + " vs dy " + Shape.str(dy.shape));
        if (y.dim() == 0) throw new IllegalArgumentException("wrong rank: softmax of a scalar");
        Axis ax = Axis.of(y.shape, axis);
        if (y.storage.device != Device.CPU || dy.storage.device != Device.CPU) return CudaOps.softmaxBackward(y, dy, ax.outer, ax.n, ax.inner, log);
        Tensor dx = Tensor.empty(Elementwise.promote(y, dy), y.shape);
        try (Tensor yc = y.contiguous(); Tensor gc = dy.contiguous()) {
            for (int o = 0; o < ax.outer; o++)
                for (int in = 0; in < ax.inner; in++) {
                    long base = (long) o * ax.n * ax.inner + in;
                    double s = 0;
                    for (int k = 0; k < ax.n; k++) {
                        long i = base + (long) k * ax.inner;
                        double g = gc.getAt(gc.offset + i);
                        s += log ? g : g * yc.getAt(yc.offset + i);
                    }
                    for (int k = 0; k < ax.n; k++) {
                        long i = base + (long) k * ax.inner;
                        double yv = yc.getAt(yc.offset + i), g = gc.getAt(gc.offset + i);
                        dx.setAt(i, log ? g - Math.exp(yv) * s : yv * (g - s));
                    }
                }
        }
        return dx;
    }

    /**
     * Mean cross-entropy of logits [N, C] against class labels, with label smoothing eps: the target is
     * (1 - eps) one_hot + eps / C, loss = -(1/N) sum_n sum_c target log_softmax(logits), and
     * grad = (softmax(logits) - target) / N.
     */
    public static CrossEntropy crossEntropy(Tensor logits, int[] labels, double smoothing) {
        checkLogits(logits, labels, smoothing);
        if (logits.storage.device != Device.CPU) return CudaOps.crossEntropy(logits, labels, smoothing, 1.0, true, true);
        Tensor grad = Tensor.empty(logits.dtype, logits.shape[0], logits.shape[1]);
        double loss = compute(logits, labels, smoothing, 1.0, grad);
        return new CrossEntropy(Tensor.scalar(loss, logits.dtype), grad);
    }

    public static CrossEntropy crossEntropy(Tensor logits, int[] labels) { return crossEntropy(logits, labels, 0); }

    /** Labels as a tensor of N integral class indices (any dtype). */
    public static CrossEntropy crossEntropy(Tensor logits, Tensor labels, double smoothing) {
        return crossEntropy(logits, labelArray(labels), smoothing);
    }

    /** The loss only (a scalar tensor). */
    public static Tensor crossEntropyLoss(Tensor logits, int[] labels, double smoothing) {
        checkLogits(logits, labels, smoothing);
        if (logits.storage.device != Device.CPU) return CudaOps.crossEntropy(logits, labels, smoothing, 1.0, true, false).loss();
        return Tensor.scalar(compute(logits, labels, smoothing, 1.0, null), logits.dtype);
    }

    /** Gradient w.r.t. the logits of the mean cross-entropy, times the upstream scalar gradOutput. */
    public static Tensor crossEntropyBackward(Tensor logits, int[] labels, double smoothing, double gradOutput) {
        checkLogits(logits, labels, smoothing);
        if (logits.storage.device != Device.CPU) return CudaOps.crossEntropy(logits, labels, smoothing, gradOutput, false, true).grad();
        Tensor grad = Tensor.empty(logits.dtype, logits.shape[0], logits.shape[1]);
        compute(logits, labels, smoothing, gradOutput, grad);
        return grad;
    }

    public static Tensor crossEntropyBackward(Tensor logits, Tensor labels, double smoothing, double gradOutput) {
        return crossEntropyBackward(logits, labelArray(labels), smoothing, gradOutput);
    }

    /** Integral label values of a 1-D tensor. */
    public static int[] labelArray(Tensor labels) {
        labels.check();
        if (labels.dim() != 1) throw new IllegalArgumentException("wrong rank: labels must be [N], got " + Shape.str(labels.shape));
        int[] out = new int[labels.shape[0]];
        for (int i = 0; i < out.length; i++) {
            double v = labels.getAt(labels.offset + i * labels.strides[0]);
            if (v != Math.rint(v) || Math.abs(v) > Integer.MAX_VALUE)
                throw new IllegalArgumentException("label " + v + " at " + i + " is not an integer class index");
            out[i] = (int) v;
        }
        return out;
    }

    private static void checkLogits(Tensor logits, int[] labels, double smoothing) {
        logits.check();
        if (logits.dim() != 2) throw new IllegalArgumentException("wrong rank: crossEntropy needs logits [N, C], got " + Shape.str(logits.shape));
        int n = logits.shape[0], c = logits.shape[1];
        if (labels.length != n)
            throw new IllegalArgumentException("shape mismatch: " + labels.length + " labels for logits " + Shape.str(logits.shape));
        if (n == 0 || c == 0) throw new IllegalArgumentException("crossEntropy of empty logits " + Shape.str(logits.shape));
        if (!(smoothing >= 0 && smoothing <= 1)) throw new IllegalArgumentException("label smoothing must be in [0, 1], got " + smoothing);
        for (int i = 0; i < n; i++)
            if (labels[i] < 0 || labels[i] >= c)
                throw new IllegalArgumentException("label " + labels[i] + " at index " + i + " out of range [0, " + c + ") for logits " + Shape.str(logits.shape));
    }

    /** Mean loss; when grad is non-null it receives gradScale * d(loss)/d(logits). */
    private static double compute(Tensor logits, int[] labels, double smoothing, double gradScale, Tensor grad) {
        int n = logits.shape[0], c = logits.shape[1];
        double off = smoothing / c, on = 1 - smoothing + off;
        double total = 0;
        try (Tensor xc = logits.contiguous()) {
            for (int i = 0; i < n; i++) {
                long base = (long) i * c;
                double mx = Double.NEGATIVE_INFINITY;
                for (int k = 0; k < c; k++) mx = Math.max(mx, xc.getAt(xc.offset + base + k));
                double s = 0, sumZ = 0;
                for (int k = 0; k < c; k++) { double z = xc.getAt(xc.offset + base + k) - mx; s += Math.exp(z); sumZ += z; }
                double lse = Math.log(s);
                double zl = xc.getAt(xc.offset + base + labels[i]) - mx;
                // -sum_k t_k (z_k - lse) = lse - off * sum z - (on - off) z_label   (sum_k t_k = 1)
                total += lse - off * sumZ - (on - off) * zl;
                if (grad != null) {
                    double scale = gradScale / n;
                    for (int k = 0; k < c; k++) {
                        double p = Math.exp(xc.getAt(xc.offset + base + k) - mx) / s;
                        double t = k == labels[i] ? on : off;
                        grad.setAt(base + k, (p - t) * scale);
                    }
                }
            }
        }
        return total / n;
    }
}
