package fst4j.autograd;

import java.util.EnumMap;
import java.util.Map;

/**
 * Wall-clock time spent per part of a training step, summed on the calling thread's behalf:
 * the three GEMMs of every layer, im2col/col2im, sparsification (pruning, compression, shift), ELEMENTWISE
 * (every other autograd function's forward and backward: batch norm, ReLU, pooling, adds, the loss, layout
 * copies, and gradient accumulation), and what the caller attributes itself (OPTIMIZER). What a step takes
 * beyond the sum is Java-side overhead (graph bookkeeping, allocation, data). Cheap (two nanoTime calls per
 * section); reset it at the start of a measured window.
 */
public final class Profile {
    private Profile() {}

    public enum Part { EQ1, EQ2, EQ3, IM2COL, SPARSIFY, ELEMENTWISE, OPTIMIZER }

    private static final long[] NANOS = new long[Part.values().length];

    /**
     * Run at every start and stop when set (null: off, the default). On an asynchronous device the host returns from a
     * launch before the work is done, so the wall times above would book launches, not work; a device
     * synchronisation here (e.g. {@code Cuda::sync}) makes each part's time the device time of its work, at the cost of
     * a synchronisation per section (the step gets slower: use it for a breakdown, never for the step time).
     */
    private static volatile Runnable barrier;

    /** Sets (or clears, with null) the synchronisation run at every section boundary; see {@link #barrier}. */
    public static void setBarrier(Runnable r) { barrier = r; }

    public static long start() {
        Runnable b = barrier;
        if (b != null) b.run();
        return System.nanoTime();
    }

    public static void stop(Part p, long startNanos) {
        Runnable b = barrier;
        if (b != null) b.run();
        NANOS[p.ordinal()] += System.nanoTime() - startNanos;
    }

    public static void reset() { java.util.Arrays.fill(NANOS, 0); }

    public static Map<Part, Long> snapshot() {
        Map<Part, Long> m = new EnumMap<>(Part.class);
        for (Part p : Part.values()) m.put(p, NANOS[p.ordinal()]);
        return m;
    }
}
