package fst4j.nn;

import fst4j.autograd.SparseConfig;
import fst4j.sparse.Sparsifier;
import fst4j.sparse.StatefulSparsifier;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;

import java.util.Arrays;

/**
 * ASP (NVIDIA's Automatic SParsity; "prune a dense model, fine-tune" in the paper's Table 3): the layers of the preset
 * {@link SparseConfig.Method#ASP} train dense until {@link #prune} fixes each one's 2:4 mask from the magnitudes of its W
 * at that moment; from then on Eq. 1 multiplies W under that frozen mask (by the 2:4 product: the mask is 2:4 along K),
 * Eq. 2 the transpose of that pruned W (the pruned model's own weights), and Eq. 3 stays dense. The trainer prunes at half of its steps, so half of a run is dense training and half
 * fine-tuning (a run of a single step takes its masks from the initial weights). Pruned weights keep their values and
 * gradients but no longer reach the forward pass; no SR-STE decay (the trainer decides that while every layer is dense).
 * The mask is a custom rule that reads no values ({@link Sparsifier.Custom#readsValues}): W is not copied anywhere to
 * apply it, and its 0/1 tensor is built once on W's device and reused ({@link FrozenMask#keptMask}), so each forward is
 * one select, on the CPU or a GPU.
 */
public final class Asp {
    private Asp() {}

    /** The name of the preset's configuration, by which its layers are found (the dense ends are named "dense"). */
    static final String NAME = "asp";

    /**
     * One weight's frozen mask, 2:4 along K of W seen as [Cout, K]: a rule that no longer looks at the values. It keeps
     * the 0/1 mask as a tensor on the device (and dtype) it was last applied on, built once and reused by every forward
     * until the masks change ({@link #importState}) or the layer holding it closes it. Thread-safe (its lock): forwards
     * of one layer on several threads at once build the tensor once and share it (it is always the layer's weight's
     * device and dtype, so no thread's use replaces the tensor another is using).
     */
    public static final class FrozenMask implements Sparsifier.Custom, StatefulSparsifier, AutoCloseable {
        private boolean[] keep;
        private int[] shape;
        private Tensor cached;   // the kept set as a 0/1 tensor where it was last asked for (unowned by any Scope), or null
        int builds;              // how many times the tensor was built (for tests)

        FrozenMask(boolean[] keep, int[] shape) { this.keep = keep; this.shape = shape.clone(); }

        @Override public synchronized boolean[] keep(double[] values, int[] shape) {
            if (!Arrays.equals(shape, this.shape))
                throw new IllegalArgumentException("an ASP mask of " + Arrays.toString(this.shape) + " applied to " + Arrays.toString(shape));
            return keep.clone();
        }

        @Override public int axis() { return 1; }
        @Override public boolean accelerable() { return true; }
        @Override public boolean readsValues() { return false; }

        @Override public synchronized Tensor keptMask(Tensor x) {
            if (!Arrays.equals(x.shape(), shape))
                throw new IllegalArgumentException("an ASP mask of " + Arrays.toString(shape) + " applied to " + Arrays.toString(x.shape()));
            if (cached != null && (cached.isClosed() || cached.device() != x.device() || cached.dtype() != x.dtype())) close();
            if (cached == null) builds++;
            if (cached == null) cached = fst4j.tensor.Scope.within(null, () -> {
                Tensor host;
                if (x.dtype() == fst4j.tensor.DType.F64) {
                    double[] m = new double[keep.length];
                    for (int i = 0; i < m.length; i++) m[i] = keep[i] ? 1 : 0;
                    host = Tensor.of(m, shape);
                } else {
                    float[] m = new float[keep.length];
                    for (int i = 0; i < m.length; i++) m[i] = keep[i] ? 1 : 0;
                    host = Tensor.of(m, shape);
                }
                if (x.device() == Device.CPU) return host;
                try (host) { return host.to(x.device()); }
            });
            return cached;
        }

        /** Frees the cached mask tensor (the masks themselves stay; the next apply builds it again). */
        @Override public synchronized void close() {
            if (cached != null) cached.close();
            cached = null;
        }

        /** [rank, dims..., the kept flags 64 to a word]. */
        @Override public synchronized long[] exportState() {
            long[] w = new long[1 + shape.length + (keep.length + 63) / 64];
            w[0] = shape.length;
            for (int d = 0; d < shape.length; d++) w[1 + d] = shape[d];
            for (int i = 0; i < keep.length; i++) if (keep[i]) w[1 + shape.length + i / 64] |= 1L << (i % 64);
            return w;
        }

        @Override public synchronized void importState(long[] w) {
            if (w.length < 1 || w[0] != shape.length || w.length != 1 + shape.length + (keep.length + 63) / 64)
                throw new IllegalArgumentException("an ASP mask state of " + w.length + " words does not fit a mask of " + Arrays.toString(shape));
            for (int d = 0; d < shape.length; d++)
                if (w[1 + d] != shape[d]) throw new IllegalArgumentException("an ASP mask of another shape: dimension " + d + " is " + w[1 + d]);
            boolean[] k = new boolean[keep.length];
            for (int i = 0; i < k.length; i++) k[i] = (w[1 + shape.length + i / 64] >>> (i % 64) & 1) != 0;
            keep = k;
            close();   // the cached tensor held the old masks
        }

        @Override public String toString() { return "ASP frozen 2:4 mask " + Arrays.toString(shape); }
    }

    /** Whether layer is one of the preset's, not yet pruned. */
    private static boolean dense(Sparse layer) { return NAME.equals(layer.sparsity().name()) && layer.sparsity().w() instanceof Sparsifier.Dense; }

    /** Whether any layer of model is the preset's and still dense. */
    public static boolean pending(Module model) { return Models.sparseLayers(model).values().stream().anyMatch(Asp::dense); }

    /**
     * Fixes the 2:4 mask of every layer of the preset that is still dense, from the magnitudes of its W now (magnitude
     * 2:4 along K: lower index on ties, as everywhere). Returns how many layers it pruned.
     */
    public static int prune(Module model) {
        int n = 0;
        for (Sparse layer : Models.sparseLayers(model).values()) {
            if (!dense(layer)) continue;
            Tensor w = layer.weight().value();
            int[] shape = matrixShape(w);
            boolean[] keep = new boolean[Math.toIntExact(w.numel())];
            try (Tensor wm = w.reshape(shape[0], shape[1]); Tensor host = w.device() == Device.CPU ? wm.alias() : wm.to(Device.CPU);
                 Tensor mask = new Sparsifier.Magnitude24(1).mask(host)) {
                float[] m = mask.toFloatArray();
                for (int i = 0; i < keep.length; i++) keep[i] = m[i] != 0;
            }
            layer.setSparsity(frozen(layer.sparsity(), new FrozenMask(keep, shape)));
            n++;
        }
        return n;
    }

    /** The fine-tuning configuration: W under the mask in Eq. 1 and, as the pruned model's own weights, in Eq. 2. */
    private static SparseConfig frozen(SparseConfig c, FrozenMask m) { return c.withW(m).withWtFromSparse(true).withName(NAME); }

    /**
     * The masks a checkpoint holds ("sparsity.LAYER.w" int64 states, written after {@link #prune}) put back on model's
     * layers of the preset: for readers of checkpoints that do not go through the trainer (the analysis). Returns how
     * many it restored (none for a checkpoint taken before the pruning).
     */
    public static int restore(Module model, java.util.Map<String, long[]> states) {
        int n = 0;
        for (var e : Models.sparseLayers(model).entrySet()) {
            long[] words = states.get("sparsity." + e.getKey() + ".w");
            if (words == null || !dense(e.getValue())) continue;
            FrozenMask m = placeholder(e.getValue());
            m.importState(words);
            e.getValue().setSparsity(frozen(e.getValue().sparsity(), m));
            n++;
        }
        return n;
    }

    /** Placeholder masks on the preset's layers (for a checkpoint taken after {@link #prune} to import its masks into). */
    public static void installPlaceholders(Module model) {
        for (Sparse layer : Models.sparseLayers(model).values()) {
            if (dense(layer)) layer.setSparsity(frozen(layer.sparsity(), placeholder(layer)));
        }
    }

    /** W seen as the [Cout, K] matrix its mask is 2:4 along. */
    private static int[] matrixShape(Tensor w) { return new int[]{w.size(0), (int) (w.numel() / w.size(0))}; }

    /** A mask keeping nothing, of layer's W shape: the form a checkpoint's saved mask is imported into. */
    private static FrozenMask placeholder(Sparse layer) {
        Tensor w = layer.weight().value();
        return new FrozenMask(new boolean[Math.toIntExact(w.numel())], matrixShape(w));
    }
}
