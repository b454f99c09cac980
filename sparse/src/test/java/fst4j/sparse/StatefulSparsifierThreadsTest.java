package fst4j.sparse;

import fst4j.tensor.DType;
import fst4j.tensor.OnThreads;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicLongArray;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The stateful rules called from four threads at once, as the layers of one eval-mode model serving several threads
 * call them: every call counts once (no step lost), TSM gives the mask a single thread gives for the same values
 * whichever call refreshes it (also where a call that had not copied the values finds a refresh due: another thread
 * moved the count in between), and the authors' patterns draw each number of their sequence once. Without the rules'
 * locks the counts lose steps.
 */
class StatefulSparsifierThreadsTest {
    static final int THREADS = 4;

    @Test
    void transposableMasksCountEveryCallAndGiveTheSingleThreadMask() throws InterruptedException {
        Tensor x = Scope.within(null, () -> new Rng(1).normal(0, 1, 8, 12));
        float[] want;
        try (Tensor m = new Transposable24(3).mask(x)) { want = m.toFloatArray(); }
        Transposable24 tsm = new Transposable24(3);   // a refresh every third call: due and not due interleave across threads
        int calls = 3000;
        try {
            OnThreads.run(THREADS, "sparsifier", t -> {
                for (int i = 0; i < calls; i++)
                    try (Tensor m = tsm.mask(x)) { assertArrayEquals(want, m.toFloatArray(), "thread " + t + ", call " + i); }
            });
            assertEquals((long) THREADS * calls, tsm.steps(), "every call counted once");
            // a caller that copied no values (not due when it looked) and finds the refresh due reads them through the supplier
            tsm.reset();
            int[] shape = {8, 12};
            assertArrayEquals(new Transposable24(3).keep(x.toDoubleArray(), shape), tsm.keep(null, shape, x::toDoubleArray));
            assertArrayEquals(new Transposable24(3).keep(x.toDoubleArray(), shape), tsm.keep(null, shape, () -> { throw new AssertionError("not due: no values needed"); }));
        } finally {
            x.close();
        }
    }

    @Test
    void theAuthorsPatternsDrawEachNumberOnce() throws InterruptedException {
        AuthorsFixed24 shared = new AuthorsFixed24(1, 42), alone = new AuthorsFixed24(1, 42);
        int draws = 200_000, n = THREADS * draws;
        AtomicLongArray seen = new AtomicLongArray(4);
        OnThreads.run(THREADS, "sparsifier", t -> { for (int i = 0; i < draws; i++) seen.incrementAndGet(shared.draw()); });
        assertEquals(n, shared.exportState()[0], "every draw counted once");
        long[] want = new long[4];
        for (int i = 0; i < n; i++) want[alone.draw()]++;
        for (int p = 0; p < 4; p++) assertEquals(want[p], seen.get(p), "pattern " + p + ": the sequence's first " + n + " draws, each once");
    }
}
