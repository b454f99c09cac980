package fst4j.sparse;

/**
 * A sparsifier whose output depends on what it saw before (TSM's cached mask and refresh counter, the
 * authors' per-call pattern draws). Its state round-trips through int64 words so that a training checkpoint
 * can hold it and a resumed run prunes exactly as the uninterrupted one would.
 */
public interface StatefulSparsifier {
    long[] exportState();

    /** Restores a state from {@link #exportState()}; IllegalArgumentException if the words are malformed. */
    void importState(long[] state);

    /**
     * What puts this sparsifier back exactly as it is now, after {@link #importState} (a checkpoint refused part of
     * the way through undoes the imports it did). Re-importing the exported words, by default: a rule that keeps more
     * than its words hold (what importState resets) puts that back too.
     */
    default Runnable restorer() {
        long[] words = exportState();
        return () -> importState(words);
    }
}
