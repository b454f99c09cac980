package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;

import java.util.Arrays;

/**
 * A {@link Function} with several outputs, as a {@code torch.autograd.Function} whose forward returns a tuple: compute
 * them in {@link #forwardMulti}, get one gradient per output in {@link #backwardMulti}, and call {@link #applyMulti}
 * (Function's class comment has an example). The one-output {@link Function#apply} stays the fast path; this is for
 * operations whose outputs come from one computation (values and their indices, a split).
 * <ul>
 * <li>The node's backward runs once per backward pass, after the gradients of all its outputs have arrived (the
 *     engine orders nodes, not output values, so every user of every output comes first).</li>
 * <li>An output that no gradient reached gets zeros of its shape, as torch's default ({@code set_materialize_grads(True)}):
 *     a backward written for all outputs needs no null checks. {@link #materializeGrads()} returning false gives null
 *     instead (no allocation), as torch's {@code ctx.set_materialize_grads(False)}.</li>
 * <li>{@link #markNonDifferentiable} (in forwardMulti) makes an output a plain value: it requires no gradient, has no
 *     graph, and its gradient slot in backwardMulti is always null. torch passes zeros there; no gradient can flow
 *     through such an output, so the zeros would only be an allocation per step.</li>
 * <li>Saved tensors live as long as the node: closing one output frees the node only when every differentiable
 *     output is closed (or its graph freed by backward or {@link Var#freeGraph}), since the others may still need them.</li>
 * </ul>
 */
public abstract class MultiFunction extends Function {
    private Var[] outs;            // per output; null for a non-differentiable one (or when no graph was recorded)
    private int[][] outShapes;     // for the zeros of an output no gradient reached (its Var may be closed by then)
    private DType[] outTypes;
    private Device[] outDevices;
    private int open;              // differentiable outputs not yet closed
    private Tensor[] nonDiff = new Tensor[0];

    /** Computes the outputs from the input values ({@link #outputs} builds the array). Tensors it creates belong to the caller's scope. */
    protected abstract Tensor[] forwardMulti(Tensor... inputs);

    /**
     * Gradients with respect to each input (one per input, null for one that needs none), given one gradient per
     * output: zeros (or null, see {@link #materializeGrads()}) for an output the loss does not reach, always null for
     * a non-differentiable one. The engine closes gradOutputs after it returns.
     */
    protected abstract Tensor[] backwardMulti(Tensor[] gradOutputs);

    /** Whether an output that received no gradient gets zeros (true, torch's default) or null in backwardMulti. */
    protected boolean materializeGrads() { return true; }

    protected static Tensor[] outputs(Tensor... t) { return t; }

    /**
     * Marks output t (one that forwardMulti returns, such as indices) as non-differentiable, as torch's
     * {@code ctx.mark_non_differentiable}: its Var requires no gradient. Call in forwardMulti; returns t.
     */
    protected final Tensor markNonDifferentiable(Tensor t) {
        nonDiff = Arrays.copyOf(nonDiff, nonDiff.length + 1);
        nonDiff[nonDiff.length - 1] = t;
        return t;
    }

    @Override
    protected final Tensor forward(Tensor... inputs) {
        throw new IllegalStateException(name() + " is a MultiFunction (several outputs): call applyMulti, not apply");
    }

    @Override
    protected final Tensor[] backward(Tensor gradOutput) {
        throw new IllegalStateException(name() + " is a MultiFunction (several outputs): its backward is backwardMulti");
    }

    /**
     * Applies this function, returning one Var per output, in forwardMulti's order. A graph node is recorded when any
     * input requires a gradient (and recording is on); the non-differentiable outputs never get one.
     */
    public final Var[] applyMulti(Var... in) {
        Tensor[] values = bind(in);
        boolean record = recording();
        String prevLabel = Profile.enter(this);
        Tensor[] out = null;
        try {
            long t0 = Profile.start();
            out = forwardMulti(values);
            if (!profilesItself()) Profile.stop(Profile.Part.ELEMENTWISE, t0);
            checkOutputs(out);
        } catch (RuntimeException | Error e) {
            // as apply: no node would free what forwardMulti saved or retained; and, as apply's failed stop, the outputs
            // it made go too (no Var will own them), except an input's own tensor returned as an output
            try { release(); } catch (RuntimeException r) { e.addSuppressed(r); }
            if (out != null)
                for (Tensor o : out) {
                    boolean input = false;
                    for (Tensor v : values) input |= o == v;
                    if (o != null && !input) try { o.close(); } catch (RuntimeException c) { e.addSuppressed(c); }
                }
            throw e;
        } finally {
            Profile.exit(prevLabel);
        }
        Var[] result = new Var[out.length];
        outs = new Var[out.length];
        outShapes = new int[out.length][];
        outTypes = new DType[out.length];
        outDevices = new Device[out.length];
        for (int k = 0; k < out.length; k++) {
            Tensor o = out[k];
            boolean differentiable = record && !isMarked(o);
            // an output that is an input's tensor, a saved one or another output's would be closed with that one: its
            // own reference (as apply's)
            boolean shared = false;
            for (Tensor v : values) shared |= o == v;
            for (Tensor t : saved) shared |= o == t;
            for (int j = 0; j < k; j++) shared |= o == out[j];
            if (shared) o = o.alias();
            outShapes[k] = o.shape();
            outTypes[k] = o.dtype();
            outDevices[k] = o.device();
            result[k] = differentiable ? new Var(o, true, this) : new Var(o, false, null);
            if (differentiable) { outs[k] = result[k]; open++; }
        }
        nonDiff = null;
        if (open == 0) release();   // no graph (no-grad, constants) or nothing differentiable: nothing will run backward
        return result;
    }

    private boolean isMarked(Tensor o) {
        for (Tensor t : nonDiff) if (t == o) return true;
        return false;
    }

    private void checkOutputs(Tensor[] out) {
        if (out == null || out.length == 0)
            throw new IllegalStateException(name() + ".forwardMulti returned " + (out == null ? "null" : "no outputs") + "; return at least one");
        for (int k = 0; k < out.length; k++)
            if (out[k] == null) throw new IllegalStateException(name() + ".forwardMulti returned null for output " + k);
        for (Tensor t : nonDiff) {
            boolean found = false;
            for (Tensor o : out) found |= o == t;
            if (!found)
                throw new IllegalStateException(name() + " marked a tensor " + fst4j.tensor.Shape.str(t.shape())
                        + " non-differentiable that is not one of the outputs forwardMulti returned");
        }
    }

    /** The differentiable output Vars (null where not), for the engine. */
    final Var[] outputVars() { return outs; }

    /** Zeros for output k, which no gradient reached. */
    final Tensor zeroGrad(int k) { return Tensor.empty(outDevices[k], outTypes[k], outShapes[k]).fill(0.0); }

    @Override
    void outputClosed() {
        if (--open > 0) return;   // another output still needs what was saved
        release();
    }
}
