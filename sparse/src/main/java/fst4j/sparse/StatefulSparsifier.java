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
}
