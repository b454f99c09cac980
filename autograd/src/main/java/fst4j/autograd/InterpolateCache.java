package fst4j.autograd;

import fst4j.autograd.NN.InterpolateMode;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Bilinear and bicubic interpolation's per-axis weights kept on their device between calls, for a caller that resizes the same
 * geometries again and again (nn.Upsample holds one): {@link NN#interpolate} makes them for each call (two host tensors
 * copied to the device per resized axis), this keeps them per (input size, output size, scale, mode, align_corners,
 * dtype, device). The indices and weights on the host are cached for every caller (Interpolate's axes, heap only); what
 * this adds is the device memory, which it owns: unowned tensors, at most {@code capacity} axes, the least recently used
 * freed when a new one would pass that, and all freed by {@link #close}. A graph built through it holds references of
 * its own to the weights it read, so an eviction or a close before backward frees nothing that backward still needs.
 */
public final class InterpolateCache implements AutoCloseable {
    private record Key(Interpolate.AxisKey axis, Device device) {}

    private final int capacity;
    private final LinkedHashMap<Key, Tensor[]> held = new LinkedHashMap<>(16, 0.75f, true);   // access order: eldest first
    private boolean closed;
    private int builds;

    /** A cache holding the weights of at most capacity axes (each [out, 1] per tap: two bilinear, four bicubic). */
    public InterpolateCache(int capacity) {
        if (capacity < 1) throw new IllegalArgumentException("InterpolateCache needs a capacity of at least 1, got " + capacity);
        this.capacity = capacity;
    }

    /** {@link NN#interpolate} with this cache's weights. */
    public Var interpolate(Var x, int outH, int outW, InterpolateMode mode, boolean alignCorners) {
        return NN.interpolate(x, outH, outW, mode, alignCorners, this);
    }

    /** {@link NN#interpolateScale} with this cache's weights. */
    public Var interpolateScale(Var x, double scaleH, double scaleW, InterpolateMode mode, boolean alignCorners) {
        return NN.interpolateScale(x, scaleH, scaleW, mode, alignCorners, this);
    }

    /** The weights of axis k on device, as new references the caller closes; built (and the eldest freed) on a miss. */
    synchronized Tensor[] weights(Interpolate.AxisKey k, Interpolate.Axis a, Device device) {
        if (closed) throw new IllegalStateException("InterpolateCache is closed (its module, an Upsample, was closed): its weights are freed");
        Key key = new Key(k, device);
        Tensor[] w = held.get(key);
        if (w == null) {
            w = Scope.within(null, () -> Interpolate.weights(k, a, device));
            held.put(key, w);
            builds++;
            for (Iterator<Map.Entry<Key, Tensor[]>> it = held.entrySet().iterator(); held.size() > capacity && it.hasNext(); ) {
                Tensor[] old = it.next().getValue();
                it.remove();
                for (Tensor t : old) t.close();
            }
        }
        Tensor[] refs = new Tensor[w.length];
        try {
            for (int j = 0; j < w.length; j++) refs[j] = w[j].alias();
            return refs;
        } catch (RuntimeException | Error e) {
            for (Tensor t : refs) if (t != null) t.close();
            throw e;
        }
    }

    /** Axes whose weights are held now. */
    public synchronized int size() { return held.size(); }

    /** How many axes' weights have been built (tests: once per geometry, not per call). */
    public synchronized int builds() { return builds; }

    /** Frees every weight held; a later call through this cache is refused. */
    @Override public synchronized void close() {
        closed = true;
        for (Tensor[] w : held.values()) for (Tensor t : w) t.close();
        held.clear();
    }
}
