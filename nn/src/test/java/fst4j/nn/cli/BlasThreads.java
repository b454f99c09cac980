package fst4j.nn.cli;

import fst4j.tensor.Blas;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Puts the native kernels' thread count back after each test: it is process-wide, and a command's --threads (or a
 * test's own setting) would otherwise leak into the tests that run after it. Register it as
 * {@code @RegisterExtension final BlasThreads threads = BlasThreads.restored();}, or {@link #one()} to also run each
 * test on one thread.
 */
public final class BlasThreads implements BeforeEachCallback, AfterEachCallback {
    private final boolean one;
    private int saved;

    private BlasThreads(boolean one) { this.one = one; }

    /** Restores the count after each test; the test runs with whatever it was. */
    public static BlasThreads restored() { return new BlasThreads(false); }

    /** Runs each test on one thread, then restores the count. */
    public static BlasThreads one() { return new BlasThreads(true); }

    @Override
    public void beforeEach(ExtensionContext context) {
        saved = Blas.threads();
        if (one) Blas.setThreads(1);
    }

    @Override
    public void afterEach(ExtensionContext context) { Blas.setThreads(saved); }
}
