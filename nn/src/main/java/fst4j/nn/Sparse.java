package fst4j.nn;

import fst4j.autograd.SparseConfig;

/** A layer whose GEMMs go through the Eq. 1-3 node: its sparsity can be read and overridden. */
public interface Sparse {
    SparseConfig sparsity();
    void setSparsity(SparseConfig cfg);
    fst4j.autograd.Var weight();

    /** The layer's ReSprop state where its configuration is that preset's ({@link ReSprop#NAME}), else null. */
    default ReSprop resprop() { return null; }

    /**
     * Closes the sparsifiers of old that hold resources ({@link AutoCloseable}: ASP's cached mask tensor, whose masks stay)
     * and that next (null: none) does not keep; layers call it when their configuration is replaced, when they move to
     * another device and when they close.
     */
    static void release(SparseConfig old, SparseConfig next) {
        java.util.List<fst4j.sparse.Sparsifier> kept = next == null ? java.util.List.of() : slots(next);
        java.util.Set<Object> done = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (fst4j.sparse.Sparsifier s : slots(old)) {
            if (!(s instanceof AutoCloseable c) || !done.add(s) || kept.stream().anyMatch(k -> k == s)) continue;
            try { c.close(); } catch (RuntimeException e) { throw e; } catch (Exception e) { throw new IllegalStateException("closing " + s + ": " + e.getMessage(), e); }
        }
    }

    private static java.util.List<fst4j.sparse.Sparsifier> slots(SparseConfig c) { return java.util.List.of(c.w(), c.wt(), c.dyEq2(), c.dyEq3(), c.xt()); }
}
