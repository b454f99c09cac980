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

    public static long start() { return System.nanoTime(); }

    public static void stop(Part p, long startNanos) { NANOS[p.ordinal()] += System.nanoTime() - startNanos; }

    public static void reset() { java.util.Arrays.fill(NANOS, 0); }

    public static Map<Part, Long> snapshot() {
        Map<Part, Long> m = new EnumMap<>(Part.class);
        for (Part p : Part.values()) m.put(p, NANOS[p.ordinal()]);
        return m;
    }
}
