package fst4j.autograd;

import fst4j.tensor.Activation;
import fst4j.tensor.Elementwise;
import fst4j.tensor.Tensor;

/**
 * The differentiable activations beyond relu / sigmoid / tanh (NN.gelu, silu, mish, leakyRelu, elu, softplus, hardtanh)
 * and Var's abs, clamp, maximum and minimum: each forward beside its backward, both from fst4j.tensor.Activation (the
 * CPU in double, CUDA in one kernel each way). Every backward reads the forward's input, saved, as torch's do.
 */
final class Activations {
    private Activations() {}

    /** An activation of one input x with parameters s0, s1: forward f(x), backward b(g, x). */
    interface Fwd { Tensor apply(Tensor x); }
    interface Bwd { Tensor apply(Tensor g, Tensor x); }

    static final class Unary extends Function {
        private final String name;
        private final Fwd f;
        private final Bwd b;
        private Tensor x;
        Unary(String name, Fwd f, Bwd b) { this.name = name; this.f = f; this.b = b; }
        @Override public String name() { return name; }
        protected Tensor forward(Tensor... in) {
            Tensor out = f.apply(in[0]);   // first: a refused call (a bad parameter, a device) saves nothing
            x = save(in[0]);
            return out;
        }
        protected Tensor[] backward(Tensor g) { return grads(b.apply(g, x)); }
    }

    static Var gelu(Var x) { return new Unary("Gelu", Activation::gelu, Activation::geluBackward).apply(x); }
    static Var geluTanh(Var x) { return new Unary("GeluTanh", Activation::geluTanh, Activation::geluTanhBackward).apply(x); }
    static Var silu(Var x) { return new Unary("Silu", Activation::silu, Activation::siluBackward).apply(x); }
    static Var mish(Var x) { return new Unary("Mish", Activation::mish, Activation::mishBackward).apply(x); }
    static Var leakyRelu(Var x, double slope) {
        return new Unary("LeakyRelu", t -> Activation.leakyRelu(t, slope), (g, t) -> Activation.leakyReluBackward(g, t, slope)).apply(x);
    }
    static Var elu(Var x, double alpha) {
        return new Unary("Elu", t -> Activation.elu(t, alpha), (g, t) -> Activation.eluBackward(g, t, alpha)).apply(x);
    }
    static Var softplus(Var x, double beta, double threshold) {
        return new Unary("Softplus", t -> Activation.softplus(t, beta, threshold), (g, t) -> Activation.softplusBackward(g, t, beta, threshold)).apply(x);
    }
    static Var hardtanh(Var x, double min, double max) {
        return new Unary("Hardtanh", t -> Activation.hardtanh(t, min, max), (g, t) -> Activation.hardtanhBackward(g, t, min, max)).apply(x);
    }
    static Var clamp(Var x, double min, double max) {
        return new Unary("Clamp", t -> Activation.clamp(t, min, max), (g, t) -> Activation.clampBackward(g, t, min, max)).apply(x);
    }
    static Var abs(Var x) { return new Unary("Abs", Elementwise::abs, Activation::absBackward).apply(x); }

    /** maximum / minimum of two Vars, broadcast; ties share the gradient equally, as torch 1.13's (Activation.maximumBackward). */
    static final class Extremum extends Function {
        private final boolean max;
        private Tensor a, b;
        Extremum(boolean max) { this.max = max; }
        @Override public String name() { return max ? "Maximum" : "Minimum"; }
        protected Tensor forward(Tensor... in) {
            Tensor out = max ? Elementwise.maximum(in[0], in[1]) : Elementwise.minimum(in[0], in[1]);
            a = save(in[0]); b = save(in[1]);
            return out;
        }
        protected Tensor[] backward(Tensor g) {
            Tensor ga = null, gb = null;
            if (needsGrad(0)) ga = max ? Activation.maximumBackward(g, a, b) : Activation.minimumBackward(g, a, b);
            if (needsGrad(1)) {
                try {
                    gb = max ? Activation.maximumBackward(g, b, a) : Activation.minimumBackward(g, b, a);
                } catch (RuntimeException e) {
                    if (ga != null) ga.close();
                    throw e;
                }
            }
            return grads(ga, gb);
        }
    }
}
