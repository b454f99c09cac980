package fst4j.tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;

/**
 * One body on several threads released together (a latch, so they contend from the first call), for the tests of
 * objects shared between threads. Fails with the first throwable any thread threw, as its cause, after every thread has
 * ended. Shared with the sparse, autograd and nn tests through this module's test jar (tensor/pom.xml).
 */
public final class OnThreads {
    private OnThreads() {}

    /** The body: its thread's index, 0 .. threads - 1. */
    @FunctionalInterface public interface Work { void run(int thread) throws Exception; }

    /** Runs work on threads threads named name-0, name-1, ...; returns when all have ended. */
    public static void run(int threads, String name, Work work) throws InterruptedException {
        CountDownLatch start = new CountDownLatch(1);
        ConcurrentLinkedQueue<Throwable> failed = new ConcurrentLinkedQueue<>();
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            int id = i;
            Thread t = new Thread(() -> {
                try {
                    start.await();
                    work.run(id);
                } catch (Throwable e) {
                    failed.add(e);
                }
            }, name + "-" + i);
            ts.add(t);
            t.start();
        }
        start.countDown();
        for (Thread t : ts) t.join();
        if (!failed.isEmpty()) throw new AssertionError(failed.size() + " thread(s) failed; the first: " + failed.peek(), failed.peek());
    }
}
