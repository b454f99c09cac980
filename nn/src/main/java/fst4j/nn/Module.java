package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A layer or model, as torch.nn.Module: named parameters (leaf Vars), buffers (running statistics),
 * child modules, and a train/eval mode. Parameters and buffers are unowned off-heap tensors that live
 * until {@link #close()}, whatever scope the module was built in.
 *
 * <p>Threads, as a PyTorch user expects: once built, moved and put in eval mode ({@link #eval()}), a model's forward may
 * run on several threads at once (inference serving two threads; one Upsample shared by data-loading threads), with
 * or without {@code Grad.noGrad()}, and each thread gets the bits a single thread would. What a forward touches
 * besides its own temporaries is read-only there, atomic (the shared weights' reference counts, the profile's totals)
 * or kept under a lock (the kept causal mask of {@link MultiheadAttention}, {@link Upsample}'s tables, the stateful
 * sparsifiers, the pruned and compressed S(W) each sparse layer keeps for forwards without W's gradient). Training one
 * model from two threads at once is not supported: a train-mode forward updates batch norm's running statistics in
 * place, backward accumulates into the parameters' gradients and keeps per-layer state (ReSprop's sample, the Eq. 2 /
 * Eq. 3 sharing of a layer's node), and the optimizer's step writes the parameters; run them on one thread at a time.
 * Changing the module ({@link #train}, {@link #to}, {@link #close}, loading a state dict) while another thread runs
 * its forward is not supported either.
 */
public abstract class Module implements AutoCloseable {
    private final Map<String, Var> params = new LinkedHashMap<>();
    private final Map<String, Tensor> buffers = new LinkedHashMap<>();
    private final Map<String, Module> children = new LinkedHashMap<>();
    private boolean training = true;

    public abstract Var forward(Var x);

    protected final Var parameter(String name, Tensor init) {
        Var p = Scope.within(null, () -> Var.param(init.contiguous()));
        init.close();
        if (params.putIfAbsent(name, p) != null) throw new IllegalArgumentException("duplicate parameter name " + name);
        return p;
    }

    protected final Tensor buffer(String name, Tensor init) {
        Tensor b = Scope.within(null, init::contiguous);
        init.close();
        if (buffers.putIfAbsent(name, b) != null) throw new IllegalArgumentException("duplicate buffer name " + name);
        return b;
    }

    /** The buffer registered under name (looked up at use, so that {@link #to} can replace it). */
    protected final Tensor buffer(String name) {
        Tensor b = buffers.get(name);
        if (b == null) throw new IllegalArgumentException("no buffer " + name);
        return b;
    }

    /**
     * Moves every parameter and buffer, recursively, to device d in place (copies; the old tensors are closed).
     * Layers keep their Vars, so optimizers may be created before or after; SGD makes its momentum buffers on the
     * parameters' device at the first step.
     */
    public Module to(fst4j.tensor.Device d) {
        params.values().forEach(p -> p.moveTo(d));
        buffers.replaceAll((k, t) -> {
            if (t.device() == d) return t;
            Tensor moved = Scope.within(null, () -> t.to(d));
            t.close();
            return moved;
        });
        children.values().forEach(c -> c.to(d));
        return this;
    }

    protected final <M extends Module> M child(String name, M m) {
        if (children.putIfAbsent(name, m) != null) throw new IllegalArgumentException("duplicate child name " + name);
        return m;
    }

    public Map<String, Module> children() { return java.util.Collections.unmodifiableMap(children); }

    /**
     * Every parameter, depth-first, with dotted names as in PyTorch's state_dict; a parameter reached twice (a module used
     * in two places: tied weights, a reused block) once, under its first name, as torch's {@code named_parameters}, so
     * that an optimizer gets it once (the state dict keeps every name).
     */
    public Map<String, Var> namedParameters() {
        Map<String, Var> all = new LinkedHashMap<>(), out = new LinkedHashMap<>();
        collect("", all, null);
        java.util.Set<Var> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        all.forEach((k, v) -> { if (seen.add(v)) out.put(k, v); });
        return out;
    }

    public List<Var> parameters() { return new ArrayList<>(namedParameters().values()); }

    /** Drops every parameter's gradient (closes it; the next backward starts from none), as torch's {@code model.zero_grad()}. */
    public void zeroGrad() { parameters().forEach(Var::zeroGrad); }

    /**
     * The child at a dotted path ("3.conv1", as in {@link #namedParameters()} and Models.override), as PyTorch's
     * {@code get_submodule}; "" is this module.
     */
    public Module submodule(String path) {
        Module m = this;
        if (path.isEmpty()) return m;
        String walked = "";
        for (String part : path.split("\\.", -1)) {
            Module c = m.children.get(part);
            if (c == null)
                throw new IllegalArgumentException("no module '" + path + "': " + (walked.isEmpty() ? "the model" : "'" + walked + "'")
                        + " has no child '" + part + "'; its children: " + m.children.keySet());
            walked = walked.isEmpty() ? part : walked + "." + part;
            m = c;
        }
        return m;
    }

    /**
     * Freezes (on = false) or unfreezes every parameter of this module and its children, as PyTorch's
     * {@code module.requires_grad_(on)}: see {@link Var#requiresGrad(boolean)}. Buffers are not parameters: batch norm in
     * training mode still updates its running statistics ({@link #eval()} that layer to keep them too).
     */
    public Module requiresGrad(boolean on) {
        namedParameters().values().forEach(p -> p.requiresGrad(on));
        return this;
    }

    /**
     * Freezes the parameters under each name, for fine-tuning: a module path ("0" for the stem conv, "3.conv1") takes all
     * of its parameters, a parameter's own name ("1.weight") that one. A frozen parameter gets no gradient, its layer
     * skips computing one, and an optimizer step leaves it as it is; checkpoints save and load it as any other. Returns
     * the parameter names it froze, in model order; a name that matches nothing is refused (a typo froze nothing). An
     * optimizer skips them while they have no gradient, whether it was built before or after freezing (call
     * {@code zeroGrad()} after freezing if a gradient from an earlier backward is still there, as in PyTorch).
     */
    public List<String> freeze(String... names) { return setRequiresGrad(false, names); }

    /** Undoes {@link #freeze} for the parameters under each name (module path or parameter name); returns their names. */
    public List<String> unfreeze(String... names) { return setRequiresGrad(true, names); }

    private List<String> setRequiresGrad(boolean on, String... names) {
        if (names.length == 0) throw new IllegalArgumentException("no names given: pass module paths (\"0\", \"3.conv1\") or parameter names; requiresGrad(" + on + ") takes all");
        Map<String, Var> all = namedParameters();
        java.util.Set<String> matched = new java.util.HashSet<>();
        for (String n : names) {
            boolean found = false;
            for (String k : all.keySet())
                if (n.isEmpty() || k.equals(n) || k.startsWith(n + ".")) {   // "1" is not a prefix of "10.weight"
                    found = true;
                    matched.add(k);
                }
            if (!found)
                throw new IllegalArgumentException("no parameter or module with parameters named '" + n + "'; parameters: " + all.keySet());
        }
        List<String> ordered = new ArrayList<>();
        for (String k : all.keySet()) if (matched.contains(k)) { all.get(k).requiresGrad(on); ordered.add(k); }
        return ordered;
    }

    /** Parameters' values and buffers, by dotted name (live references, not copies). */
    public Map<String, Tensor> stateDict() {
        Map<String, Var> p = new LinkedHashMap<>();
        Map<String, Tensor> b = new LinkedHashMap<>();
        collect("", p, b);
        Map<String, Tensor> out = new LinkedHashMap<>();
        p.forEach((k, v) -> out.put(k, v.value()));
        out.putAll(b);
        return out;
    }

    /** Buffers (batch norm's running statistics, ...) by dotted name: live references, not copies. */
    public Map<String, Tensor> namedBuffers() {
        Map<String, Var> p = new LinkedHashMap<>();
        Map<String, Tensor> b = new LinkedHashMap<>();
        collect("", p, b);
        return b;
    }

    /** Copies state into this module's parameters and buffers; all keys and shapes are checked before the first copy. */
    public void loadStateDict(Map<String, Tensor> state) {
        checkStateDict(state);
        Map<String, Tensor> mine = stateDict();
        for (Map.Entry<String, Tensor> e : state.entrySet()) mine.get(e.getKey()).copyFrom(e.getValue());
    }

    /**
     * What {@link #loadStateDict} would refuse, without changing anything: every missing key, every unexpected key and
     * every shape mismatch, in one message (as torch's load_state_dict lists them), so that a state dict of another
     * architecture shows how it differs.
     */
    public void checkStateDict(Map<String, Tensor> state) {
        Map<String, Tensor> mine = stateDict();
        List<String> missing = new ArrayList<>(), unexpected = new ArrayList<>(), problems = new ArrayList<>();
        for (String k : mine.keySet()) if (!state.containsKey(k)) missing.add(k);
        for (String k : state.keySet()) if (!mine.containsKey(k)) unexpected.add(k);
        if (!missing.isEmpty()) problems.add("state dict is missing " + names(missing));
        if (!unexpected.isEmpty()) problems.add("unexpected key(s) in state dict: " + names(unexpected));
        for (Map.Entry<String, Tensor> e : state.entrySet()) {
            Tensor dst = mine.get(e.getKey());
            if (dst == null) continue;
            e.getValue().check();
            if (!Arrays.equals(dst.shape(), e.getValue().shape()))
                problems.add("shape mismatch for " + e.getKey() + ": " + Arrays.toString(e.getValue().shape()) + " vs " + Arrays.toString(dst.shape()));
        }
        if (!problems.isEmpty()) throw new IllegalArgumentException(String.join("; ", problems));
    }

    /** Up to 8 names, then how many more. */
    private static String names(List<String> keys) {
        int shown = Math.min(keys.size(), 8);
        return String.join(", ", keys.subList(0, shown)) + (keys.size() > shown ? " and " + (keys.size() - shown) + " more" : "");
    }

    private void collect(String prefix, Map<String, Var> p, Map<String, Tensor> b) {
        params.forEach((k, v) -> p.put(prefix + k, v));
        if (b != null) buffers.forEach((k, v) -> b.put(prefix + k, v));
        children.forEach((k, m) -> m.collect(prefix + k + ".", p, b));
    }

    public boolean isTraining() { return training; }

    /**
     * Sets training (on) or evaluation mode here and in every child; returns this module. Sequential, BasicBlock and the
     * layers with parameters or a mode (Conv2d, Linear, BatchNorm2d, Dropout) return their own type from train, eval and
     * {@link #to}, so that {@code var m = Models.resnetSmall(...).eval()} stays a Sequential; a Module of one's own can do
     * the same by overriding them with its type.
     */
    public Module train(boolean on) {
        training = on;
        children.values().forEach(c -> c.train(on));
        return this;
    }

    /** Training mode, as PyTorch's {@code train()}. */
    public Module train() { return train(true); }

    public Module eval() { return train(false); }

    /**
     * What puts this module's and every descendant's train/eval mode back as it is now, each module its own: for code
     * that evaluates a model for a while and must hand it back as the user set it (a frozen batch norm kept in eval
     * mode inside a training model, PyTorch's fine-tuning recipe, stays in eval mode). {@code train(wasTraining)} on the
     * model alone would put every child in the model's mode. It replays {@link #train(boolean)} parent before children,
     * so each module ends with its own recorded mode and a train override of one's own still runs.
     */
    public Runnable modeRestorer() {
        Map<Module, Boolean> modes = new java.util.IdentityHashMap<>();
        List<Module> order = new ArrayList<>();   // parents before their children
        preOrder(this, order);
        for (Module m : order) modes.put(m, m.training);
        return () -> order.forEach(m -> m.train(modes.get(m)));
    }

    private static void preOrder(Module m, List<Module> out) {
        out.add(m);
        m.children.values().forEach(c -> preOrder(c, out));
    }

    public long parameterCount() { return parameters().stream().mapToLong(v -> v.value().numel()).sum(); }

    /**
     * The module's own settings for {@link #toString}, as torch's {@code extra_repr}: "" where it has none (Sequential,
     * activations); the layers give their sizes and their sparsity configuration.
     */
    protected String extraRepr() { return ""; }

    /** The architecture as torch prints it: the class, its settings, and each child by name, indented. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(getClass().getSimpleName()).append('(').append(extraRepr());
        if (children.isEmpty()) return sb.append(')').toString();
        sb.append('\n');
        children.forEach((k, m) -> sb.append("  (").append(k).append("): ").append(m.toString().replace("\n", "\n  ")).append('\n'));
        return sb.append(')').toString();
    }

    /** Whether {@link #close} has run (its parameters and buffers are freed). */
    public boolean isClosed() { return closed; }

    private volatile boolean closed;

    @Override
    public void close() {
        closed = true;
        params.values().forEach(Var::close);
        buffers.values().forEach(Tensor::close);
        children.values().forEach(Module::close);
    }
}
