package fst4j.autograd;

/** Thread-local switch for graph recording: {@code try (var g = Grad.noGrad()) { ... }}. */
public final class Grad {
    private Grad() {}
    private static final ThreadLocal<Boolean> ENABLED = ThreadLocal.withInitial(() -> Boolean.TRUE);

    public static boolean isEnabled() { return ENABLED.get(); }

    public interface Restore extends AutoCloseable { @Override void close(); }

    /** Disables recording until the returned handle is closed (nestable). */
    public static Restore noGrad() {
        boolean prev = ENABLED.get();
        ENABLED.set(false);
        return () -> ENABLED.set(prev);
    }

    /** Re-enables recording inside a no-grad region until closed. */
    public static Restore enableGrad() {
        boolean prev = ENABLED.get();
        ENABLED.set(true);
        return () -> ENABLED.set(prev);
    }
}
