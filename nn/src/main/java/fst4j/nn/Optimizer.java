package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Tensor;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a training loop needs of an optimizer ({@link SGD}, {@link AdamW}, or one of your own), as torch.optim.Optimizer:
 * step the parameters that have a gradient, zero the gradients, follow a learning-rate schedule, and save / restore the
 * state that an exact resume needs. The learning rate is the schedule's; each {@link ParamGroup} scales it and has its
 * own weight decay.
 *
 * <p>One thread at a time: step, zeroGrad and the state dict read and write the parameters, their gradients and the
 * optimizer's buffers without locks, as a training step is sequential (a model may serve eval-mode forwards on other
 * threads only while no step runs: see {@link Module}).
 *
 * <pre>{@code
 * try (Optimizer opt = AdamW.withGroups(ParamGroup.splitDecay(model, 0.05), 1e-3, 0.9, 0.999, 1e-8, false)) {
 *     loss.backward(); GradClip.clipGradNorm(opt.params(), 1.0); opt.step(); opt.zeroGrad();
 * }
 * }</pre>
 */
public interface Optimizer extends AutoCloseable {
    /**
     * One update of every parameter with a gradient (the others are skipped, as in PyTorch). Everything is checked
     * first: a refused step changes no parameter, no state and not the step count.
     */
    void step();

    /** Drops every parameter's gradient. */
    default void zeroGrad() { params().forEach(Var::zeroGrad); }

    /** The base learning rate (each group's is this times its {@link ParamGroup#lrScale}). */
    double lr();

    /** Sets the base learning rate (a schedule calls this before each step); refused if negative or NaN. */
    void setLr(double lr);

    /** Every parameter, group after group, in the order {@link State}'s indices count them. */
    List<Var> params();

    /** The groups the parameters came in (one group of everything for the plain constructors). */
    List<ParamGroup> groups();

    /** step() calls that updated (a refused one does not count). */
    long steps();

    /**
     * The state an exact resume needs, as torch's optimizer.state_dict() but flat: per-parameter tensors under
     * "KIND.INDEX" (INDEX in {@link #params()}; SGD: "momentum", AdamW: "exp_avg", "exp_avg_sq", "max_exp_avg_sq") and
     * integer counts (every optimizer: "steps"; AdamW also "step", one count per parameter). The tensors are live
     * references, as Module.stateDict's: write or copy them before the next step, and do not close them. The
     * hyper-parameters are not part of it: they are the constructor's (a trainer rebuilds them from its config).
     */
    State stateDict();

    /**
     * What {@link #loadStateDict} would refuse (an unknown kind, an index without a parameter, a shape or dtype that is
     * not the parameter's, a missing count, state that contradicts itself), naming it, without changing anything.
     */
    void checkStateDict(State state);

    /**
     * Replaces the whole state by a copy of state (on each parameter's device), as saved by {@link #stateDict}; parameters
     * it has no tensors for start afresh at their next step. Checked first ({@link #checkStateDict}): a refused state
     * changes nothing.
     */
    void loadStateDict(State state);

    /** Frees the state's off-heap tensors (not the parameters). */
    @Override
    void close();

    /**
     * An optimizer's state: tensors by "KIND.INDEX" and integer counts by name (int64 in a checkpoint, so that they stay
     * exact). The maps are unmodifiable; the tensors are whatever the maker put in (live references from stateDict).
     */
    record State(Map<String, Tensor> tensors, Map<String, long[]> counts) {
        public State {
            tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
            Map<String, long[]> c = new LinkedHashMap<>();
            counts.forEach((k, v) -> c.put(k, v.clone()));
            counts = Collections.unmodifiableMap(c);
        }

        /** The one count under key; the message names what is missing or malformed. */
        public long count(String key, String who) {
            long[] v = counts.get(key);
            if (v == null) throw new IllegalArgumentException(who + " state has no count '" + key + "'");
            if (v.length != 1) throw new IllegalArgumentException(who + " state's count '" + key + "' has " + v.length + " values, expected 1");
            return v[0];
        }
    }
}
