package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.CudaOps;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * SGD with momentum, Nesterov and (coupled, L2) weight decay, exactly as torch.optim.SGD:
 * g = grad + wd*w; buf = momentum*buf + (1-dampening)*g (buf = g at the first step); d = nesterov ? g + momentum*buf : buf;
 * w -= lr * d. Parameters without a gradient are skipped. Momentum buffers are off-heap and freed by close().
 * With {@link ParamGroup}s each group has its weight decay and lr * its scale (a scale of 1 gives the bits of one group).
 */
public final class SGD implements Optimizer {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final String MOMENTUM = "momentum", STEPS = "steps";
    private final List<Var> params;
    private final List<ParamGroup> groups;
    /** Each parameter's group's lr scale and weight decay, by parameter index. */
    private final double[] lrScale, weightDecay;
    private final double momentum, dampening;
    private final boolean nesterov;
    private double lr;
    private long steps;
    private final Map<Var, Tensor> buffers = new IdentityHashMap<>();

    /** Large parameters are updated by fst_sgd in C (same float operations, same bits); false keeps the Java loop. */
    static boolean nativeStep = !Boolean.getBoolean("fst4j.sgd.java");

    public SGD(List<Var> params, double lr, double momentum, double weightDecay, boolean nesterov) {
        // !(x >= 0): NaN is refused too (a NaN learning rate turned every weight into NaN at the first step)
        this(checkedGroup(params, lr, momentum, weightDecay), lr, momentum, nesterov);
    }

    /** SGD over parameter groups (each its weight decay and lr scale): torch.optim.SGD given param_groups. */
    public static SGD withGroups(List<ParamGroup> groups, double lr, double momentum, boolean nesterov) {
        return new SGD(groups, lr, momentum, nesterov);
    }

    private static List<ParamGroup> checkedGroup(List<Var> params, double lr, double momentum, double weightDecay) {
        if (!OptimState.finiteNonNegative(lr) || !OptimState.finiteNonNegative(momentum) || !OptimState.finiteNonNegative(weightDecay))
            throw new IllegalArgumentException("lr, momentum and weight decay must be finite and >= 0, got " + lr + ", " + momentum + ", " + weightDecay);
        return List.of(ParamGroup.of(params, weightDecay));
    }

    private SGD(List<ParamGroup> groups, double lr, double momentum, boolean nesterov) {
        // an infinite lr or momentum turns every weight into NaN or infinity at the first step, as AdamW's refusal says
        if (!OptimState.finiteNonNegative(lr) || !OptimState.finiteNonNegative(momentum))
            throw new IllegalArgumentException("lr and momentum must be finite and >= 0, got " + lr + ", " + momentum);
        if (nesterov && momentum == 0) throw new IllegalArgumentException("Nesterov momentum needs momentum > 0");
        this.params = new ArrayList<>(ParamGroup.flatten(groups, "SGD"));
        this.groups = List.copyOf(groups);
        this.lrScale = ParamGroup.perParameter(groups, ParamGroup::lrScale);
        this.weightDecay = ParamGroup.perParameter(groups, ParamGroup::weightDecay);
        this.lr = lr;
        this.momentum = momentum;
        this.nesterov = nesterov;
        this.dampening = 0;
    }

    @Override public double lr() { return lr; }
    @Override public void setLr(double lr) {
        if (!OptimState.finiteNonNegative(lr)) throw new IllegalArgumentException("lr must be finite and >= 0, got " + lr);   // as in the constructor
        this.lr = lr;
    }
    @Override public long steps() { return steps; }
    @Override public List<Var> params() { return params; }
    @Override public List<ParamGroup> groups() { return groups; }

    @Override public void zeroGrad() { params.forEach(Var::zeroGrad); }

    @Override public void step() { step(Map.of(), 0f); }

    /**
     * The step with SR-STE's decay (SrSte.stepWithDecay): each weight in decayRows (with the length of its rows) first
     * gets lambda (W - S(W)) added to its gradient, fused into the native update when the rows are a multiple of 4 long
     * (the gradient then stays as it was), else applied to the gradient before the update.
     */
    void step(Map<Var, Integer> decayRows, float lambda) {
        // everything is checked before anything changes: a closed parameter or a malformed gradient found half way
        // through left the parameters before it stepped, the rest not, and the step count behind
        OptimState.checkOpen(params, "SGD");
        for (Var p : params) {
            Tensor g = p.grad();
            if (g == null) continue;
            OptimState.checkGradient(p.value(), g, "SGD");   // value() throws if closed
        }
        for (int pi = 0; pi < params.size(); pi++) {
            Var p = params.get(pi);
            Tensor g = p.grad();
            if (g == null) continue;
            Tensor w = p.value();
            // lr * 1.0 is lr: one group, or a scale of 1, gives the bits of the plain constructor
            float lrf = (float) (lr * lrScale[pi]), wd = (float) weightDecay[pi];
            w.markModified();   // a graph still holding w for backward (retainGraph) refuses it from now on, as PyTorch's
            Integer k = decayRows.get(p);
            boolean fuse = k != null && k % 4 == 0 && (w.device() == Device.CUDA ? fusedOnDevice : nativeUpdate(w.numel()))
                    && g.isContiguous() && g.dtype() == DType.F32 && g.numel() == w.numel();
            if (k != null && !fuse) SrSte.decay(p, k, lambda);
            if (w.device() == Device.CUDA) { stepOnDevice(p, w, g, fuse ? k : 0, lambda, lrf, wd); continue; }
            MemorySegment ws = w.data(), gs = g.data();
            long n = w.numel();
            float mom = (float) momentum, damp = (float) (1 - dampening);
            if (nativeUpdate(n)) {
                Tensor buf = null;
                boolean first = false;
                if (momentum != 0) {
                    buf = buffers.get(p);
                    first = buf == null;
                    if (first) { buf = Scope.within(null, () -> Tensor.zeros(w.shape())); buffers.put(p, buf); }
                }
                MemorySegment bs = buf == null ? MemorySegment.NULL : buf.data();
                if (fuse) Native.sgdSrste(ws, gs, bs, n, k, lambda, lrf, wd, mom, damp, nesterov, first, Blas.threads());
                else Native.sgd(ws, gs, bs, n, lrf, wd, mom, damp, nesterov, first, Blas.threads());
                continue;
            }
            if (momentum == 0) {
                for (long i = 0; i < n; i++) {
                    float wi = ws.getAtIndex(F, i);
                    ws.setAtIndex(F, i, wi - lrf * (gs.getAtIndex(F, i) + wd * wi));
                }
                continue;
            }
            Tensor buf = buffers.get(p);
            boolean first = buf == null;
            if (first) { buf = Scope.within(null, () -> Tensor.zeros(w.shape())); buffers.put(p, buf); }
            MemorySegment bs = buf.data();
            for (long i = 0; i < n; i++) {
                float wi = ws.getAtIndex(F, i);
                float gi = gs.getAtIndex(F, i) + wd * wi;
                float b = first ? gi : mom * bs.getAtIndex(F, i) + damp * gi;
                bs.setAtIndex(F, i, b);
                float d = nesterov ? gi + mom * b : b;
                ws.setAtIndex(F, i, wi - lrf * d);
            }
        }
        steps++;
    }

    /** Whether a CPU parameter of n floats is updated by the C loop (fst_sgd, or fst_sgd_srste with the decay). */
    private static boolean nativeUpdate(long n) { return nativeStep && Native.isLoaded() && n >= 1024; }

    /**
     * -Dfst4j.cuda.fusedSrste=false: on CUDA, SR-STE's decay as its own kernel before the update (the gradient then holds
     * the decay) instead of one fused kernel (an A/B switch; the same weights and buffers bit for bit).
     */
    static volatile boolean fusedOnDevice = !"false".equals(System.getProperty("fst4j.cuda.fusedSrste"));

    /** The same update for a CUDA parameter: one kernel (CudaOps.sgdStep, or sgdSrsteStep with the decay for rows of decayK > 0). */
    private void stepOnDevice(Var p, Tensor w, Tensor g, int decayK, float lambda, float lrf, float wd) {
        float mom = (float) momentum, damp = (float) (1 - dampening);
        Tensor buf = null;
        boolean first = false;
        if (momentum != 0) {
            buf = buffers.get(p);
            first = buf == null;
            if (first) { buf = Scope.within(null, () -> Tensor.empty(Device.CUDA, DType.F32, w.shape())); buffers.put(p, buf); }
        }
        if (decayK > 0) CudaOps.sgdSrsteStep(w, g, buf, decayK, lambda, lrf, wd, momentum == 0 ? 0f : mom, damp, first, nesterov);
        else CudaOps.sgdStep(w, g, buf, lrf, wd, momentum == 0 ? 0f : mom, damp, first, nesterov);
    }

    /** Momentum buffers by parameter index, for checkpoints (null where none yet). */
    public Tensor momentumBuffer(int paramIndex) { return buffers.get(params.get(paramIndex)); }

    /**
     * Restores the momentum buffers (copied; by parameter index, as {@link #momentumBuffer}) and the step count, for exact
     * resume. Every index and shape is checked before anything changes.
     */
    public void restore(long steps, Map<Integer, Tensor> momentumBuffers) {
        if (steps < 0) throw new IllegalArgumentException("step count must be >= 0, got " + steps);
        // a buffer of another shape was taken as it was, and the native update then ran the parameter's length over it
        for (Map.Entry<Integer, Tensor> e : momentumBuffers.entrySet()) {
            int i = e.getKey();
            if (i < 0 || i >= params.size())
                throw new IllegalArgumentException("momentum buffer " + i + " has no parameter: this SGD has " + params.size());
            int[] want = params.get(i).shape(), got = e.getValue().check().shape();
            if (!java.util.Arrays.equals(want, got))
                throw new IllegalArgumentException("momentum buffer " + i + " has shape " + fst4j.tensor.Shape.str(got) + ", its parameter " + fst4j.tensor.Shape.str(want));
        }
        this.steps = steps;
        buffers.values().forEach(Tensor::close);
        buffers.clear();
        momentumBuffers.forEach((i, t) -> buffers.put(params.get(i),
                Scope.within(null, () -> Tensor.empty(params.get(i).value().device(), DType.F32, t.shape()).copyFrom(t))));
    }

    /** "momentum.INDEX" for every buffer made so far (none without momentum) and the count "steps". */
    @Override
    public State stateDict() {
        Map<String, Tensor> t = new java.util.LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) {
            Tensor b = buffers.get(params.get(i));
            if (b != null) t.put(MOMENTUM + "." + i, b);
        }
        return new State(t, Map.of(STEPS, new long[]{steps}));
    }

    @Override
    public void checkStateDict(State state) { momentumOf(state); }

    @Override
    public void loadStateDict(State state) { restore(state.count(STEPS, "SGD"), momentumOf(state)); }

    /** The momentum buffers of state by parameter index, everything in it checked. */
    private Map<Integer, Tensor> momentumOf(State state) {
        long st = state.count(STEPS, "SGD");
        if (st < 0) throw new IllegalArgumentException("SGD state: step count must be >= 0, got " + st);
        for (String k : state.counts().keySet())
            if (!k.equals(STEPS)) throw new IllegalArgumentException("SGD state has a count '" + k + "' that SGD does not keep (only '" + STEPS + "')");
        Map<Integer, Tensor> out = new java.util.HashMap<>();
        for (Map.Entry<String, Tensor> e : state.tensors().entrySet()) {
            int i = OptimState.index(e.getKey(), "SGD", List.of(MOMENTUM), params.size());
            if (momentum == 0)
                throw new IllegalArgumentException("SGD state has " + e.getKey() + ", but this SGD has no momentum (a state saved with momentum > 0?)");
            OptimState.checkLike(e.getKey(), e.getValue(), params.get(i), "SGD");
            out.put(i, e.getValue());
        }
        return out;
    }

    @Override
    public void close() {
        buffers.values().forEach(Tensor::close);
        buffers.clear();
    }
}
