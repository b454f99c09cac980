package fst4j.autograd;

import fst4j.autograd.NN.InterpolateMode;
import fst4j.tensor.Device;
import fst4j.tensor.RowIndex;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Each resized axis's device tables kept between calls, for a caller that resizes the same geometries again and again
 * (nn.Upsample holds one): the row gathers' indices and their backward's scatter-add CSR ({@link RowIndex}, one per tap)
 * and, for bilinear and bicubic, the weights ([out, 1] per tap). {@link NN#interpolate} without a cache makes them for
 * each call: per resized axis and tap, the gather's indices copied to the device in forward, the CSR built on the host
 * and copied down (two copies) in backward, and the weights copied down in forward. This keeps them per (input size,
 * output size, scale, mode, align_corners, dtype, device). The indices and weights on the host are cached for every
 * caller (Interpolate's axes, heap only); what this adds is the device memory, which it owns: at most {@code capacity}
 * axes, the least recently used freed when a new one would pass that, and all freed by {@link #close}. A graph built
 * through it holds references of its own to the weights and index tables it read, so an eviction or a close before
 * backward frees nothing that backward still needs.
 * <p>
 * Thread-safe: lookups, builds and evictions run under this cache's lock and hand out references of the caller's own,
 * so forwards through one Upsample on several threads at once build each axis once, and an eviction by one thread frees
 * nothing another thread's gather still reads.
 */
public final class InterpolateCache implements AutoCloseable {
    private record Key(Interpolate.AxisKey axis, Device device) {}

    /** One axis's device state, or new references to it handed to a caller (who closes them): weights null for the nearest modes. */
    record Taps(RowIndex[] tables, Tensor[] weights) implements AutoCloseable {
        @Override public void close() {
            for (RowIndex t : tables) if (t != null) t.close();
            if (weights != null) for (Tensor w : weights) if (w != null) w.close();
        }
    }

    private final int capacity;
    private final LinkedHashMap<Key, Taps> held = new LinkedHashMap<>(16, 0.75f, true);   // access order: eldest first
    private boolean closed;
    private int builds;

    /** A cache holding the tables of at most capacity axes (per tap one index table, and a weight [out, 1] for bilinear and bicubic). */
    public InterpolateCache(int capacity) {
        if (capacity < 1) throw new IllegalArgumentException("InterpolateCache needs a capacity of at least 1, got " + capacity);
        this.capacity = capacity;
    }

    /** {@link NN#interpolate} with this cache's tables. */
    public Var interpolate(Var x, int outH, int outW, InterpolateMode mode, boolean alignCorners) {
        return NN.interpolate(x, outH, outW, mode, alignCorners, this);
    }

    /** {@link NN#interpolateScale} with this cache's tables. */
    public Var interpolateScale(Var x, double scaleH, double scaleW, InterpolateMode mode, boolean alignCorners) {
        return NN.interpolateScale(x, scaleH, scaleW, mode, alignCorners, this);
    }

    /**
     * The index tables and weights of axis k (whose host arrays are a) on device, as new references the caller closes;
     * built, uploaded once, and the eldest axis freed, on a miss.
     */
    synchronized Taps taps(Interpolate.AxisKey k, Interpolate.Axis a, Device device) {
        if (closed) throw new IllegalStateException("InterpolateCache is closed (its module, an Upsample, was closed): its tables are freed");
        Key key = new Key(k, device);
        Taps t = held.get(key);
        if (t == null) {
            t = build(k, a, device);
            held.put(key, t);
            builds++;
            for (Iterator<Map.Entry<Key, Taps>> it = held.entrySet().iterator(); held.size() > capacity && it.hasNext(); ) {
                Taps old = it.next().getValue();
                it.remove();
                old.close();
            }
        }
        RowIndex[] tables = new RowIndex[t.tables().length];
        Tensor[] refs = t.weights() == null ? null : new Tensor[t.weights().length];
        try {
            for (int j = 0; j < tables.length; j++) tables[j] = t.tables()[j].alias();
            if (refs != null) for (int j = 0; j < refs.length; j++) refs[j] = t.weights()[j].alias();
            return new Taps(tables, refs);
        } catch (RuntimeException | Error e) {
            new Taps(tables, refs).close();
            throw e;
        }
    }

    /** One axis's tables, owned by this cache (unowned by any scope). */
    private static Taps build(Interpolate.AxisKey k, Interpolate.Axis a, Device device) {
        RowIndex[] tables = new RowIndex[a.taps()];
        try {
            for (int j = 0; j < tables.length; j++) tables[j] = RowIndex.of(a.idx()[j], k.in(), device);
            Tensor[] w = a.w() == null ? null : Scope.within(null, () -> Interpolate.weights(k, a, device));
            return new Taps(tables, w);
        } catch (RuntimeException | Error e) {
            new Taps(tables, null).close();
            throw e;
        }
    }

    /** Axes whose tables are held now. */
    public synchronized int size() { return held.size(); }

    /** How many axes' tables have been built (tests: once per geometry, not per call). */
    public synchronized int builds() { return builds; }

    /** Frees every table and weight held (those a graph still holds stay with it); a later call through this cache is refused. */
    @Override public synchronized void close() {
        closed = true;
        for (Taps t : held.values()) t.close();
        held.clear();
    }
}
