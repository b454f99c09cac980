package fst4j.nn;

import fst4j.autograd.Var;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Parameters that share their optimizer settings, as a torch param_groups entry: a weight decay of their own, and a
 * scale of the optimizer's learning rate (a scale, not a rate, so that one schedule's {@code setLr} moves every group).
 *
 * @param name        what messages call the group
 * @param lrScale     the group's learning rate is the optimizer's times this (finite, >= 0)
 * @param weightDecay the group's weight decay (finite, >= 0): L2 added to the gradient in SGD, decoupled in AdamW
 */
public record ParamGroup(String name, List<Var> params, double lrScale, double weightDecay) {
    public ParamGroup {
        if (name == null) throw new IllegalArgumentException("a parameter group needs a name");
        params = List.copyOf(params);
        // !(x >= 0): NaN is refused too; an infinite one would turn every weight into NaN or infinity at the first step
        if (!(lrScale >= 0) || lrScale == Double.POSITIVE_INFINITY)
            throw new IllegalArgumentException("parameter group " + name + ": lr scale must be finite and >= 0, got " + lrScale);
        if (!(weightDecay >= 0) || weightDecay == Double.POSITIVE_INFINITY)
            throw new IllegalArgumentException("parameter group " + name + ": weight decay must be finite and >= 0, got " + weightDecay);
    }

    /** One group of params with this weight decay and the optimizer's learning rate. */
    public static ParamGroup of(List<Var> params, double weightDecay) { return new ParamGroup("all", params, 1.0, weightDecay); }

    public ParamGroup withLrScale(double scale) { return new ParamGroup(name, params, scale, weightDecay); }

    /**
     * The usual split of a model's parameters (timm's and nanoGPT's): "decay", with weightDecay, holds the weights of
     * convolutions and linear layers; "no_decay", with none, holds biases, batch norm's scale and shift and every other
     * parameter of fewer than 2 dimensions, whose decay only pulls a layer's offsets and scales towards 0 without
     * regularising what it computes. Both in the model's parameter order; either may be empty.
     */
    public static List<ParamGroup> splitDecay(Module model, double weightDecay) {
        Set<Var> norm = Collections.newSetFromMap(new IdentityHashMap<>());
        collectNorm(model, norm);
        List<Var> decay = new ArrayList<>(), none = new ArrayList<>();
        for (Map.Entry<String, Var> e : model.namedParameters().entrySet()) {
            Var p = e.getValue();
            String n = e.getKey();
            boolean skip = norm.contains(p) || n.equals("bias") || n.endsWith(".bias") || p.shape().length < 2;
            (skip ? none : decay).add(p);
        }
        return List.of(new ParamGroup("decay", decay, 1.0, weightDecay), new ParamGroup("no_decay", none, 1.0, 0.0));
    }

    private static void collectNorm(Module m, Set<Var> out) {
        if (m instanceof BatchNorm2d) out.addAll(m.namedParameters().values());
        m.children().values().forEach(c -> collectNorm(c, out));
    }

    /**
     * Every parameter of groups in order, each one an optimizer can step: refusing one listed twice (it would be stepped
     * twice per step), a computed value (a non-leaf: stepping it would change nothing the next forward reads) and one
     * that is not contiguous float32 (what the updates take). A frozen parameter is taken: optimizers skip it while it
     * has no gradient, as torch.optim does.
     */
    static List<Var> flatten(List<ParamGroup> groups, String who) {
        if (groups.isEmpty()) throw new IllegalArgumentException(who + " given no parameter groups");
        Set<Var> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        List<Var> out = new ArrayList<>();
        for (ParamGroup g : groups)
            for (Var p : g.params()) {
                if (!seen.add(p))
                    throw new IllegalArgumentException(who + " given the same parameter " + fst4j.tensor.Shape.str(p.shape()) + " twice (group " + g.name() + ")");
                if (!p.isLeaf()) throw new IllegalArgumentException(who + " given a computed Var (a non-leaf), not a parameter");
                if (p.value().dtype() != fst4j.tensor.DType.F32 || !p.value().isContiguous())
                    throw new IllegalArgumentException(who + " parameters must be contiguous float32, got a " + p.value().dtype() + " "
                            + fst4j.tensor.Shape.str(p.shape()) + (p.value().isContiguous() ? "" : ", not contiguous"));
                out.add(p);
            }
        return out;
    }

    /** setting of each parameter's group, by parameter index in {@link #flatten}'s order. */
    static double[] perParameter(List<ParamGroup> groups, java.util.function.ToDoubleFunction<ParamGroup> setting) {
        return groups.stream().flatMapToDouble(g -> java.util.stream.DoubleStream.generate(() -> setting.applyAsDouble(g)).limit(g.params().size())).toArray();
    }

    /** The group's name, size and settings (the record's default printed every parameter tensor in full). */
    @Override
    public String toString() {
        long values = params.stream().mapToLong(v -> v.isClosed() ? 0 : v.value().numel()).sum();
        return "ParamGroup[name=" + name + ", " + params.size() + " parameters (" + values + " values), lrScale=" + lrScale + ", weightDecay=" + weightDecay + "]";
    }
}
