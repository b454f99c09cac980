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
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Adam with decoupled weight decay, exactly as torch.optim.AdamW (Loshchilov and Hutter 2019; torch 1.13's single-tensor
 * loop): for a parameter at its t-th step (t counts that parameter's steps: one without a gradient is skipped and does
 * not count),
 * <pre>
 *   w = w * (1 - lr*wd)                                      decoupled decay, before the Adam update
 *   m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g  (m, v start at 0)
 *   v_hat = amsgrad ? (vmax = max(vmax, v)) : v              NaN wins, as torch.maximum
 *   w = w - (lr / (1 - beta1^t)) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)
 * </pre>
 * eps is added outside the square root, after the bias correction of v, as in torch (not to v_hat inside it).
 *
 * <p>The scalars {@link Scalars} lists are derived once per parameter and step in double, beta^t by StrictMath.pow, then
 * rounded to float. Each element then takes these float operations, in this order and without fused multiply-adds, in the
 * Java loop ({@link #update}), the C shim (fst_adamw, optim.c) and the CUDA kernel (k_adamw), which therefore give the
 * same bits: wd' = w*decay; m' = m*beta1 + c1*g; v' = v*beta2 + (c2*g)*g; vh = amsgrad ? max(vmax, v') : v';
 * d = sqrt(vh)/bc2 + eps (sqrt correctly rounded); w' = wd' - (step*m')/d. That is torch's order (mul_, add_ with alpha,
 * addcmul_, sqrt, div, add_, addcdiv_ with value -step, whose negation is exact); torch's vectorised CPU add_ may fuse
 * m*beta1 + c1*g into one FMA, so against torch the results agree to rounding, not bit for bit.
 *
 * <p>Hyper-parameters are refused when NaN, negative or infinite, betas outside [0, 1), as torch refuses them (which lets
 * infinities through). Moments are off-heap float32 tensors on each parameter's device, made at its first step and freed
 * by close(). SR-STE's decay (SrSte.addDecay) edits gradients and so works before this step like before any other.
 */
public final class AdamW implements Optimizer {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    static final String EXP_AVG = "exp_avg", EXP_AVG_SQ = "exp_avg_sq", MAX_EXP_AVG_SQ = "max_exp_avg_sq", STEPS = "steps", STEP = "step";
    /** torch.optim.AdamW's defaults. */
    public static final double DEFAULT_BETA1 = 0.9, DEFAULT_BETA2 = 0.999, DEFAULT_EPS = 1e-8, DEFAULT_WEIGHT_DECAY = 1e-2;

    private final List<Var> params;
    private final List<ParamGroup> groups;
    private final double[] lrScale, weightDecay;
    private final double beta1, beta2, eps;
    private final boolean amsgrad;
    private double lr;
    private long steps;
    /** Per parameter index: its steps so far (t of the bias corrections) and its moments (null until its first step). */
    private final long[] paramSteps;
    private final Tensor[] expAvg, expAvgSq, maxExpAvgSq;

    /** Large CPU parameters are updated by fst_adamw in C (the same float operations, the same bits); false keeps the Java loop. */
    static boolean nativeStep = !Boolean.getBoolean("fst4j.adamw.java");

    /** torch.optim.AdamW(params, lr, betas=(beta1, beta2), eps, weight_decay, amsgrad). */
    public AdamW(List<Var> params, double lr, double beta1, double beta2, double eps, double weightDecay, boolean amsgrad) {
        this(List.of(group(params, weightDecay)), lr, beta1, beta2, eps, amsgrad);
    }

    /** torch.optim.AdamW(params, lr, weight_decay=weightDecay) with torch's betas (0.9, 0.999) and eps 1e-8. */
    public AdamW(List<Var> params, double lr, double weightDecay) {
        this(params, lr, DEFAULT_BETA1, DEFAULT_BETA2, DEFAULT_EPS, weightDecay, false);
    }

    /** AdamW over parameter groups (each its weight decay and lr scale): torch.optim.AdamW given param_groups. */
    public static AdamW withGroups(List<ParamGroup> groups, double lr, double beta1, double beta2, double eps, boolean amsgrad) {
        return new AdamW(groups, lr, beta1, beta2, eps, amsgrad);
    }

    private static ParamGroup group(List<Var> params, double weightDecay) {
        if (!OptimState.finiteNonNegative(weightDecay)) throw new IllegalArgumentException("AdamW: weight decay must be finite and >= 0, got " + weightDecay);
        return ParamGroup.of(params, weightDecay);
    }


    private AdamW(List<ParamGroup> groups, double lr, double beta1, double beta2, double eps, boolean amsgrad) {
        checkLr(lr);
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
            throw new IllegalArgumentException("AdamW: betas must be in [0, 1), got (" + beta1 + ", " + beta2 + ")");
        if (!OptimState.finiteNonNegative(eps)) throw new IllegalArgumentException("AdamW: eps must be finite and >= 0, got " + eps);
        this.params = new ArrayList<>(ParamGroup.flatten(groups, "AdamW"));
        this.groups = List.copyOf(groups);
        int n = params.size();
        this.lrScale = ParamGroup.perParameter(groups, ParamGroup::lrScale);
        this.weightDecay = ParamGroup.perParameter(groups, ParamGroup::weightDecay);
        this.lr = lr;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.amsgrad = amsgrad;
        this.paramSteps = new long[n];
        this.expAvg = new Tensor[n];
        this.expAvgSq = new Tensor[n];
        this.maxExpAvgSq = new Tensor[n];
    }

    private static void checkLr(double lr) {
        if (!OptimState.finiteNonNegative(lr)) throw new IllegalArgumentException("AdamW: lr must be finite and >= 0, got " + lr);
    }

    @Override public double lr() { return lr; }
    @Override public void setLr(double lr) { checkLr(lr); this.lr = lr; }
    @Override public List<Var> params() { return params; }
    @Override public List<ParamGroup> groups() { return groups; }
    @Override public long steps() { return steps; }
    public double beta1() { return beta1; }
    public double beta2() { return beta2; }
    public double eps() { return eps; }
    public boolean amsgrad() { return amsgrad; }

    /**
     * The per-step float scalars of one parameter's update (what the C and CUDA updates take), derived in double:
     * decay = 1 - lr*wd, c1 = 1 - beta1, c2 = 1 - beta2, step = lr / (1 - beta1^t), bc2 = sqrt(1 - beta2^t).
     */
    public record Scalars(float decay, float beta1, float c1, float beta2, float c2, float step, float bc2, float eps) {
        public static Scalars of(double lr, double weightDecay, double beta1, double beta2, double eps, long t) {
            if (t < 1) throw new IllegalArgumentException("AdamW: the step count t of a bias correction starts at 1, got " + t);
            double bc1 = 1 - StrictMath.pow(beta1, t), bc2 = Math.sqrt(1 - StrictMath.pow(beta2, t));
            return new Scalars((float) (1 - lr * weightDecay), (float) beta1, (float) (1 - beta1), (float) beta2, (float) (1 - beta2),
                    (float) (lr / bc1), (float) bc2, (float) eps);
        }
    }

    @Override
    public void step() {
        // everything is checked before anything changes (as SGD): a malformed gradient found half way left some
        // parameters stepped and the rest not
        OptimState.checkOpen(params, "AdamW");
        Scalars[] scalars = new Scalars[params.size()];
        for (int i = 0; i < params.size(); i++) {
            Var p = params.get(i);
            Tensor g = p.grad();
            if (g == null) continue;
            OptimState.checkGradient(p.value(), g, "AdamW");   // value() throws if closed
            Scalars s = Scalars.of(lr * lrScale[i], weightDecay[i], beta1, beta2, eps, paramSteps[i] + 1);
            // finite hyper-parameters can still overflow a float here (lr 1e39, or lr*wd): C and CUDA would refuse it half way
            if (!Float.isFinite(s.step()) || !Float.isFinite(s.decay()))
                throw new IllegalStateException("AdamW: parameter " + i + "'s step size lr / (1 - beta1^t) = " + s.step() + " or decay 1 - lr*wd = "
                        + s.decay() + " is not a finite float (lr " + lr * lrScale[i] + ", weight decay " + weightDecay[i] + ")");
            scalars[i] = s;
        }
        for (int i = 0; i < params.size(); i++) {
            Var p = params.get(i);
            Tensor g = p.grad();
            if (g == null) continue;
            Tensor w = p.value();
            w.markModified();   // a graph still holding w for backward (retainGraph) refuses it from now on, as PyTorch's
            if (expAvg[i] == null) {
                expAvg[i] = zerosLike(w);
                expAvgSq[i] = zerosLike(w);
                if (amsgrad) maxExpAvgSq[i] = zerosLike(w);
            }
            paramSteps[i]++;
            Scalars s = scalars[i];
            Tensor vmax = amsgrad ? maxExpAvgSq[i] : null;
            if (w.device() == Device.CUDA) {
                CudaOps.adamwStep(w, g, expAvg[i], expAvgSq[i], vmax, s.decay(), s.beta1(), s.c1(), s.beta2(), s.c2(), s.step(), s.bc2(), s.eps());
                continue;
            }
            long n = w.numel();
            MemorySegment vm = vmax == null ? MemorySegment.NULL : vmax.data();
            if (nativeUpdate(n))
                Native.adamw(w.data(), g.data(), expAvg[i].data(), expAvgSq[i].data(), vm, n, s.decay(), s.beta1(), s.c1(), s.beta2(), s.c2(),
                        s.step(), s.bc2(), s.eps(), Blas.threads());
            else update(w.data(), g.data(), expAvg[i].data(), expAvgSq[i].data(), vm, n, s);
        }
        steps++;
    }

    private static Tensor zerosLike(Tensor w) {
        return Scope.within(null, () -> Tensor.zeros(w.device(), DType.F32, w.shape()));
    }

    /** Whether a CPU parameter of n floats is updated by the C loop (fst_adamw). */
    private static boolean nativeUpdate(long n) { return nativeStep && Native.isLoaded() && n >= 1024; }

    /**
     * The reference update of n contiguous floats (vmax NULL: no amsgrad), the float operations of the class comment in
     * their order; fst_adamw and k_adamw are its twins.
     */
    static void update(MemorySegment w, MemorySegment g, MemorySegment m, MemorySegment v, MemorySegment vmax, long n, Scalars s) {
        final float decay = s.decay(), b1 = s.beta1(), c1 = s.c1(), b2 = s.beta2(), c2 = s.c2(), step = s.step(), bc2 = s.bc2(), eps = s.eps();
        final boolean ams = !vmax.equals(MemorySegment.NULL);
        for (long i = 0; i < n; i++) {
            final float wi = w.getAtIndex(F, i) * decay, gi = g.getAtIndex(F, i);
            final float mi = m.getAtIndex(F, i) * b1 + c1 * gi;
            final float vi = v.getAtIndex(F, i) * b2 + c2 * gi * gi;
            m.setAtIndex(F, i, mi);
            v.setAtIndex(F, i, vi);
            float vh = vi;
            if (ams) {
                vh = Math.max(vmax.getAtIndex(F, i), vi);   // NaN wins, +0 over -0: C's and CUDA's jmax
                vmax.setAtIndex(F, i, vh);
            }
            final float d = (float) Math.sqrt(vh) / bc2 + eps;   // the double sqrt of a float, rounded: sqrtf's bits
            w.setAtIndex(F, i, wi - step * mi / d);
        }
    }

    /**
     * The moments of parameter i ("exp_avg.i", "exp_avg_sq.i" and with amsgrad "max_exp_avg_sq.i", for every parameter
     * stepped so far) and the counts "steps" and "step" (each parameter's own step count, by index; 0 before its first).
     */
    @Override
    public State stateDict() {
        Map<String, Tensor> t = new LinkedHashMap<>();
        for (int i = 0; i < params.size(); i++) {
            if (expAvg[i] == null) continue;
            t.put(EXP_AVG + "." + i, expAvg[i]);
            t.put(EXP_AVG_SQ + "." + i, expAvgSq[i]);
            if (amsgrad) t.put(MAX_EXP_AVG_SQ + "." + i, maxExpAvgSq[i]);
        }
        Map<String, long[]> c = new LinkedHashMap<>();
        c.put(STEPS, new long[]{steps});
        c.put(STEP, paramSteps.clone());
        return new State(t, c);
    }

    @Override
    public void checkStateDict(State state) { parse(state); }

    /** A checked state: by parameter index, its moments (all or none) and step count. */
    private record Parsed(long steps, long[] paramSteps, Tensor[][] moments) {}

    private Parsed parse(State state) {
        String who = "AdamW";
        long st = state.count(STEPS, who);
        if (st < 0) throw new IllegalArgumentException("AdamW state: step count must be >= 0, got " + st);
        long[] ps = state.counts().get(STEP);
        if (ps == null) throw new IllegalArgumentException("AdamW state has no count '" + STEP + "' (each parameter's step count)");
        if (ps.length != params.size())
            throw new IllegalArgumentException("AdamW state has step counts for " + ps.length + " parameters, this AdamW has " + params.size());
        for (String k : state.counts().keySet())
            if (!k.equals(STEPS) && !k.equals(STEP))
                throw new IllegalArgumentException("AdamW state has a count '" + k + "' that AdamW does not keep (only '" + STEPS + "' and '" + STEP + "')");
        List<String> kinds = amsgrad ? List.of(EXP_AVG, EXP_AVG_SQ, MAX_EXP_AVG_SQ) : List.of(EXP_AVG, EXP_AVG_SQ);
        Tensor[][] moments = new Tensor[params.size()][];
        Map<String, Integer> slot = new HashMap<>(Map.of(EXP_AVG, 0, EXP_AVG_SQ, 1, MAX_EXP_AVG_SQ, 2));
        for (Map.Entry<String, Tensor> e : state.tensors().entrySet()) {
            String key = e.getKey();
            if (!amsgrad && key.startsWith(MAX_EXP_AVG_SQ + "."))
                throw new IllegalArgumentException("AdamW state has " + key + ", but this AdamW has no amsgrad (a state saved with amsgrad?)");
            int i = OptimState.index(key, who, kinds, params.size());
            OptimState.checkLike(key, e.getValue(), params.get(i), who);
            if (moments[i] == null) moments[i] = new Tensor[kinds.size()];
            moments[i][slot.get(OptimState.kind(key))] = e.getValue();
        }
        for (int i = 0; i < params.size(); i++) {
            if (ps[i] < 0) throw new IllegalArgumentException("AdamW state: parameter " + i + "'s step count is " + ps[i]);
            // a moment without its step count (or the reverse) would restart the bias correction on moments of many steps
            boolean has = moments[i] != null;
            if (has != (ps[i] > 0))
                throw new IllegalArgumentException("AdamW state: parameter " + i + " has step count " + ps[i] + (has ? " but moments" : " but no moments"));
            if (has)
                for (int k = 0; k < kinds.size(); k++)
                    if (moments[i][k] == null) throw new IllegalArgumentException("AdamW state has no " + kinds.get(k) + "." + i + " beside the other moments of parameter " + i);
        }
        return new Parsed(st, ps.clone(), moments);
    }

    @Override
    public void loadStateDict(State state) {
        Parsed p = parse(state);
        List<Tensor> made = new ArrayList<>();
        Tensor[][] copies = new Tensor[params.size()][];
        try {
            for (int i = 0; i < params.size(); i++) {
                if (p.moments()[i] == null) continue;
                Device d = params.get(i).value().device();
                copies[i] = new Tensor[p.moments()[i].length];
                for (int k = 0; k < copies[i].length; k++) {
                    Tensor src = p.moments()[i][k];
                    Tensor c = Scope.within(null, () -> Tensor.empty(d, DType.F32, src.shape()));
                    made.add(c);
                    c.copyFrom(src);
                    copies[i][k] = c;
                }
            }
        } catch (RuntimeException | Error e) {   // a copy that failed (out of memory) leaves the state as it was
            made.forEach(Tensor::close);
            throw e;
        }
        freeMoments();
        for (int i = 0; i < params.size(); i++) {
            if (copies[i] == null) continue;
            expAvg[i] = copies[i][0];
            expAvgSq[i] = copies[i][1];
            if (amsgrad) maxExpAvgSq[i] = copies[i][2];
        }
        System.arraycopy(p.paramSteps(), 0, paramSteps, 0, paramSteps.length);
        steps = p.steps();
    }

    /** Frees the moments; the step counts restart too, so that a step after close() is a first step again (as SGD's). */
    @Override
    public void close() {
        freeMoments();
        Arrays.fill(paramSteps, 0);
    }

    private void freeMoments() {
        for (Tensor[] ts : new Tensor[][]{expAvg, expAvgSq, maxExpAvgSq})
            for (int i = 0; i < ts.length; i++) {
                if (ts[i] != null) ts[i].close();
                ts[i] = null;
            }
    }

    @Override
    public String toString() {
        return String.format(java.util.Locale.ROOT, "AdamW(lr=%s, betas=(%s, %s), eps=%s, amsgrad=%b, groups=%s)", lr, beta1, beta2, eps, amsgrad,
                Arrays.toString(groups.stream().map(g -> g.name() + ": " + g.params().size() + " params, lr x" + g.lrScale() + ", wd " + g.weightDecay()).toArray()));
    }
}
