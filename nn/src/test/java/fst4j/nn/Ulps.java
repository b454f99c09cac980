package fst4j.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Element-by-element comparisons of float32 results in units in the last place of each expected element, with an
 * absolute term per element where the arithmetic allows one (a cancellation whose operands may differ by an ulp).
 * Never a tolerance scaled by the largest value or the norm of the tensor: with a 1000 among the values that is
 * 1e-3 absolute for every small element, which then goes unchecked.
 */
final class Ulps {
    private Ulps() {}

    /** The spacing of floats at |w| (at least the smallest subnormal). */
    static double ulp(float w) { return Math.ulp(Math.abs(w)); }

    /**
     * NaN exactly where want has NaN, infinities equal, else |got - want| <= ulps * ulp(want) + abs[i] at every element
     * (abs null: none). The failure names the element and the distance in ulps.
     */
    static void assertNear(float[] want, float[] got, double ulps, double[] abs, String what) {
        assertEquals(want.length, got.length, what + ": sizes");
        for (int i = 0; i < want.length; i++) {
            float w = want[i], g = got[i];
            if (Float.isNaN(w) || Float.isNaN(g)) {
                if (!(Float.isNaN(w) && Float.isNaN(g))) fail(what + " at " + i + ": " + g + " vs " + w);
                continue;
            }
            if (Float.isInfinite(w) || Float.isInfinite(g)) {
                if (w != g) fail(what + " at " + i + ": " + g + " vs " + w);
                continue;
            }
            double d = Math.abs((double) g - w), tol = ulps * ulp(w) + (abs == null ? 0 : abs[i]);
            if (!(d <= tol))
                fail(what + " at " + i + ": " + g + " vs " + w + ", " + (float) (d / ulp(w)) + " ulps (allowed " + ulps + " ulps"
                        + (abs == null ? "" : " + " + (float) abs[i]) + ")");
        }
    }

    static void assertNear(float[] want, float[] got, double ulps, String what) { assertNear(want, got, ulps, null, what); }

    /** Each |v[i]| times k: the absolute term of a difference that scales with one operand of that element. */
    static double[] scaled(float[] v, double k) {
        double[] a = new double[v.length];
        for (int i = 0; i < v.length; i++) a[i] = Float.isFinite(v[i]) ? k * Math.abs(v[i]) : 0;
        return a;
    }
}
