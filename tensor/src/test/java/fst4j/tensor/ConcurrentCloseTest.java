package fst4j.tensor;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CyclicBarrier;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A storage's reference count under threads: views of one tensor taken and closed on four threads at once leave the
 * count where it was and free the memory exactly once, with the last close; one tensor (or one RowIndex reference)
 * closed by several threads at the same moment releases its reference once; a release past zero and a retain of freed
 * memory are refused by name. With a plain int count (the old ++ / --) the first test loses updates within its first
 * thousands of iterations: the count drifts, the memory is freed while views still hold it (the next view is then
 * refused) or never.
 */
class ConcurrentCloseTest {
    static final int THREADS = 4;

    @Test
    void viewsTakenAndClosedOnFourThreadsFreeTheStorageOnce() throws InterruptedException {
        long storages = Memory.liveStorages(), bytes = Memory.bytesInUse();
        Tensor base = Scope.within(null, () -> Tensor.zeros(DType.F32, 4, 16));
        assertEquals(storages + 1, Memory.liveStorages());
        int iterations = 200_000;
        OnThreads.run(THREADS, "close", id -> {
            Tensor[] held = new Tensor[3];
            for (int i = 0; i < iterations; i++) {
                // up to three at once, of different kinds of view, so the count moves over a range and not only 1 <-> 2
                int k = 1 + (i + id) % 3;
                for (int j = 0; j < k; j++) held[j] = j == 0 ? base.alias() : j == 1 ? base.slice(0, 1, 3) : base.reshape(64);
                for (int j = k - 1; j >= 0; j--) held[j].close();
            }
        });
        assertEquals(1, base.storage.refs(), "every view closed: only the base's reference is left");
        assertEquals(storages + 1, Memory.liveStorages(), "not freed while the base holds it");
        base.close();
        assertEquals(0, base.storage.refs());
        assertEquals(storages, Memory.liveStorages(), "freed exactly once, by the last close");
        assertEquals(bytes, Memory.bytesInUse());
    }

    @Test
    void oneTensorClosedByFourThreadsAtOnceReleasesItsReferenceOnce() throws Exception {
        long storages = Memory.liveStorages();
        Tensor base = Scope.within(null, () -> Tensor.zeros(DType.F32, 8));
        int rounds = 60, perRound = 50_000;
        Tensor[] views = new Tensor[perRound];
        CyclicBarrier ready = new CyclicBarrier(THREADS + 1), done = new CyclicBarrier(THREADS + 1);
        ConcurrentLinkedQueue<Throwable> failed = new ConcurrentLinkedQueue<>();
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < THREADS; i++) {
            Thread t = new Thread(() -> {
                try {
                    for (int r = 0; r < rounds; r++) {
                        ready.await();
                        // every thread closes every view, in the same order: the threads catch up with each other (a
                        // closed view is passed quickly) and then close the same view at the same moment
                        for (Tensor v : views) v.close();
                        done.await();
                    }
                } catch (Throwable e) {
                    failed.add(e);
                    ready.reset();   // breaks the barriers: the main thread stops waiting and reports e
                    done.reset();
                }
            });
            ts.add(t);
            t.start();
        }
        try {
            for (int r = 0; r < rounds; r++) {
                for (int j = 0; j < perRound; j++) views[j] = base.alias();
                assertEquals(perRound + 1, base.storage.refs());
                ready.await(30, java.util.concurrent.TimeUnit.SECONDS);
                done.await(30, java.util.concurrent.TimeUnit.SECONDS);
                assertEquals(1, base.storage.refs(), "round " + r + ": each view released its reference once, however many threads closed it");
                for (Tensor v : views) assertTrue(v.isClosed());
            }
        } catch (java.util.concurrent.BrokenBarrierException | java.util.concurrent.TimeoutException e) {
            fail("a closing thread failed: " + failed.peek(), failed.isEmpty() ? e : failed.peek());
        } finally {
            for (Thread t : ts) { t.interrupt(); t.join(); }
        }
        assertEquals(storages + 1, Memory.liveStorages());
        base.close();
        assertEquals(storages, Memory.liveStorages());
    }

    @Test
    void oneRowIndexReferenceClosedByFourThreadsAtOnceDropsItOnce() throws InterruptedException {
        RowIndex owner = RowIndex.of(new int[]{2, 0, 1, 2}, 3, Device.CPU);
        int n = 50_000;
        RowIndex[] refs = new RowIndex[n];
        for (int i = 0; i < n; i++) refs[i] = owner.alias();
        OnThreads.run(THREADS, "close", id -> { for (RowIndex r : refs) r.close(); });
        // the owner's reference is the last one: with a reference dropped twice the tables were already freed and
        // alias() refused ("RowIndex is closed: its device tables are freed")
        try (RowIndex again = owner.alias()) {
            assertEquals(4, again.size());
        }
        owner.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, owner::alias);
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
    }

    @Test
    void aReleasePastZeroAndARetainOfFreedMemoryAreRefusedByName() {
        long storages = Memory.liveStorages(), bytes = Memory.bytesInUse();
        Storage s = new Storage(64, Device.CPU);
        s.retain();
        s.release();
        assertEquals(storages + 1, Memory.liveStorages(), "one reference left");
        s.release();
        assertEquals(storages, Memory.liveStorages(), "freed by the last release");
        IllegalStateException past = assertThrows(IllegalStateException.class, s::release);
        assertTrue(past.getMessage().contains("released more often than it was referenced"), past.getMessage());
        IllegalStateException again = assertThrows(IllegalStateException.class, s::retain);
        assertTrue(again.getMessage().contains("storage already freed"), again.getMessage());
        assertEquals(0, s.refs(), "the refusals changed nothing");
        assertEquals(storages, Memory.liveStorages(), "freed once, not twice");
        assertEquals(bytes, Memory.bytesInUse());
    }
}
