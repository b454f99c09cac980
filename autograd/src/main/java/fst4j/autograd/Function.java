package fst4j.autograd;

import fst4j.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;

/**
 * A differentiable operation, in the spirit of {@code torch.autograd.Function}: subclass it, compute the
 * result in {@link #forward}, keep what backward needs with {@link #save}, and return one gradient per
 * input from {@link #backward}. A new instance is made per call; it becomes the output's graph node.
 * <pre>{@code
 * final class Square extends Function {
 *     private Tensor x;
 *     protected Tensor forward(Tensor... in) { x = save(in[0]); return in[0].mul(in[0]); }
 *     protected Tensor[] backward(Tensor g)  { try (Tensor t = g.mul(x)) { return grads(t.mul(2)); } }
 * }
 * Var y = new Square().apply(x);
 * }</pre>
 * Gradients may have the broadcast (output-side) shape; the engine sums them down to each input's shape. forward may
 * return one of its inputs (or a tensor it saved) as it is: the output then holds its own reference to it.
 * Return null for an input that needs no gradient ({@link #needsGrad(int)} tells which do).
 * <p>
 * Several outputs (torch's forward returning a tuple): subclass {@link MultiFunction}, return the outputs from
 * {@code forwardMulti}, receive one gradient per output in {@code backwardMulti}, and call {@code applyMulti}. Its
 * backward runs once, after every output's gradient has arrived; an output the loss does not reach gets zeros (torch's
 * default), and an output marked with {@code markNonDifferentiable} (indices) gets none:
 * <pre>{@code
 * final class ExpAndProduct extends MultiFunction {      // (exp x, x * y)
 *     private Tensor x, y, e;
 *     protected Tensor[] forwardMulti(Tensor... in) {
 *         Tensor ex = in[0].exp();
 *         x = save(in[0]); y = save(in[1]); e = save(ex);
 *         return outputs(ex, in[0].mul(in[1]));
 *     }
 *     protected Tensor[] backwardMulti(Tensor[] g) {     // g[0] for exp x, g[1] for x * y
 *         try (Tensor a = g[0].mul(e); Tensor b = g[1].mul(y)) { return grads(a.add(b), g[1].mul(x)); }
 *     }
 * }
 * Var[] out = new ExpAndProduct().applyMulti(x, y);   // out[0] = exp x, out[1] = x * y
 * }</pre>
 */
public abstract class Function {
    Var[] inputs;
    final List<Tensor> saved = new ArrayList<>();
    private final List<Integer> savedVersions = new ArrayList<>();
    private final List<AutoCloseable> kept = new ArrayList<>();
    private boolean released;
    boolean[] needs;   // per input, as at apply: a leaf frozen or unfrozen in between does not change what backward does

    /** Computes the output from the input values. Tensors it creates belong to the caller's scope. */
    protected abstract Tensor forward(Tensor... inputs);

    /** Gradients with respect to each input, given the gradient of the output. */
    protected abstract Tensor[] backward(Tensor gradOutput);

    /**
     * Keeps a reference to t for backward (an alias, so closing the original does not invalidate it). It shares t's
     * memory, so it records t's {@link Tensor#version()}: if t is changed in place before backward (x.value().fill(..),
     * an optimizer step, a write marked with {@link Tensor#markModified()}), backward refuses to run, as PyTorch's does,
     * instead of using the new values. Copy a value before changing it while its graph is alive.
     */
    protected final Tensor save(Tensor t) {
        Tensor a = t.alias();
        saved.add(a);
        savedVersions.add(a.version());
        return a;
    }

    /** Before backward: every saved tensor is as it was saved (see {@link #save}). */
    final void checkSaved() {
        for (int i = 0; i < saved.size(); i++) {
            Tensor t = saved.get(i);
            int was = savedVersions.get(i), now = t.version();
            if (now != was)
                throw new IllegalStateException("one of the tensors " + name() + " saved for backward (" + (i + 1) + " of " + saved.size() + ", "
                        + fst4j.tensor.Shape.str(t.shape()) + ") was changed in place after forward (version " + was + ", now " + now
                        + "): its gradient would use the new values. Copy the value before changing it, or change it after backward");
        }
    }

    /** Keeps a non-tensor resource for backward (e.g. device-side max-pool indices); closed when the graph is freed. */
    protected final <T extends AutoCloseable> T retain(T resource) {
        kept.add(resource);
        return resource;
    }

    /**
     * Whether input i takes part in differentiation. Valid in backward, and in forward, where it also says whether
     * a graph is being recorded at all (so forward can skip saving what backward would need). Fixed when the function is
     * applied: a parameter frozen or unfrozen before backward ({@link Var#requiresGrad(boolean)}) does not make backward
     * want what forward did not keep.
     */
    protected final boolean needsGrad(int i) { return needs[i]; }

    protected static Tensor[] grads(Tensor... g) { return g; }

    /**
     * False (the default): {@link Profile} books this function's forward and backward time under ELEMENTWISE
     * (batch norm, ReLU, pooling, adds, the loss, layout copies). The Eq. 1-3 layers return true and book their
     * GEMMs, lowering and sparsification themselves.
     */
    protected boolean profilesItself() { return false; }

    /** Applies this function to the inputs, recording a graph node when any input requires a gradient. */
    public final Var apply(Var... in) {
        Tensor[] values = bind(in);
        boolean record = recording();
        String prevLabel = Profile.enter(this);
        Tensor out;
        try {
            long t0 = Profile.start();
            out = ownOutput(forward(values), values);
            if (!profilesItself()) Profile.stop(Profile.Part.ELEMENTWISE, t0, out);   // a failed stop frees out
        } catch (RuntimeException | Error e) {
            // no node is made to free what forward saved or retained before it failed: those aliases kept their inputs'
            // memory for good (a linear layer whose custom 2:4 rule broke its claim held x and W after both were closed)
            try { release(); } catch (RuntimeException r) { e.addSuppressed(r); }
            throw e;
        } finally {
            Profile.exit(prevLabel);
        }
        if (!record) {
            release();
            return new Var(out, false, null);
        }
        return new Var(out, true, this);
    }

    /**
     * The start of {@link #apply} and {@link MultiFunction#applyMulti}: refuses a second call, keeps the inputs, fixes
     * which of them take part in differentiation ({@link #needsGrad}) and the profile label; returns the input values.
     */
    final Tensor[] bind(Var[] in) {
        if (inputs != null || released) throw new IllegalStateException(name() + " instance already applied; create a new one per call");
        Tensor[] values = new Tensor[in.length];
        boolean record = false;
        for (int i = 0; i < in.length; i++) {
            values[i] = in[i].value();
            record |= in[i].requiresGrad();
        }
        record &= Grad.isEnabled();
        inputs = in;
        needs = new boolean[in.length];
        for (int i = 0; i < in.length; i++) needs[i] = record && in[i].requiresGrad();
        if (Profile.byOperation()) profileLabel = profileLabel(values);
        return values;
    }

    /** Whether {@link #bind} recorded a graph: some input takes part in differentiation. */
    final boolean recording() {
        for (boolean n : needs) if (n) return true;
        return false;
    }

    /** Frees saved tensors and drops references to inputs (graph freed). */
    final void release() {
        if (released) return;
        released = true;
        RuntimeException failed = null;   // everything is closed even when one fails; the first failure is thrown after
        for (Tensor t : saved) {
            try { t.close(); } catch (RuntimeException e) { if (failed == null) failed = e; else failed.addSuppressed(e); }
        }
        saved.clear();
        savedVersions.clear();
        for (AutoCloseable c : kept) {
            try { c.close(); } catch (Exception e) {
                RuntimeException r = new IllegalStateException("freeing " + c + " with its graph", e);
                if (failed == null) failed = r; else failed.addSuppressed(r);
            }
        }
        kept.clear();
        inputs = null;
        if (failed != null) throw failed;
    }

    final boolean isReleased() { return released; }

    /**
     * One of this node's outputs was closed: its graph goes with it, as a Var's close has always done. A
     * {@link MultiFunction} waits for its last output (the others still need the saved tensors).
     */
    void outputClosed() { release(); }

    /** The class's simple name; an anonymous Function's has none, so its binary name ("MyTest$1") stands in. */
    public String name() {
        String n = getClass().getSimpleName();
        return n.isEmpty() ? getClass().getName() : n;
    }

    /**
     * An output that is an input's tensor or a saved one would be closed with that input's Var (closing y = f(x) closed x)
     * or with this node's saved tensors after backward: the output Var gets its own reference.
     */
    private Tensor ownOutput(Tensor out, Tensor[] values) {
        for (Tensor v : values) if (out == v) return out.alias();
        for (Tensor t : saved) if (out == t) return out.alias();
        return out;
    }

    /**
     * What {@link Profile} books this function's forward and backward time under when booking by operation: by default
     * its name and its first input's shape.
     */
    protected String profileLabel(Tensor... in) {
        return in.length > 0 ? name() + " " + fst4j.tensor.Shape.str(in[0].shape()) : name();
    }

    /** This call's {@link #profileLabel} (set in apply only while Profile books by operation). */
    String profileLabel;
}
