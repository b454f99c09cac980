package fst4j.nn;

import fst4j.autograd.Function;
import fst4j.autograd.Var;
import fst4j.sparse.StatefulSparsifier;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;

import java.util.Arrays;

/**
 * ReSprop (Goli and Aamodt, CVPR 2020; the paper's Table 3 row "unstructured dY"), on the layers of the preset
 * {@link fst4j.autograd.SparseConfig.Method#RESPROP} (convolutions, as in the authors' code, and linear layers: a row
 * of dY is then one sample's gradient). Each such layer keeps one image's output gradient p from the
 * previous step and replaces this step's dY, for Eq. 2 and Eq. 3 alike, by that sample plus the sparse part of the
 * difference:
 * <pre>
 *   dY'[n, i] = p[i] + (dY[n, i] - p[i])   where |dY[n, i] - p[i]| > threshold (or the difference is NaN)
 *             = p[i]                          elsewhere
 * </pre>
 * The same p for every image of the batch is what makes most of the product reusable on the authors' accelerator;
 * here Eq. 2 and Eq. 3 stay dense GEMMs over dY' (ReSprop's sparsity is unstructured, nothing a 2:4 kernel takes).
 * After each step the threshold doubles where more than the target percentage of the differences were kept and
 * halves where fewer were ({@link #targetPercent}: {@link #TARGET_PERCENT} %, after a warm-up where the trainer sets
 * one); then p becomes the true dY of one image of this batch. The first step, and any step whose image shape differs
 * from p's, uses dY unchanged.
 *
 * <p>The state moves in backward only (the forward hook is the identity), so it is one training thread's, without a
 * lock; eval-mode forwards on several threads leave it alone.
 *
 * <p>A layer is on the preset when its configuration's name is {@link #NAME} (as {@code Method.RESPROP.config()} gives):
 * renaming the configuration turns ReSprop off, and switching a layer to another configuration and back starts a fresh
 * state.
 *
 * <p>As the authors' code (negargoli/ReSprop, models/ReSprop_conv.py): the threshold starts at 1e-7, the target is
 * their 90 % reuse plus their 5-point margin (15 % of the differences kept), and their warm-up (mode 1) runs over the
 * first tenth of the run ({@link #warmUpOver}: their 9 of 90 epochs). Choices of this library: the warm-up mapped from
 * epochs onto a run's steps, the threshold's floor ({@link #MIN_THRESHOLD}), the sample kept across epochs (theirs
 * starts each epoch afresh with dY itself: their list is cleared at an epoch's first step), the sampled image is drawn
 * uniformly from the batch by a hash of the step and a salt (the layer's geometry, and its name where a trainer built
 * it; theirs from a range tied to the layer count); the arithmetic is float32 for a float32 dY, as theirs (float64 for a float64
 * one), with the threshold compared in float64; a NaN difference is kept (so it reaches the gradient, as in their product). The selection runs
 * in the shim (fst_resprop) for a float32 CPU dY of at least {@link #NATIVE_MIN} elements, in Java otherwise, the same
 * bits; a float32 CUDA dY runs the same rule as a kernel (fst_cuda_resprop), only the sampled image copied down and the
 * sample up (a float64 CUDA dY is copied down and the result up).
 */
public final class ReSprop implements StatefulSparsifier {
    /** The preset's configuration name, by which {@link Conv2d} knows to install one. */
    public static final String NAME = "resprop";
    /** Percentage of differences the threshold steers towards: 10 % not reused plus the authors' 5-point margin. */
    public static final double TARGET_PERCENT = 15;
    static final double FIRST_THRESHOLD = 1e-7;
    /** The threshold's floor: halving stops here, so that doubling can always bring it back (0 would stay 0). */
    static final double MIN_THRESHOLD = 1e-30;
    /**
     * The threshold's ceiling: kept shares stuck above the target (every difference NaN, say) doubled it to +Inf after
     * about 1,000 steps, which the shim refuses and a checkpoint could not be loaded with.
     */
    static final double MAX_THRESHOLD = 1e30;
    /** The ImageNet epochs the authors' warm-up is laid out in (their runs are 90 epochs), mapped onto a run's steps. */
    static final int AUTHORS_EPOCHS = 90;
    private long runSteps;   // the run's total steps for the warm-up, 0: none

    private final long baseSalt;
    private long salt;
    private double threshold = FIRST_THRESHOLD;
    private long steps;
    private double[] sample;   // p: one image's dY from the previous step ([C*H*W] values), or null before the first
    private double lastPercent = Double.NaN;

    private boolean restored;   // the sample came from a checkpoint: its length must be this layer's

    /** salt: fixes which image each step samples (a layer's geometry, the same on every run and resume). */
    ReSprop(long salt) { this.baseSalt = salt; this.salt = salt; }

    /**
     * Salts the image choice with the layer's name as well (the trainer does, so that layers of the same geometry draw
     * their samples independently, as the authors' do).
     */
    public void saltWith(String layerName) { salt = baseSalt * 0x100000001B3L ^ layerName.hashCode(); }

    /** y unchanged forward; backward passes dY' (above) to y's producer. */
    Var apply(Var y) { return new Hook().apply(y); }

    /**
     * The state a layer configured by cfg keeps: current where cfg is (still) the preset's and the layer has one, a new
     * one (salted) where cfg just became it, else null.
     */
    static ReSprop forConfig(ReSprop current, fst4j.autograd.SparseConfig cfg, long salt) {
        if (!NAME.equals(cfg.name())) return null;
        return current != null ? current : new ReSprop(salt);
    }

    /**
     * A layer's output under ReSprop: product (the layer's GEMM output without its bias) through the hook, then the
     * bias (already shaped to broadcast) added after it, so that the bias gradient is the true dY, as in the authors'
     * code, while both products take dY'.
     */
    Var around(Var product, Var bias) {
        Var y = apply(product);
        return bias == null ? y : y.add(bias);
    }

    /**
     * The authors' warm-up (their mode 1) over a run of totalSteps steps: with step s as epoch e = floor(90 s / totalSteps)
     * of their 90, the threshold steers towards keeping 100 % of the differences for e < 2 (it halves every step: all
     * but the differences at or below it, which shrink towards 0, are kept), then 100 - 10 e % until that falls to
     * {@link #TARGET_PERCENT} (e = 9). The trainer sets it for the layers of its model when it is built; a layer put on
     * the preset later (Models.override) gets no warm-up, and its steps count from its own first. Without it (0) the
     * target is {@link #TARGET_PERCENT} from the first step (their mode 0).
     */
    public void warmUpOver(long totalSteps) {
        if (totalSteps < 0) throw new IllegalArgumentException("a run of " + totalSteps + " steps");
        runSteps = totalSteps;
    }

    /** The percentage of differences the threshold steers towards at this step. */
    public double targetPercent() {
        if (runSteps <= 0) return TARGET_PERCENT;
        long e = Math.min(AUTHORS_EPOCHS, AUTHORS_EPOCHS * steps / runSteps);
        return e < 2 ? 100 : Math.max(TARGET_PERCENT, 100 - 10 * e);
    }

    public double threshold() { return threshold; }
    public long steps() { return steps; }
    /** Percentage of differences kept at the last step (NaN before a step that used a sample). */
    public double lastPercent() { return lastPercent; }

    /** Identity forward, dY' backward. */
    private final class Hook extends Function {
        @Override protected Tensor forward(Tensor... in) { return in[0].alias(); }
        @Override protected Tensor[] backward(Tensor g) { return grads(transform(g)); }
    }

    /** Gradients of at least this many elements take the shim's loop (fst_resprop), smaller ones the Java loop. */
    static final long NATIVE_MIN = 4096;

    /** dY' of a gradient [N, ...] (a new tensor on g's device), updating the threshold and the sample. */
    Tensor transform(Tensor g) { return transform(g, true); }

    /** {@link #transform}; allowNative false keeps float32 CPU gradients on the Java loop (the reference, for tests). */
    Tensor transform(Tensor g, boolean allowNative) {
        if (g.dim() < 2 || g.size(0) < 1) throw new IllegalArgumentException("ReSprop needs a batch of gradients [N, ...], got " + Arrays.toString(g.shape()));
        int n = g.size(0), per = Math.toIntExact(g.numel() / n), pick = pickedImage(n);
        if (restored && sample != null && sample.length != per)
            throw new IllegalStateException("ReSprop's sample from the checkpoint holds " + sample.length + " values per image, this layer's"
                    + " output gradient " + per + " (" + Arrays.toString(g.shape()) + "): the checkpoint is another model's");
        restored = false;
        Tensor host = null, device = null;
        if (allowNative && g.dtype() == DType.F32 && g.device() == Device.CPU && g.numel() >= NATIVE_MIN && fst4j.shim.Native.isLoaded()) {
            try (Tensor gc = g.contiguous()) {
                float[] img;   // the next sample, read before anything is allocated that a failure would have to close
                try (Tensor one = gc.slice(0, pick, pick + 1)) { img = one.toFloatArray(); }
                if (sample != null && sample.length == per) {
                    float[] pf = new float[per];
                    for (int j = 0; j < per; j++) pf[j] = (float) sample[j];
                    Tensor out = Tensor.empty(g.shape());
                    try (Tensor pt = Tensor.of(pf, per)) {
                        adapt(fst4j.shim.Native.resprop(gc.data(), pt.data(), out.data(), n, per, threshold, fst4j.tensor.Blas.threads()), (long) n * per);
                    } catch (RuntimeException | Error e) {
                        out.close();
                        throw e;
                    }
                    host = out;
                }
                sample = new double[per];
                for (int j = 0; j < per; j++) sample[j] = img[j];
            }
        } else if (g.dtype() == DType.F32 && g.device() == Device.CUDA) {   // the same rule as a kernel: one image crosses, not the batch
            float[] img;
            try (Tensor one = g.slice(0, pick, pick + 1)) { img = one.toFloatArray(); }
            if (sample != null && sample.length == per) {
                float[] pf = new float[per];
                for (int j = 0; j < per; j++) pf[j] = (float) sample[j];
                try (Tensor ph = Tensor.of(pf, per); Tensor pt = ph.to(g.device())) {
                    fst4j.tensor.CudaOps.Resprop r = fst4j.tensor.CudaOps.resprop(g, pt, threshold);
                    device = r.out();
                    adapt(r.kept(), (long) n * per);
                }
            }
            sample = new double[per];
            for (int j = 0; j < per; j++) sample[j] = img[j];
        } else if (g.dtype() == DType.F32) {   // float32 arithmetic, as the authors' code
            float[] v = g.toFloatArray();
            if (sample != null && sample.length == per) {
                float[] p = new float[per], out = new float[v.length];
                for (int i = 0; i < per; i++) p[i] = (float) sample[i];
                long kept = 0;
                for (int b = 0, i = 0; b < n; b++)
                    for (int j = 0; j < per; j++, i++) {
                        float d = v[i] - p[j];
                        boolean keep = !(Math.abs(d) <= threshold);   // NaN too
                        out[i] = keep ? p[j] + d : p[j];
                        if (keep) kept++;
                    }
                adapt(kept, v.length);
                host = Tensor.of(out, g.shape());
            }
            sample = new double[per];
            for (int j = 0; j < per; j++) sample[j] = v[pick * per + j];
        } else {
            double[] v = g.toDoubleArray();
            if (sample != null && sample.length == per) {
                double[] out = new double[v.length];
                long kept = 0;
                for (int b = 0, i = 0; b < n; b++)
                    for (int j = 0; j < per; j++, i++) {
                        double d = v[i] - sample[j];
                        boolean keep = !(Math.abs(d) <= threshold);
                        out[i] = keep ? sample[j] + d : sample[j];
                        if (keep) kept++;
                    }
                adapt(kept, v.length);
                host = Tensor.of(out, g.shape());
            }
            sample = Arrays.copyOfRange(v, pick * per, (pick + 1) * per);
        }
        steps++;
        if (device != null) return device;
        if (host == null) return g.contiguous();
        if (g.device() == Device.CPU) return host;
        try (Tensor up = host) { return up.to(g.device()); }
    }

    /** The threshold towards {@link #targetPercent} kept, after a step that kept kept of total differences. */
    private void adapt(long kept, long total) {
        lastPercent = 100.0 * kept / total;
        double target = targetPercent();
        if (lastPercent < target) threshold = Math.max(MIN_THRESHOLD, threshold / 2);
        else if (lastPercent > target) threshold = Math.min(MAX_THRESHOLD, threshold * 2);
    }

    /** The image of a batch of n whose dY becomes the next sample: a hash of the salt and the step. */
    int pickedImage(int n) {
        long z = salt * 0x9E3779B97F4A7C15L + steps;   // splitmix64 of (salt, step)
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (int) Math.floorMod(z, (long) n);
    }

    /** [steps, threshold bits, sample length (-1: none), sample values as float64 bits...]. */
    @Override public long[] exportState() {
        int len = sample == null ? 0 : sample.length;
        long[] w = new long[3 + len];
        w[0] = steps;
        w[1] = Double.doubleToRawLongBits(threshold);
        w[2] = sample == null ? -1 : len;
        for (int i = 0; i < len; i++) w[3 + i] = Double.doubleToRawLongBits(sample[i]);
        return w;
    }

    @Override public void importState(long[] w) {
        if (w.length < 3 || w[0] < 0 || w[2] < -1 || w.length != 3 + Math.max(0, w[2]))
            throw new IllegalArgumentException("a ReSprop state of " + w.length + " words is malformed");
        double t = Double.longBitsToDouble(w[1]);
        if (!(t > 0) || Double.isInfinite(t)) throw new IllegalArgumentException("a ReSprop state's threshold must be positive and finite, got " + t);
        steps = w[0];
        threshold = t;
        sample = w[2] < 0 ? null : new double[(int) w[2]];
        if (sample != null) for (int i = 0; i < sample.length; i++) sample[i] = Double.longBitsToDouble(w[3 + i]);
        lastPercent = Double.NaN;
        restored = true;
    }

    /** The words, and what importState resets besides: the last step's percentage and whether the sample was loaded. */
    @Override public Runnable restorer() {
        long[] words = exportState();
        double percent = lastPercent;
        boolean fromCheckpoint = restored;
        return () -> {
            importState(words);
            lastPercent = percent;
            restored = fromCheckpoint;
        };
    }

    @Override public String toString() { return "ReSprop (threshold " + threshold + ", step " + steps + ")"; }
}
