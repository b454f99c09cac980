package fst4j.nn;

import fst4j.tensor.Tensor;

import java.lang.ref.WeakReference;
import java.util.ArrayDeque;
import java.util.Iterator;

/**
 * The boolean masks {@link AttnMasks#checkBoolean} found to hold only 0 and 1, so that a training loop passing the same
 * key_padding_mask or attn_mask every step pays for the scan (and, on CUDA, its copy to the host) once, not every
 * forward of every layer. A mask is known by its identity and its {@link Tensor#version()}: any write through fst4j
 * (fill, copyFrom, set, an in-place op, markModified) moves the version, so a mask changed in place is scanned again.
 * Identity, not memory: a new tensor is a new object even where it reuses a closed one's memory (the CUDA caching
 * allocator hands the same block back), so it is never taken for the old one. The entries hold weak references (the
 * cache keeps no tensor alive) and forget closed tensors; a few entries, the most recently used kept. Shared by every
 * module and thread, so every method holds the class's lock.
 */
final class CheckedMasks {
    private CheckedMasks() {}

    static final int CAPACITY = 16;

    private record Entry(WeakReference<Tensor> mask, int version) {}

    private static final ArrayDeque<Entry> entries = new ArrayDeque<>();   // most recently used first
    private static int scans;

    /** Whether m was found boolean at its current version (and is open); drops entries whose tensor is gone or closed. */
    static synchronized boolean known(Tensor m) {
        Entry hit = null;
        for (Iterator<Entry> it = entries.iterator(); it.hasNext(); ) {
            Entry e = it.next();
            Tensor t = e.mask().get();
            if (t == null || t.isClosed()) { it.remove(); continue; }
            if (t == m && hit == null && e.version() == m.version() && !m.isClosed()) { hit = e; it.remove(); }
        }
        if (hit != null) entries.addFirst(hit);
        return hit != null;
    }

    /** Records m as found boolean at version (the version read before its values were). */
    static synchronized void remember(Tensor m, int version) {
        entries.removeIf(e -> e.mask().get() == m);
        entries.addFirst(new Entry(new WeakReference<>(m), version));
        while (entries.size() > CAPACITY) entries.removeLast();
    }

    static synchronized void counted() { scans++; }

    /** How many masks have been scanned (tests: once per mask and version, not per forward). */
    static synchronized int scans() { return scans; }

    /** Entries held (tests: closed and collected tensors are forgotten). */
    static synchronized int size() { return entries.size(); }
}
