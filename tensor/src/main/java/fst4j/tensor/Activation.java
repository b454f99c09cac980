package fst4j.tensor;

/**
 * The activations beyond ReLU, sigmoid and tanh, each forward beside its backward: GELU (exact and tanh form), SiLU,
 * Mish, leaky ReLU, ELU, softplus, clamp / hardtanh, and the gradient pieces of abs, maximum and minimum. Each is torch
 * 1.13's formula, operation for operation (so NaN and the infinities come out as there: gelu(-inf) is NaN because
 * -inf * 0 is), run in double as {@link Elementwise}'s ops are: on float32 CPU tensors one C pass each way
 * ({@link NativeActivations}: fst_act_f32 / fst_act_bwd_f32, the CUDA kernels' formulas with libm's erfc), a Java
 * function on float64 ones (and where the shim is missing; stored in the input's dtype), the same formula in one CUDA
 * kernel each way on CUDA tensors (float32; fst_cuda_act / fst_cuda_act_bwd). The backward functions take the incoming gradient g and the forward's input x, broadcast.
 * <p>
 * Computing in double is where float32 results can differ from torch's, which computes in float: torch's float
 * exp overflows at 88.7, so softplus with a threshold above that gives inf (and a NaN gradient) where this gives the
 * finite value, and silu / mish / elu of inputs below about -88 give torch's 0 where this gives a subnormal float.
 */
public final class Activation {
    private Activation() {}

    private static final double SQRT1_2 = 0.7071067811865476;       // Math.sqrt(0.5)
    private static final double INV_SQRT_2PI = 0.3989422804014327;  // 1 / sqrt(2 pi): the normal density at 0
    private static final double GELU_BETA = 0.7978845608028654;     // sqrt(2 / pi), torch's kBeta
    private static final double GELU_KAPPA = 0.044715;

    private static boolean cuda(Tensor a) { return a.device() != Device.CPU; }
    private static boolean cuda(Tensor a, Tensor b) { return a.device() != Device.CPU || b.device() != Device.CPU; }

    // ---- GELU: x Phi(x), Phi the standard normal CDF, computed as erfc(-x / sqrt 2) / 2 (no cancellation for x < 0) ----

    public static Tensor gelu(Tensor x) {
        if (cuda(x)) return CudaActivations.forward("gelu", CudaActivations.GELU, 0, 0, x);
        Tensor c = NativeActivations.forward(CudaActivations.GELU, 0, 0, x);
        if (c != null) return c;
        return Elementwise.map(x, v -> v * 0.5 * Erf.erfc(-v * SQRT1_2));
    }

    /** g (Phi(x) + x phi(x)), phi the normal density. */
    public static Tensor geluBackward(Tensor g, Tensor x) {
        if (cuda(g, x)) return CudaActivations.backward("geluBackward", CudaActivations.GELU_BWD, 0, 0, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.GELU_BWD, 0, 0, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> {
            double cdf = 0.5 * Erf.erfc(-v * SQRT1_2), pdf = INV_SQRT_2PI * Math.exp(-0.5 * v * v);
            return gv * (cdf + v * pdf);
        });
    }

    /** torch's approximate='tanh': 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
    public static Tensor geluTanh(Tensor x) {
        if (cuda(x)) return CudaActivations.forward("geluTanh", CudaActivations.GELU_TANH, 0, 0, x);
        Tensor c = NativeActivations.forward(CudaActivations.GELU_TANH, 0, 0, x);
        if (c != null) return c;
        return Elementwise.map(x, v -> {
            double cube = v * v * v, inner = GELU_BETA * (v + GELU_KAPPA * cube);
            return 0.5 * v * (1 + Math.tanh(inner));
        });
    }

    /** torch's GeluBackward for approximate='tanh', term for term. */
    public static Tensor geluTanhBackward(Tensor g, Tensor x) {
        if (cuda(g, x)) return CudaActivations.backward("geluTanhBackward", CudaActivations.GELU_TANH_BWD, 0, 0, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.GELU_TANH_BWD, 0, 0, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> {
            double sq = v * v, cube = sq * v, inner = GELU_BETA * (v + GELU_KAPPA * cube), t = Math.tanh(inner);
            double left = 0.5 * v, right = 1 + t, dleft = 0.5 * right, dtanh = 1 - t * t;
            double dinner = GELU_BETA * (1 + 3 * GELU_KAPPA * sq), dright = left * dtanh * dinner;
            return gv * (dleft + dright);
        });
    }

    // ---- SiLU (swish) and Mish ----

    /** x sigmoid(x) as x / (1 + exp(-x)) (torch's: NaN at -inf). */
    public static Tensor silu(Tensor x) {
        if (cuda(x)) return CudaActivations.forward("silu", CudaActivations.SILU, 0, 0, x);
        Tensor c = NativeActivations.forward(CudaActivations.SILU, 0, 0, x);
        if (c != null) return c;
        return Elementwise.map(x, v -> v / (1 + Math.exp(-v)));
    }

    /** g s (1 + x (1 - s)), s = sigmoid(x). */
    public static Tensor siluBackward(Tensor g, Tensor x) {
        if (cuda(g, x)) return CudaActivations.backward("siluBackward", CudaActivations.SILU_BWD, 0, 0, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.SILU_BWD, 0, 0, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> {
            double s = 1 / (1 + Math.exp(-v));
            return gv * s * (1 + v * (1 - s));
        });
    }

    /** x tanh(softplus(x)), softplus without a threshold (torch's). */
    public static Tensor mish(Tensor x) {
        if (cuda(x)) return CudaActivations.forward("mish", CudaActivations.MISH, 0, 0, x);
        Tensor c = NativeActivations.forward(CudaActivations.MISH, 0, 0, x);
        if (c != null) return c;
        return Elementwise.map(x, v -> v * Math.tanh(Math.log1p(Math.exp(v))));
    }

    /** g (t + x s (1 - t^2)), t = tanh(softplus(x)), s = sigmoid(x). */
    public static Tensor mishBackward(Tensor g, Tensor x) {
        if (cuda(g, x)) return CudaActivations.backward("mishBackward", CudaActivations.MISH_BWD, 0, 0, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.MISH_BWD, 0, 0, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> {
            double s = 1 / (1 + Math.exp(-v)), t = Math.tanh(Math.log1p(Math.exp(v)));
            return gv * (t + v * s * (1 - t * t));
        });
    }

    // ---- leaky ReLU, ELU, softplus ----

    /** x > 0 ? x : x slope (NaN stays NaN). */
    public static Tensor leakyRelu(Tensor x, double slope) {
        checkFinite("leakyRelu", "negative slope", slope);
        if (cuda(x)) return CudaActivations.forward("leakyRelu", CudaActivations.LEAKY_RELU, slope, 0, x);
        Tensor c = NativeActivations.forward(CudaActivations.LEAKY_RELU, slope, 0, x);
        if (c != null) return c;
        return Elementwise.map(x, v -> v > 0 ? v : v * slope);
    }

    /** x > 0 ? g : g slope (the slope at 0 and for NaN, as torch's). */
    public static Tensor leakyReluBackward(Tensor g, Tensor x, double slope) {
        checkFinite("leakyReluBackward", "negative slope", slope);
        if (cuda(g, x)) return CudaActivations.backward("leakyReluBackward", CudaActivations.LEAKY_RELU_BWD, slope, 0, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.LEAKY_RELU_BWD, slope, 0, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> v > 0 ? gv : gv * slope);
    }

    /** x <= 0 ? alpha (exp(x) - 1) : x, with expm1 (NaN stays NaN). */
    public static Tensor elu(Tensor x, double alpha) {
        checkFinite("elu", "alpha", alpha);
        if (cuda(x)) return CudaActivations.forward("elu", CudaActivations.ELU, alpha, 0, x);
        Tensor c = NativeActivations.forward(CudaActivations.ELU, alpha, 0, x);
        if (c != null) return c;
        return Elementwise.map(x, v -> v <= 0 ? Math.expm1(v) * alpha : v);
    }

    /** x <= 0 ? g alpha exp(x) : g (from the input, as torch's elu_backward with is_result false). */
    public static Tensor eluBackward(Tensor g, Tensor x, double alpha) {
        checkFinite("eluBackward", "alpha", alpha);
        if (cuda(g, x)) return CudaActivations.backward("eluBackward", CudaActivations.ELU_BWD, alpha, 0, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.ELU_BWD, alpha, 0, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> v <= 0 ? gv * alpha * Math.exp(v) : gv);
    }

    /** x beta > threshold ? x : log1p(exp(x beta)) / beta (torch's: linear above the threshold, for stability). */
    public static Tensor softplus(Tensor x, double beta, double threshold) {
        checkSoftplus("softplus", beta, threshold);
        if (cuda(x)) return CudaActivations.forward("softplus", CudaActivations.SOFTPLUS, beta, threshold, x);
        Tensor c = NativeActivations.forward(CudaActivations.SOFTPLUS, beta, threshold, x);
        if (c != null) return c;
        return Elementwise.map(x, v -> v * beta > threshold ? v : Math.log1p(Math.exp(v * beta)) / beta);
    }

    /** x beta > threshold ? g : g z / (z + 1), z = exp(x beta). */
    public static Tensor softplusBackward(Tensor g, Tensor x, double beta, double threshold) {
        checkSoftplus("softplusBackward", beta, threshold);
        if (cuda(g, x)) return CudaActivations.backward("softplusBackward", CudaActivations.SOFTPLUS_BWD, beta, threshold, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.SOFTPLUS_BWD, beta, threshold, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> {
            double z = Math.exp(v * beta);
            return v * beta > threshold ? gv : gv * z / (z + 1);
        });
    }

    // ---- clamp and hardtanh: one forward, two gradients (they differ at the bounds and at NaN, as in torch) ----

    /**
     * min where x < min, then max where that is > max, else x itself, NaN staying NaN (torch.clamp; min > max gives max
     * everywhere, as there). Infinite bounds: none. A tie keeps x, as torch's does: clamp(-0.0, 0, 1) is -0.0 and
     * clamp(0.0, -1, -0.0) is 0.0 (Math.max / Math.min would turn either zero into the bound's).
     */
    public static Tensor clamp(Tensor x, double min, double max) {
        checkBounds("clamp", min, max, false);
        if (cuda(x)) return CudaActivations.forward("clamp", CudaActivations.CLAMP, min, max, x);
        Tensor c = NativeActivations.forward(CudaActivations.CLAMP, min, max, x);
        if (c != null) return c;
        return Elementwise.map(x, v -> {
            double t = v < min ? min : v;   // a NaN stays: both comparisons are false
            return t > max ? max : t;
        });
    }

    /** clamp's gradient: g where min <= x <= max (bounds included), else 0; 0 for a NaN x. */
    public static Tensor clampBackward(Tensor g, Tensor x, double min, double max) {
        checkBounds("clampBackward", min, max, false);
        if (cuda(g, x)) return CudaActivations.backward("clampBackward", CudaActivations.CLAMP_BWD, min, max, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.CLAMP_BWD, min, max, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> v >= min && v <= max ? gv : 0);
    }

    /** F.hardtanh: clamp's forward, with min <= max required. */
    public static Tensor hardtanh(Tensor x, double min, double max) {
        checkBounds("hardtanh", min, max, true);
        return clamp(x, min, max);
    }

    /** hardtanh's gradient: 0 where x <= min or x >= max (bounds excluded), else g; g for a NaN x (torch's hardtanh_backward). */
    public static Tensor hardtanhBackward(Tensor g, Tensor x, double min, double max) {
        checkBounds("hardtanhBackward", min, max, true);
        if (cuda(g, x)) return CudaActivations.backward("hardtanhBackward", CudaActivations.HARDTANH_BWD, min, max, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.HARDTANH_BWD, min, max, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> v <= min || v >= max ? 0 : gv);
    }

    // ---- the gradients of abs, maximum and minimum ----

    /** abs's gradient g sgn(x), sgn(0) = sgn(NaN) = 0 (torch's sgn). */
    public static Tensor absBackward(Tensor g, Tensor x) {
        if (cuda(g, x)) return CudaActivations.backward("absBackward", CudaActivations.ABS_BWD, 0, 0, g, x);
        Tensor c = NativeActivations.backward(CudaActivations.ABS_BWD, 0, 0, g, x);
        if (c != null) return c;
        return Elementwise.zip(g, x, (gv, v) -> gv * (v > 0 ? 1 : v < 0 ? -1 : 0));
    }

    /**
     * The gradient that a gets from maximum(a, b) (b's is maximumBackward(g, b, a)): g / 2 where a == b, 0 where a < b, g
     * otherwise (NaN in either: g to both), as torch 1.13's derivative of maximum (the 0 is exact: an infinite g gives 0).
     */
    public static Tensor maximumBackward(Tensor g, Tensor a, Tensor b) { return shared(g, a, b, true); }

    /** The gradient that a gets from minimum(a, b): g / 2 where a == b, 0 where a > b, g otherwise. */
    public static Tensor minimumBackward(Tensor g, Tensor a, Tensor b) { return shared(g, a, b, false); }

    private static Tensor shared(Tensor g, Tensor a, Tensor b, boolean max) {
        String op = max ? "maximumBackward" : "minimumBackward";
        int code = max ? CudaActivations.MAX_SHARE : CudaActivations.MIN_SHARE;
        Tensor c0 = cuda(a, b) ? CudaActivations.backward(op, code, 0, 0, a, b) : NativeActivations.backward(code, 0, 0, a, b);
        Tensor share = c0 != null ? c0 : max ? Elementwise.zip(a, b, (u, v) -> u == v ? 0.5 : u < v ? 0 : 1)
                : Elementwise.zip(a, b, (u, v) -> u == v ? 0.5 : u > v ? 0 : 1);
        try (share) {
            if (cuda(g, share)) return CudaActivations.backward(op, CudaActivations.MUL_SHARE, 0, 0, g, share);
            Tensor c = NativeActivations.backward(CudaActivations.MUL_SHARE, 0, 0, g, share);
            if (c != null) return c;
            return Elementwise.zip(g, share, (gv, s) -> s == 0 ? 0 : gv * s);
        }
    }

    // ---- parameter checks (the CUDA entry points refuse the same) ----

    private static void checkFinite(String op, String what, double v) {
        if (!Double.isFinite(v)) throw new IllegalArgumentException(op + ": " + what + " must be finite, got " + v);
    }

    private static void checkSoftplus(String op, double beta, double threshold) {
        if (!Double.isFinite(beta) || beta == 0) throw new IllegalArgumentException(op + ": beta must be finite and non-zero, got " + beta);
        if (Double.isNaN(threshold)) throw new IllegalArgumentException(op + ": threshold must not be NaN");
    }

    private static void checkBounds(String op, double min, double max, boolean ordered) {
        if (Double.isNaN(min) || Double.isNaN(max)) throw new IllegalArgumentException(op + ": bounds must not be NaN, got [" + min + ", " + max + "]");
        if (ordered && min > max) throw new IllegalArgumentException(op + ": min must be <= max, got min " + min + " > max " + max);
    }
}
