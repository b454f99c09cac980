package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.lang.ref.WeakReference;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

/**
 * One layer's last prepared Eq. 1 operand (S(W) pruned, and compressed or laid out for the product that takes it),
 * kept for the forwards that need no gradient of W, as torch's {@code to_sparse_semi_structured} gives a deployed 2:4
 * model a weight pruned and compressed once: without it an eval-mode model pruned the same W on every call of every
 * thread. {@link Gemm3} keeps one per layer, only for W rules that read W's values and keep no state.
 * <p>
 * Key: W's memory ({@link Tensor#storageIdentity()}, held weakly), the view the node was given (offset, shape, strides),
 * its {@link Tensor#version()} (moved by every in-place write through fst4j: an optimizer's step, copyFrom, a state
 * dict or checkpoint load, fill, markModified), device and dtype, and the recipe (which product the operand was made
 * for and the process-wide switches its form depends on). A call whose key matches reuses the operand; one whose key
 * differs builds the new one and lets the old one go.
 * <p>
 * Threads: the lookup and the build run under this cache's lock, so threads asking at once for a W not yet kept build
 * it once and the others wait for it. Every caller gets a lease, a reference of its own that it releases by closing
 * what it was handed; the operand is freed when the cache has let it go ({@link #clear}, a new key) and the last lease
 * is closed, so no thread frees what another is still multiplying by.
 */
final class EvalCache {
    /** A built operand shared by the cache and its leases: closed when the last of them lets go. */
    static final class Shared {
        private final AutoCloseable value;
        private final AtomicInteger refs = new AtomicInteger(1);   // the cache's own

        Shared(AutoCloseable value) { this.value = value; }

        /** The kept operand. */
        AutoCloseable value() { return value; }

        /** One more reference; taken only under the cache's lock while the cache still holds its own (so never from 0). */
        void retain() { refs.incrementAndGet(); }

        /** Drops one reference; the last one frees the operand, on whichever thread it happens. */
        void release() {
            int left = refs.decrementAndGet();
            if (left < 0) throw new IllegalStateException("a kept S(W) was released more often than it was leased (already freed)");
            if (left > 0) return;
            try {
                value.close();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException("freeing a kept S(W): " + e.getMessage(), e);
            }
        }

        /** References held now (the cache's and the leases'); for tests. */
        int refs() { return refs.get(); }
    }

    /** How a caller gets its own reference to the kept operand: retain shared once per piece it hands out. */
    interface Leaser<V, R> { R lease(V kept, Shared shared); }

    private static final class Entry {
        final WeakReference<Object> storage;
        final long offset;
        final int[] shape;
        final long[] strides;
        final int version;
        final Device device;
        final DType dtype;
        final Object recipe;
        final Shared shared;

        Entry(Tensor w, int version, Object recipe, AutoCloseable value) {
            this.storage = new WeakReference<>(w.storageIdentity());
            this.offset = w.offset();
            this.shape = w.shape();
            this.strides = w.strides();
            this.version = version;
            this.device = w.device();
            this.dtype = w.dtype();
            this.recipe = recipe;
            this.shared = new Shared(value);
        }

        boolean matches(Tensor w, Object r) {
            return storage.get() == w.storageIdentity() && version == w.version() && offset == w.offset() && device == w.device()
                    && dtype == w.dtype() && recipe.equals(r) && Arrays.equals(shape, w.shape()) && Arrays.equals(strides, w.strides());
        }
    }

    private Entry entry;              // guarded by this
    private volatile boolean holds;   // entry != null, read without the lock by the forwards that keep nothing
    private final AtomicLong hits = new AtomicLong();

    /**
     * A lease on the operand kept for w under recipe: the kept one where the key matches, else build's (built under the
     * lock, kept, and the previous one let go). build's result belongs to the cache; the caller owns what lease returns.
     */
    @SuppressWarnings("unchecked")
    synchronized <V extends AutoCloseable, R> R get(Tensor w, Object recipe, Supplier<V> build, Leaser<V, R> lease) {
        if (entry != null && entry.matches(w, recipe)) {
            hits.incrementAndGet();
            return lease.lease((V) entry.shared.value(), entry.shared);
        }
        clear();
        int version = w.version();   // before the build reads the values
        V built = Scope.within(null, build);   // unowned: the caller's scope must not close what the cache keeps
        Entry e = new Entry(w, version, recipe, built);
        R r;
        try {
            r = lease.lease(built, e.shared);
        } catch (RuntimeException | Error x) {
            e.shared.release();
            throw x;
        }
        entry = e;
        holds = true;
        return r;
    }

    /** Lets the kept operand go (freed once no lease holds it): a new key, the layer's close, a move, a gradient-taking forward. */
    synchronized void clear() {
        Entry e = entry;
        entry = null;
        holds = false;
        if (e != null) e.shared.release();
    }

    /** {@link #clear} where something is kept: one volatile read otherwise (the forwards that keep nothing call it). */
    void drop() { if (holds) clear(); }

    /** Whether an operand is kept now. */
    boolean holds() { return holds; }

    /** Forwards that reused the kept operand. */
    long hits() { return hits.get(); }

    /** References to the kept operand now (the cache's and the open leases'), 0 where none is kept; for tests. */
    synchronized int refs() { return entry == null ? 0 : entry.shared.refs(); }
}
