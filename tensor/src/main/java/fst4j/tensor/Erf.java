package fst4j.tensor;

/**
 * The error function and its complement in double, which java.lang.Math lacks (GELU's exact form needs them): erf
 * within 1e-15 and erfc within 1e-13 of the true value, relatively (ErfTest checks reference values). Accurate enough
 * that float64 finite differences of GELU see its analytic derivative, and that a float32 result, rounded once, is
 * nearly always the float that the C library's erfc gives (the CUDA kernels use that one).
 * <p>
 * Two expansions, each where it converges without cancellation: below 2, erf's series of positive terms
 * erf(x) = 2/sqrt(pi) exp(-x^2) sum_n (2x^2)^n x / (1 * 3 * ... * (2n+1)) (erfc = 1 - erf there loses at most the
 * factor 1 / erfc(2) = 214 in relative accuracy); from 2 on, erfc's continued fraction
 * erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...)))) by Lentz's method, which keeps the
 * tiny tail that 1 - erf would lose. Each takes at most about 60 steps (fewer far from 2).
 */
public final class Erf {
    private Erf() {}

    private static final double TWO_OVER_SQRT_PI = 1.1283791670955126, INV_SQRT_PI = 0.5641895835477563;
    /** Below it the series, from it on the continued fraction. */
    private static final double SPLIT = 2.0;

    /** erf(x); NaN for NaN, +-1 for +-infinity. */
    public static double erf(double x) {
        if (Double.isNaN(x)) return x;
        if (x < 0) return -erf(-x);
        return x < SPLIT ? series(x) : 1 - fraction(x);
    }

    /** erfc(x) = 1 - erf(x), without the cancellation for large x; NaN for NaN, 0 at +infinity, 2 at -infinity. */
    public static double erfc(double x) {
        if (Double.isNaN(x)) return x;
        if (x < 0) return 2 - erfc(-x);
        return x < SPLIT ? 1 - series(x) : fraction(x);
    }

    /** erf(x) for 0 <= x < SPLIT: at most about 40 terms, all positive. */
    private static double series(double x) {
        double x2 = x * x, term = x, sum = x;
        for (int n = 1; n < 200; n++) {
            term *= 2 * x2 / (2 * n + 1);
            sum += term;
            if (term <= sum * 1e-17) break;
        }
        return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
    }

    /** erfc(x) for x >= SPLIT (infinity included: 0). */
    private static double fraction(double x) {
        if (x > 27) return 0;   // exp(-x^2) < 1e-316: below the smallest double once divided by x sqrt(pi)
        // modified Lentz for b0 + a1 / (b1 + a2 / (b2 + ...)) with b = x and a_k = k / 2
        final double tiny = 1e-300;
        double f = x, c = x, d = 0;
        for (int k = 1; k < 500; k++) {
            double a = 0.5 * k;
            d = x + a * d;
            if (d == 0) d = tiny;
            c = x + a / c;
            if (c == 0) c = tiny;
            d = 1 / d;
            double delta = c * d;
            f *= delta;
            if (Math.abs(delta - 1) < 1e-16) break;
        }
        return INV_SQRT_PI * expMinusSquare(x) / f;
    }

    /**
     * exp(-x^2) without the rounding of x^2 (relative error ~ x^2 ulp, 6e-14 at x = 24.5): x = hi + lo with hi a float,
     * whose square is exact in double, and x^2 = hi^2 + lo (x + hi).
     */
    private static double expMinusSquare(double x) {
        double hi = (float) x, lo = x - hi;
        return Math.exp(-hi * hi) * Math.exp(-lo * (x + hi));
    }
}
