package fst4j.autograd;

import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * A tensor that takes part in reverse-mode differentiation: its value, its gradient (leaves only, by
 * default), and the {@link Function} that produced it. Closing a Var closes its value and gradient.
 * <p>
 * Threads: a leaf (a parameter) may be read by forwards on several threads at once, each recording a graph of its own
 * (its references to the leaf's memory are atomic); a graph, its backward and the gradients it accumulates are one
 * thread's, as is closing a given Var.
 */
public final class Var implements AutoCloseable {
    private Tensor value;   // not final: a leaf can be moved to another device (moveTo)
    private Tensor grad;
    private boolean requiresGrad;   // not final: a leaf can be frozen and unfrozen (requiresGrad(boolean))
    private Function gradFn;
    private boolean retainGrad;

    Var(Tensor value, boolean requiresGrad, Function gradFn) {
        this.value = value;
        this.requiresGrad = requiresGrad;
        this.gradFn = gradFn;
    }

    /** A constant (no gradient). The Var takes ownership of t. */
    public static Var of(Tensor t) { return new Var(t, false, null); }

    /** A leaf that accumulates a gradient (a parameter or an input to differentiate). Takes ownership of t. */
    public static Var param(Tensor t) { return new Var(t, true, null); }

    public Tensor value() { return value.check(); }
    /** Whether this Var's value has been closed (by {@link #close}, its Scope, or its module's close). */
    public boolean isClosed() { return value.isClosed(); }
    /** Accumulated gradient (leaves, or non-leaves after {@link #retainGrad()}); null before backward. */
    public Tensor grad() { return grad; }
    public boolean requiresGrad() { return requiresGrad; }

    /**
     * Whether this leaf accumulates a gradient from now on, as PyTorch's {@code requires_grad_}: false freezes a
     * parameter (fine-tuning), which then gets no gradient, so the functions it enters skip computing one (a frozen
     * layer weight skips Eq. 3; an optimizer step leaves a parameter without a gradient as it is). A graph already
     * recorded keeps what it decided at its forward, except that a frozen leaf receives nothing from it. A gradient
     * accumulated before stays until {@link #zeroGrad()}. Only leaves: a computed value's flag follows its inputs.
     */
    public Var requiresGrad(boolean on) {
        if (gradFn != null)
            throw new IllegalStateException("requiresGrad can be changed only on a leaf (a parameter or an input); this value was computed by "
                    + gradFn.name() + ": detach() it for a value without history");
        value.check();
        requiresGrad = on;
        return this;
    }
    public boolean isLeaf() { return gradFn == null; }
    public Function gradFn() { return gradFn; }
    public int[] shape() { return value.shape(); }
    public double item() { return value.item(); }

    /** Keep this non-leaf's gradient after backward, as {@code retain_grad()} does. */
    public Var retainGrad() { retainGrad = true; return this; }

    /** The same value without history (shares storage). */
    public Var detach() { return new Var(value.alias(), false, null); }

    /** Sets the gradient to null, freeing it (optimizers call this, as {@code zero_grad(set_to_none=True)}). */
    public void zeroGrad() {
        if (grad != null) { grad.close(); grad = null; }
    }

    @Override
    public void close() {
        zeroGrad();
        value.close();
        if (gradFn != null) { gradFn.outputClosed(); gradFn = null; }
    }

    /**
     * Moves a leaf (a parameter) to device d in place: its value, and its gradient if any, are copied there and the
     * old tensors closed; nothing happens when it is already there. For models before training (Module.to); a value
     * computed by the graph cannot be moved.
     */
    public void moveTo(Device d) {
        if (gradFn != null) throw new IllegalStateException("only a leaf Var can be moved to another device");
        Tensor v = value.check();
        if (v.device() == d) return;
        value = Scope.within(v.owner(), () -> v.to(d));
        v.close();
        if (grad != null) {
            Tensor g = grad;
            grad = Scope.within(g.owner(), () -> g.to(d));
            g.close();
        }
    }

    /** backward() of a one-element output, with gradient 1. */
    public void backward() {
        if (value.numel() != 1)
            throw new IllegalArgumentException("backward() without a gradient needs a one-element output, shape is " + Shape.str(value.shape()) + "; pass the output gradient");
        try (Tensor one = Tensor.empty(value.device(), value.dtype(), value.shape()).fill(1.0)) { backward(one, false); }
    }

    public void backward(Tensor gradOutput) { backward(gradOutput, false); }

    /**
     * Propagates gradOutput (same shape as the value) to every leaf that requires a gradient, adding to
     * existing gradients. The graph is freed afterwards unless retainGraph.
     */
    public void backward(Tensor gradOutput, boolean retainGraph) {
        if (!requiresGrad)
            throw new IllegalStateException("backward() on a value that does not require a gradient: none of the leaves it was computed from"
                    + " requires one (all frozen, or constants), or it was computed under Grad.noGrad()");
        if (!Arrays.equals(gradOutput.shape(), value.shape()))
            throw new IllegalArgumentException("shape mismatch: output gradient " + Shape.str(gradOutput.shape()) + " for output " + Shape.str(value.shape()));
        if (gradFn == null) { accumulate(this, gradOutput, false); return; }
        if (gradFn.isReleased())
            throw new IllegalStateException("the graph was already freed by a previous backward(); pass retainGraph=true to the first one");

        List<Var> order = topoOrder(this);
        Map<Var, Tensor> pending = new IdentityHashMap<>();
        pending.put(this, gradOutput.alias());
        try {
            backwardIn(order, pending, retainGraph);
        } catch (RuntimeException | Error e) {
            // a node that failed (a refused saved tensor, device memory) leaves the rest of the graph unfreed: freed here
            // unless kept on purpose, with the gradients still pending
            for (Tensor t : pending.values()) {
                try { t.close(); } catch (RuntimeException c) { e.addSuppressed(c); }
            }
            if (!retainGraph)
                for (Var v : order) {
                    try { v.gradFn.release(); } catch (RuntimeException r) { e.addSuppressed(r); }
                }
            throw e;
        }
    }

    private static void backwardIn(List<Var> order, Map<Var, Tensor> pending, boolean retainGraph) {
        for (Var v : order) {
            if (v.gradFn instanceof MultiFunction m) { backwardMulti(m, pending, retainGraph); continue; }
            Tensor g = pending.remove(v);
            if (g == null) continue;
            Function fn = v.gradFn;
            Tensor[] gin = null;
            String prevLabel = Profile.enter(fn);
            try {
                long t0;
                try {
                    if (v.retainGrad) accumulate(v, g, false);
                    t0 = Profile.start();
                    fn.checkSaved();
                    gin = fn.backward(g);
                } finally {
                    g.close();
                }
                if (!fn.profilesItself()) Profile.stop(Profile.Part.ELEMENTWISE, t0);
                passOnBooked(fn, gin, pending, retainGraph);
            } catch (RuntimeException | Error e) {
                closeFrom(gin, 0);   // what passOn had not yet taken (it empties the slots it takes): no one else would free it
                throw e;
            } finally {
                Profile.exit(prevLabel);
            }
        }
        for (Tensor t : pending.values()) t.close();
        pending.clear();
    }

    /**
     * A node with several outputs, reached once in the order (all its outputs' users came before it): each output's
     * pending gradient, zeros (or null) for a differentiable output none reached, null for a non-differentiable one.
     */
    private static void backwardMulti(MultiFunction fn, Map<Var, Tensor> pending, boolean retainGraph) {
        Var[] outs = fn.outputVars();
        Tensor[] g = new Tensor[outs.length];
        boolean any = false;
        for (int k = 0; k < outs.length; k++)
            if (outs[k] != null && (g[k] = pending.remove(outs[k])) != null) any = true;
        if (!any) return;
        Tensor[] gin = null;
        String prevLabel = Profile.enter(fn);
        try {
            long t0;
            try {
                for (int k = 0; k < outs.length; k++)
                    if (g[k] != null && outs[k].retainGrad) accumulate(outs[k], g[k], false);
                t0 = Profile.start();
                if (fn.materializeGrads())
                    for (int k = 0; k < outs.length; k++) if (outs[k] != null && g[k] == null) g[k] = fn.zeroGrad(k);
                fn.checkSaved();
                gin = fn.backwardMulti(g.clone());   // a clone: what backwardMulti does with its array does not change what is closed
            } finally {
                RuntimeException failed = null;
                for (Tensor t : g) if (t != null) try { t.close(); } catch (RuntimeException e) { if (failed == null) failed = e; }
                if (failed != null) throw failed;
            }
            if (!fn.profilesItself()) Profile.stop(Profile.Part.ELEMENTWISE, t0);
            passOnBooked(fn, gin, pending, retainGraph);
        } catch (RuntimeException | Error e) {
            closeFrom(gin, 0);   // as backwardIn: the input gradients passOn had not yet taken (a failed stop, a refused shape)
            throw e;
        } finally {
            Profile.exit(prevLabel);
        }
    }

    /**
     * {@link #passOn}, then fn released unless the graph is kept, booked under the label "gradient accumulation" (the
     * label of fn's own backward restored after).
     */
    private static void passOnBooked(Function fn, Tensor[] gin, Map<Var, Tensor> pending, boolean retainGraph) {
        String prevLabel = Profile.enter("gradient accumulation");
        try {
            long t1 = Profile.start();
            passOn(fn, gin, pending);
            if (!retainGraph) fn.release();
            Profile.stop(Profile.Part.ELEMENTWISE, t1);
        } finally {
            Profile.exit(prevLabel);
        }
    }

    /** fn's input gradients: summed down to each input's shape, into leaves' .grad, or pending for the inner nodes. */
    private static void passOn(Function fn, Tensor[] gin, Map<Var, Tensor> pending) {
        // a Function of one's own gets these wrong first: said here with its name (a null array was a NullPointerException)
        if (gin == null || gin.length != fn.inputs.length) {
            closeFrom(gin, 0);
            throw new IllegalStateException(fn.name() + ".backward returned " + (gin == null ? "null" : gin.length + " gradients") + " for "
                    + fn.inputs.length + " inputs; return one per input, null for an input that needs none");
        }
        for (int i = 0; i < gin.length; i++) {
            Tensor gi = gin[i];
            gin[i] = null;   // owned by passOne from here, which frees it however it ends; the caller frees the rest on a failure
            if (gi != null) passOne(fn, i, gi, pending);
        }
    }

    /** Input i's gradient gi (freed here, or handed to pending) into the leaf's .grad or the pending sum. */
    private static void passOne(Function fn, int i, Tensor gi, Map<Var, Tensor> pending) {
        Var in = fn.inputs[i];
        if (!in.requiresGrad) { gi.close(); return; }
        if (in.value.isClosed()) {
            // a closed intermediate has dropped its node, so it would pass for a leaf; and a closed tensor has no shape
            // to sum the gradient down to
            gi.close();
            throw new IllegalStateException(fn.name() + "'s input " + i + " was closed before backward reached it:"
                    + " its gradient cannot flow on. Close intermediate values after backward (a Scope does)");
        }
        Tensor fitted;
        try {
            fitted = sumToShape(gi, in.value.shape());
        } catch (IllegalStateException e) {
            gi.close();
            throw new IllegalStateException(fn.name() + ".backward, input " + i + ": " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            gi.close();
            throw e;
        }
        if (fitted != gi) gi.close();
        try {
            if (in.gradFn == null) {
                accumulate(in, fitted, true);
            } else {
                Tensor prev = pending.get(in);
                if (prev == null) {
                    pending.put(in, fitted);
                    fitted = null;   // pending's now
                } else if (accumulateInPlace && prev.isSoleOwner() && prev.dtype() == fitted.dtype() && prev.device() == fitted.device()
                        && Arrays.equals(prev.shape(), fitted.shape())) {
                    prev.addInPlace(fitted);   // nothing else sees prev: no new buffer (the same sum, the same bits)
                } else {
                    pending.put(in, prev.add(fitted));
                    prev.close();
                }
            }
        } finally {
            if (fitted != null) fitted.close();
        }
    }

    /** Closes gin's gradients from index from on and empties their slots (so a second call closes nothing twice). */
    private static void closeFrom(Tensor[] gin, int from) {
        if (gin != null)
            for (int i = from; i < gin.length; i++) {
                if (gin[i] != null) gin[i].close();
                gin[i] = null;
            }
    }

    /**
     * Frees the graph that produced this value without a backward (its saved tensors and the resources its nodes
     * retained, such as CUDA max-pool indices, which a Scope does not free), as dropping the last reference to an
     * output does in PyTorch. For a step abandoned between forward and backward; a backward from it afterwards fails,
     * and so does one from another output that shares nodes with it.
     */
    public void freeGraph() {
        ArrayDeque<Var> todo = new ArrayDeque<>();
        Map<Function, Boolean> seen = new IdentityHashMap<>();
        todo.push(this);
        while (!todo.isEmpty()) {
            Function fn = todo.pop().gradFn;
            if (fn == null || fn.isReleased() || seen.put(fn, true) != null) continue;
            Var[] ins = fn.inputs;   // release() drops them
            fn.release();
            if (ins != null) for (Var c : ins) todo.push(c);
        }
    }

    /** Reverse topological order of the non-leaf nodes reachable from root (iterative: deep graphs are fine). */
    private static List<Var> topoOrder(Var root) {
        List<Var> post = new ArrayList<>();
        // seen by node, not by value: a MultiFunction's outputs are one node, placed after the users of all of them
        // (for a one-output function the two are the same thing)
        Map<Function, Boolean> seen = new IdentityHashMap<>();
        ArrayDeque<Object[]> stack = new ArrayDeque<>();
        stack.push(new Object[]{root, 0});
        seen.put(root.gradFn, true);
        while (!stack.isEmpty()) {
            Object[] top = stack.peek();
            Var v = (Var) top[0];
            int i = (Integer) top[1];
            Var[] ins = v.gradFn.inputs;
            if (i < ins.length) {
                top[1] = i + 1;
                Var c = ins[i];
                if (c.gradFn != null && c.requiresGrad && seen.put(c.gradFn, true) == null) {
                    if (c.gradFn.isReleased())
                        throw new IllegalStateException("the graph was already freed by a previous backward(); pass retainGraph=true to the first one");
                    stack.push(new Object[]{c, 0});
                }
            } else {
                stack.pop();
                post.add(v);
            }
        }
        java.util.Collections.reverse(post);
        return post;
    }

    /**
     * Whether a second gradient of an inner node is added into the first when nothing else holds the first
     * (-Dfst4j.autograd.inPlace=false allocates the sum, for A/B runs).
     */
    public static volatile boolean accumulateInPlace = !"false".equals(System.getProperty("fst4j.autograd.inPlace"));

    /** Whether leaf gradients nobody else holds are taken over (-Dfst4j.autograd.adopt=false copies them, for A/B runs). */
    static volatile boolean adoptGradients = !"false".equals(System.getProperty("fst4j.autograd.adopt"));

    /**
     * v.grad += g, the gradient living where v's value lives (its scope, or unowned). The first gradient becomes v.grad:
     * taken over when nothing else holds its memory (adopt, for a leaf whose caller closes g right after; as PyTorch
     * steals a gradient nobody else references: a ResNet-18 step copied 44 MB of parameter gradients otherwise), else
     * copied into a fresh buffer, never an alias, since later accumulation writes into it in place.
     */
    private static void accumulate(Var v, Tensor g, boolean adopt) {
        if (v.grad == null) {
            boolean take = adopt && adoptGradients && g.isSoleOwner() && g.dtype() == v.value.dtype() && g.device() == v.value.device();
            v.grad = Scope.within(v.value.owner(), () -> take ? g.alias()
                    : Tensor.empty(v.value.device(), v.value.dtype(), v.value.shape()).copyFrom(g));
        } else {
            v.grad.addInPlace(g);
        }
    }

    /** Sums a broadcast gradient down to shape (leading axes and size-1 axes). */
    static Tensor sumToShape(Tensor g, int[] shape) {
        int[] gs = g.shape();
        if (Arrays.equals(gs, shape)) return g;
        int lead = gs.length - shape.length;
        if (lead < 0) throw new IllegalStateException("gradient " + Shape.str(gs) + " has lower rank than its input " + Shape.str(shape));
        List<Integer> axes = new ArrayList<>();
        for (int i = 0; i < gs.length; i++)
            if (i < lead || (shape[i - lead] == 1 && gs[i] != 1)) axes.add(i);
            else if (shape[i - lead] != gs[i])
                throw new IllegalStateException("gradient " + Shape.str(gs) + " does not broadcast to input " + Shape.str(shape));
        try (Tensor s = g.sum(true, axes.stream().mapToInt(Integer::intValue).toArray())) {
            return s.reshape(shape);
        }
    }

    // ------------------------------------------------------------------ ops (definitions in Ops)

    public Var add(Var o) { return new Ops.Add().apply(this, o); }
    public Var sub(Var o) { return new Ops.Sub().apply(this, o); }
    public Var mul(Var o) { return new Ops.Mul().apply(this, o); }
    public Var div(Var o) { return new Ops.Div().apply(this, o); }
    public Var add(double s) { return new Ops.AddScalar(s).apply(this); }
    public Var mul(double s) { return new Ops.MulScalar(s).apply(this); }
    public Var neg() { return mul(-1); }
    public Var exp() { return new Ops.Exp().apply(this); }
    public Var log() { return new Ops.Log().apply(this); }
    public Var sqrt() { return new Ops.Sqrt().apply(this); }
    public Var pow(double p) { return new Ops.Pow(p).apply(this); }
    public Var relu() { return new Ops.Relu().apply(this); }
    public Var sigmoid() { return new Ops.Sigmoid().apply(this); }
    public Var tanh() { return new Ops.Tanh().apply(this); }
    /** |x|; the gradient is g sgn(x), 0 at 0 and at NaN (torch's). */
    public Var abs() { return Activations.abs(this); }
    /**
     * torch.clamp: min(max(x, min), max), NaN staying NaN; an infinite bound is none (clamp(0, +inf) is clamp_min). The
     * gradient passes where min <= x <= max, bounds included, and is 0 for NaN. min > max gives max everywhere, as torch's.
     */
    public Var clamp(double min, double max) { return Activations.clamp(this, min, max); }
    /**
     * torch.maximum: the larger of the two (broadcast), NaN if either is. Gradient as torch 1.13's: to the larger, split
     * in half between equal values, to both where either is NaN.
     */
    public Var maximum(Var o) { return new Activations.Extremum(true).apply(this, o); }
    /** torch.minimum: the smaller of the two (broadcast), NaN if either is; the gradient as {@link #maximum}'s, to the smaller. */
    public Var minimum(Var o) { return new Activations.Extremum(false).apply(this, o); }
    public Var matmul(Var o) { return new Ops.MatMul().apply(this, o); }
    public Var sum() { return new Ops.Sum(false).apply(this); }
    public Var sum(boolean keepDim, int... axes) { return new Ops.Sum(keepDim, axes).apply(this); }
    public Var mean() { return new Ops.Mean(false).apply(this); }
    public Var mean(boolean keepDim, int... axes) { return new Ops.Mean(keepDim, axes).apply(this); }
    /** {@link Tensor#max(boolean, int...)}; the gradient is shared equally among tied maxima. */
    public Var max(boolean keepDim, int... axes) { return new Ops.Max(keepDim, axes).apply(this); }
    /**
     * torch.max(x, axis, keepDim): {values, indices}, one node with two outputs. values is differentiable, its gradient
     * going to the selected element only (the first on ties, the first NaN), as torch's; indices (float32 values, as
     * {@link Tensor#argmax}: there is no integer dtype) require no gradient.
     */
    public Var[] maxWithIndices(int axis, boolean keepDim) { return new MaxWithIndices(axis, keepDim).applyMulti(this); }
    /**
     * torch.sort(x, axis, descending, stable=True): {values, indices}, one node with two outputs ({@link Sort}). A stable
     * sort: equal values keep their input order (descending too), NaN counts as larger than every number (last
     * ascending, first descending), -0 equals 0. values' gradient goes back to each value's source position; indices
     * (float32 values, as {@link #maxWithIndices}'s) require no gradient. CPU, and CUDA float32 with the same bits.
     */
    public Var[] sort(int axis, boolean descending) { return Sort.sort(axis, descending).applyMulti(this); }
    /**
     * torch.topk(x, k, axis, largest, sorted): the first k of {@link #sort}(axis, largest), so among ties the earlier
     * input position comes first (torch leaves that order unspecified); 0 <= k <= size (k = 0: an empty axis).
     * sorted = false returns the same, sorted, order (torch's is unspecified there). The gradient reaches the selected
     * positions only. CPU, and CUDA float32 with the same bits.
     */
    public Var[] topk(int k, int axis, boolean largest, boolean sorted) { return Sort.topk(k, axis, largest).applyMulti(this); }
    /** torch.argsort(x, axis, descending) as int[] (as {@link #argmax}), row-major over the input's shape: {@link #sort}'s indices, stable. */
    public int[] argsort(int axis, boolean descending) { return Sort.indices(Sort.sort(axis, descending), value()); }
    /**
     * torch.kthvalue(x, k, axis, keepDim): the k-th smallest (1-based) and its index, the k-th of the ascending stable
     * {@link #sort} (so NaN counts as largest, and among ties torch may name another index). CPU, and CUDA float32 with the same bits.
     */
    public Var[] kthvalue(int k, int axis, boolean keepDim) { return Sort.kthvalue(k, axis, keepDim).applyMulti(this); }
    /**
     * torch.median(x, axis, keepDim): the lower median (the ((n - 1) / 2)-th of the ascending stable sort) and its index,
     * or the first NaN where the line holds one (torch's); the gradient to that element only. CPU, and CUDA float32 with the same bits.
     */
    public Var[] median(int axis, boolean keepDim) { return Sort.median(axis, keepDim).applyMulti(this); }
    /**
     * torch.quantile(x, q, dim, keepdim, interpolation): the q-th quantile along axis (null: over all elements, as torch's
     * dim=None), interpolation "linear" (torch's default), "lower", "higher", "midpoint" or "nearest"; NaN for a line
     * holding NaN. q in [0, 1]. The gradient goes to the selected elements with the interpolation weights ({@link Quantile}).
     * CPU, and CUDA float32 with the same bits.
     */
    public Var quantile(double q, Integer axis, boolean keepDim, String interpolation) {
        return Quantile.quantile(this, new double[]{q}, true, axis, keepDim, interpolation, false);
    }
    /** torch.quantile with a q tensor: the q's become a new leading axis of q.length. */
    public Var quantile(double[] q, Integer axis, boolean keepDim, String interpolation) {
        return Quantile.quantile(this, q, false, axis, keepDim, interpolation, false);
    }
    /** torch.nanquantile: {@link #quantile} of each line's non-NaN values; NaN only for an all-NaN line. */
    public Var nanquantile(double q, Integer axis, boolean keepDim, String interpolation) {
        return Quantile.quantile(this, new double[]{q}, true, axis, keepDim, interpolation, true);
    }
    /** torch.nanquantile with a q tensor: the q's become a new leading axis of q.length. */
    public Var nanquantile(double[] q, Integer axis, boolean keepDim, String interpolation) {
        return Quantile.quantile(this, q, false, axis, keepDim, interpolation, true);
    }
    /**
     * torch.nanmedian(x, axis, keepDim): the lower median of each line's non-NaN values and its index (float32, as
     * {@link #median}'s), the line's first NaN where all are NaN; the gradient to that element only. CPU, and CUDA float32.
     */
    public Var[] nanmedian(int axis, boolean keepDim) { return Quantile.nanmedian(this, axis, keepDim); }
    /** torch.nanmedian(x): {@link #nanmedian(int, boolean)} over all elements, the value only. */
    public Var nanmedian() { return Quantile.nanmedian(this, null, false)[0]; }
    /** Unbiased variance ({@link Tensor#var}). */
    public Var var(boolean keepDim, int... axes) { return new Ops.Variance(keepDim, 1, axes).apply(this); }
    // reshape, permute, transpose, slice and expand give views that share this value's memory (reshape copies a
    // layout it cannot view), as PyTorch's do: an in-place change of the one (an optimizer step) shows in the other
    public Var reshape(int... shape) { return new Ops.Reshape(shape).apply(this); }
    public Var permute(int... axes) { return new Ops.Permute(axes).apply(this); }
    public Var transpose(int a, int b) { return new Ops.Transpose(a, b).apply(this); }
    /** {@link Tensor#slice(int, int, int, int)}: negative start and end count from the end of the axis, as in Python. */
    public Var slice(int axis, int start, int end, int step) { return new Ops.Slice(axis, start, end, step).apply(this); }
    public Var slice(int axis, int start, int end) { return slice(axis, start, end, 1); }
    public Var expand(int... shape) { return new Ops.Expand(shape).apply(this); }
    public static Var where(Tensor cond, Var a, Var b) { return new Ops.Where(cond).apply(a, b); }
    /** {@link Tensor#cat}: the values joined along axis; each input's gradient is its slice of the output's. */
    public static Var cat(int axis, Var... xs) { return new Ops.Cat(axis).apply(xs); }
    /**
     * {@link Tensor#stack}: values of one shape stacked along a new axis (negative: from the end of the result, as
     * torch.stack); each input's gradient is its slice of the output's.
     */
    public static Var stack(int axis, Var... xs) { return new Ops.Stack(axis).apply(xs); }

    // ------------------------------------------------------------------ torch.Tensor's everyday ops (ShapeOps, IndexOps, MathOps)

    /** torch.squeeze: no axes drops every size-1 axis; a named axis is dropped only if its size is 1 (as torch's). */
    public Var squeeze(int... axes) { return ShapeOps.squeeze(this, axes); }
    /** torch.unsqueeze: a size-1 axis inserted at axis, in [-(rank + 1), rank]. */
    public Var unsqueeze(int axis) { return ShapeOps.unsqueeze(this, axis); }
    /** torch.flatten(start, end): the axes start..end (inclusive) merged into one. */
    public Var flatten(int start, int end) { return ShapeOps.flatten(this, start, end); }
    /** torch.flatten(): all axes merged (a scalar gives [1]). */
    public Var flatten() { return ShapeOps.flatten(this, 0, -1); }
    /** torch.unflatten(axis, sizes): axis split into sizes (one may be -1). */
    public Var unflatten(int axis, int... sizes) { return ShapeOps.unflatten(this, axis, sizes); }
    /**
     * torch.split(size, axis): views of size along axis, the last one shorter where size does not divide it. The parts
     * come from one graph node ({@link Split}, torch's SplitBackward): each part's gradient goes to its place in the
     * input's, zero where a part is unused.
     */
    public Var[] split(int size, int axis) { return ShapeOps.split(this, size, axis); }
    /** torch.split(sizes, axis): views of the given sizes, which must add up to the axis's size; one node, as above. */
    public Var[] split(int[] sizes, int axis) { return ShapeOps.split(this, sizes, axis); }
    /** torch.chunk(n, axis): split by ceil(size / n) (so possibly fewer than n pieces, as torch's). */
    public Var[] chunk(int n, int axis) { return ShapeOps.chunk(this, n, axis); }
    /** torch.unbind(axis): the slices along axis without it. */
    public Var[] unbind(int axis) { return ShapeOps.unbind(this, axis); }
    /** torch.flip(axes): reversed along each axis (a copy; CPU, or CUDA float32 with the CPU's bits). */
    public Var flip(int... axes) { return ShapeOps.flip(this, axes); }
    /** torch.roll(shift, axis): shifted along axis, wrapping round (negative shifts backwards). */
    public Var roll(int shift, int axis) { return ShapeOps.roll(this, shift, axis); }
    /** torch.roll(shifts, axes); with no axes, the flattened tensor rolled by shifts[0] and reshaped back. */
    public Var roll(int[] shifts, int[] axes) { return ShapeOps.roll(this, shifts, axes); }
    /** torch.Tensor.repeat(reps): tiled reps[i] times along axis i (leading axes added when reps is longer than the rank). */
    public Var repeat(int... reps) { return ShapeOps.repeat(this, reps); }

    /** torch.index_select(axis, idx): the slices at idx (each in [0, size), repeats allowed; their gradients add). CPU, or CUDA float32. */
    public Var indexSelect(int axis, int[] idx) { return IndexOps.indexSelect(this, axis, idx); }
    /** torch.gather(axis, index): index given flat with its shape (this rank, no larger on the other axes); CPU, or CUDA float32. */
    public Var gather(int axis, int[] index, int[] indexShape) { return IndexOps.gather(this, axis, index, indexShape); }
    /** torch.masked_fill(mask, value): value where mask (a 0/1 tensor, as where's condition) is non-zero; mask broadcasts to this shape. */
    public Var maskedFill(Tensor mask, double value) { return IndexOps.maskedFill(this, mask, value); }
    /** torch.argmax(axis, keepdim) as int[] (row-major over the result's shape): the first largest, NaN counting as largest. */
    public int[] argmax(int axis, boolean keepDim) { return IndexOps.argmax(this, axis, keepDim); }
    /** torch.argmin(axis, keepdim) as int[]: the first smallest, NaN counting as smallest (torch's). */
    public int[] argmin(int axis, boolean keepDim) { return IndexOps.argmin(this, axis, keepDim); }
    /**
     * The minimum over axes (all when none), as torch.amin: the gradient is shared equally among tied minima, as
     * {@link #max}'s (torch.min(dim)'s would go to the one index it returns; torch.min() with no dim shares, as this).
     */
    public Var min(boolean keepDim, int... axes) { return neg().max(keepDim, axes).neg(); }

    public Var sin() { return MathOps.sin(this); }
    public Var cos() { return MathOps.cos(this); }
    /** log(1 + x), accurate near 0. CPU, or CUDA float32. */
    public Var log1p() { return MathOps.log1p(this); }
    /** exp(x) - 1, accurate near 0. CPU, or CUDA float32. */
    public Var expm1() { return MathOps.expm1(this); }
    /** 1 / x (a division, so exact). */
    public Var reciprocal() { return MathOps.reciprocal(this); }
    /** 1 / sqrt(x). */
    public Var rsqrt() { return sqrt().reciprocal(); }
    /** x * x. */
    public Var square() { return mul(this); }
    /** x - s. */
    public Var sub(double s) { return add(-s); }
    /** s - x (torch.rsub). */
    public Var rsub(double s) { return neg().add(s); }
    /** x / s (a division, not a multiplication by 1 / s, as torch's). */
    public Var div(double s) { return div(MathOps.constant(this, s)); }
    /** torch.pow(x, e) with a tensor exponent (broadcast); gradients as torch 1.13's (0 to e where x == 0 and e >= 0). */
    public Var pow(Var e) { return new MathOps.PowTensor().apply(this, e); }
    /**
     * torch.std(axes, correction=c, keepdim): sqrt of the variance with correction c (1: Bessel's, torch's default; 0:
     * the population's), no axes reducing all; at a zero spread the gradient is NaN, as torch's.
     */
    public Var std(int correction, boolean keepDim, int... axes) { return MathOps.std(this, keepDim, correction, axes); }
    /** torch.prod() of all elements; with zeros, torch's gradient rule (see MathOps.Prod). CPU, or CUDA float32. */
    public Var prod() { return new MathOps.Prod(null, false).apply(this); }
    /** torch.prod(axis, keepdim). CPU, or CUDA float32. */
    public Var prod(int axis, boolean keepDim) { return new MathOps.Prod(axis, keepDim).apply(this); }
    /** torch.logsumexp(axes, keepdim), computed stably (max subtracted); no axes reduces all. */
    public Var logsumexp(boolean keepDim, int... axes) { return MathOps.logsumexp(this, keepDim, axes); }
    /** torch.linalg.vector_norm(x, p, axes, keepdim), p > 0 or infinity; the 2-norm's gradient at 0 is 0, as torch's. */
    public Var norm(double p, boolean keepDim, int... axes) { return new MathOps.Norm(p, keepDim, axes).apply(this); }
    /** torch.cumsum(axis). CPU, or CUDA float32. */
    public Var cumsum(int axis) { return new MathOps.Cumsum(axis).apply(this); }

    @Override
    public String toString() {
        return "Var(" + value + (gradFn != null ? ", grad_fn=" + gradFn.name() : requiresGrad ? ", requires_grad" : "") + ")";
    }
}
