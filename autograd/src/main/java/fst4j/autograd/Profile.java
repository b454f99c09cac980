package fst4j.autograd;

import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Wall-clock time spent per part of a training step, summed over every thread that runs fst4j ops:
 * the three GEMMs of every layer, im2col/col2im, sparsification (pruning, compression, shift), ELEMENTWISE
 * (every other autograd function's forward and backward: batch norm, ReLU, pooling, adds, the loss, layout
 * copies, and gradient accumulation), and what the caller attributes itself (OPTIMIZER). What a step takes
 * beyond the sum is Java-side overhead (graph bookkeeping, allocation, data). Cheap (two nanoTime calls and one
 * atomic add per section); reset it at the start of a measured window.
 * <p>
 * Thread-safe: the totals are atomic, so forwards running on several threads at once (one model in eval mode serving
 * two threads) book all their time; the current operation's label ({@link #enter}) is each thread's own, so a section
 * is booked under the operation its own thread is running; the bookings by operation are kept under a lock, taken
 * only while booking by operation is on.
 */
public final class Profile {
    private Profile() {}

    public enum Part { EQ1, EQ2, EQ3, IM2COL, SPARSIFY, ELEMENTWISE, OPTIMIZER }

    private static final AtomicLongArray NANOS = new AtomicLongArray(Part.values().length);

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
        long dt = System.nanoTime() - startNanos;
        NANOS.getAndAdd(p.ordinal(), dt);
        if (!byOperation) return;
        String l = LABEL.get();
        if (l != null) synchronized (BY_LABEL) { BY_LABEL.computeIfAbsent(l, k -> new long[Part.values().length])[p.ordinal()] += dt; }
    }

    /**
     * {@link #stop(Part, long)} for a section that made something (a tensor, a prepared operand): if the barrier fails
     * (on CUDA, the synchronisation that reports a failed kernel), made is closed before the failure goes on, so a failed
     * stop does not drop what its section allocated. Returns made.
     */
    public static <T extends AutoCloseable> T stop(Part p, long startNanos, T made) {
        try {
            stop(p, startNanos);
            return made;
        } catch (RuntimeException | Error e) {
            if (made != null) {
                try { made.close(); } catch (Exception c) { e.addSuppressed(c); }
            }
            throw e;
        }
    }

    public static void reset() {
        for (int i = 0; i < NANOS.length(); i++) NANOS.set(i, 0);
        synchronized (BY_LABEL) { BY_LABEL.clear(); }
    }

    // ------------------------------------------------------------------ per operation

    /**
     * Whether {@link #stop} also books each section under the operation that ran it (a label such as
     * "Conv2d 16->32 k3 s2 @28x28" or "BatchNorm2dRelu [128, 16, 28, 28]": layers of the same geometry share one). Off by default:
     * labels are strings built per call. -Dfst4j.profile.ops=true or {@link #setByOperation}.
     */
    private static volatile boolean byOperation = Boolean.getBoolean("fst4j.profile.ops");
    /** The operation the calling thread is in (null: none), while booking by operation. */
    private static final ThreadLocal<String> LABEL = new ThreadLocal<>();
    /** What {@link #enter} returns where booking is on and the thread was in no operation: exit then clears the label. */
    private static final String NONE = new String("(none)");
    private static final Map<String, long[]> BY_LABEL = new LinkedHashMap<>();   // guarded by itself

    public static void setByOperation(boolean on) { byOperation = on; }

    public static boolean byOperation() { return byOperation; }

    /** Makes fn's label current (when booking by operation) and returns the previous one, for {@link #exit}. */
    static String enter(Function fn) {
        return byOperation ? enter(fn.profileLabel != null ? fn.profileLabel : fn.name()) : null;
    }

    /**
     * Makes a fixed label current on this thread (when booking by operation) and returns what {@link #exit} needs to
     * restore the previous one: null where booking was off (nothing was set, so the common case touches no thread-local).
     */
    static String enter(String l) {
        if (!byOperation) return null;
        String prev = LABEL.get();
        LABEL.set(l);
        return prev == null ? NONE : prev;
    }

    /**
     * Restores the label enter replaced, whether or not booking is still on (switching booking off inside an operation
     * leaves none behind); nothing where enter set none.
     */
    static void exit(String prev) {
        if (prev != null) LABEL.set(prev == NONE ? null : prev);
    }

    /**
     * The by-operation bookings as a table, one line per label, largest total first: milliseconds per step (divided by
     * steps) per part and in all; "" when nothing was booked by operation.
     */
    public static String table(long steps) {
        Map<String, Map<Part, Long>> by = byLabel();
        if (by.isEmpty()) return "";
        double div = 1e6 * Math.max(1, steps);
        StringBuilder sb = new StringBuilder(String.format("%-44s %8s  %s%n", "operation (ms per step)", "total", "parts"));
        by.entrySet().stream()
                .sorted((a, b) -> Long.compare(sum(b.getValue()), sum(a.getValue())))
                .forEach(e -> {
                    sb.append(String.format("%-44s %8.2f ", e.getKey(), sum(e.getValue()) / div));
                    e.getValue().forEach((p, ns) -> sb.append(String.format(" %s=%.2f", p, ns / div)));
                    sb.append('\n');
                });
        return sb.toString();
    }

    private static long sum(Map<Part, Long> m) { return m.values().stream().mapToLong(Long::longValue).sum(); }

    /** Nanoseconds per label and part since the last {@link #reset}, in first-seen order (empty unless booking by operation). */
    public static Map<String, Map<Part, Long>> byLabel() {
        Map<String, Map<Part, Long>> out = new LinkedHashMap<>();
        synchronized (BY_LABEL) {
            BY_LABEL.forEach((l, ns) -> {
                Map<Part, Long> m = new EnumMap<>(Part.class);
                for (Part p : Part.values()) if (ns[p.ordinal()] != 0) m.put(p, ns[p.ordinal()]);
                out.put(l, m);
            });
        }
        return out;
    }

    public static Map<Part, Long> snapshot() {
        Map<Part, Long> m = new EnumMap<>(Part.class);
        for (Part p : Part.values()) m.put(p, NANOS.get(p.ordinal()));
        return m;
    }
}
