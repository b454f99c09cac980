package fst4j.tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * Owns every tensor created on this thread while it is open (innermost scope wins), and closes them
 * when it closes: one scope per training step frees everything the step allocated.
 * <pre>{@code
 * try (Scope step = Scope.open()) {
 *     Tensor loss = model.forward(x) ...;
 *     result = step.keep(loss.sum());   // survives the scope
 * }
 * }</pre>
 * A scope is its thread's own (opened, kept into and closed there). A tensor it owns may still be closed earlier by
 * another thread: the scope's own close of it is then a no-op.
 */
public final class Scope implements AutoCloseable {
    private static final ThreadLocal<Scope> CURRENT = new ThreadLocal<>();
    private final Scope parent;
    private final Thread owner = Thread.currentThread();
    private final List<Tensor> owned = new ArrayList<>();
    private boolean closed;

    private Scope(Scope parent) { this.parent = parent; }

    public static Scope open() {
        Scope s = new Scope(CURRENT.get());
        CURRENT.set(s);
        return s;
    }

    static Scope register(Tensor t) {
        Scope s = CURRENT.get();
        if (s != null) s.owned.add(t);
        return s;
    }

    /**
     * Runs body with `owner` as the current scope (null: tensors created are unowned), then restores the
     * current one. Autograd uses it to allocate a leaf's gradient where the leaf itself lives.
     */
    public static <T> T within(Scope owner, java.util.function.Supplier<T> body) {
        Scope saved = CURRENT.get();
        CURRENT.set(owner);
        try {
            return body.get();
        } finally {
            CURRENT.set(saved);
        }
    }

    /** The scope tensors created now would belong to (null if none). */
    public static Scope current() { return CURRENT.get(); }

    /** Moves t out of this scope into the enclosing one (or leaves it unowned), and returns it. */
    public Tensor keep(Tensor t) {
        if (owned.remove(t)) {
            if (parent != null) parent.owned.add(t);
            t.owner = parent;
        }
        return t;
    }

    /** Number of tensors this scope will close. */
    public int size() { return owned.size(); }

    @Override
    public void close() {
        if (closed) return;
        if (Thread.currentThread() != owner) throw new IllegalStateException("a Scope must be closed by the thread that opened it");
        if (CURRENT.get() != this) throw new IllegalStateException("scopes must be closed innermost first");
        closed = true;
        CURRENT.set(parent);
        for (int i = owned.size() - 1; i >= 0; i--) owned.get(i).close();
        owned.clear();
    }
}
