package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Erf.erf and Erf.erfc against reference values (glibc's, through Python's math module), both signs, and their limits. */
class ErfTest {
    /** {x, erf(x), erfc(x)}: both expansions (the split is at 2), erfc's tail down to the smallest doubles. */
    private static final double[][] REF = {
            {1e-300, 1.1283791670955126e-300, 1.0},
            {1e-08, 1.1283791670955126e-08, 0.9999999887162083},
            {0.1, 0.1124629160182849, 0.8875370839817152},
            {0.5, 0.5204998778130465, 0.4795001221869535},
            {1.0, 0.8427007929497149, 0.15729920705028513},
            {1.5, 0.9661051464753108, 0.033894853524689274},
            {1.99, 0.995111413199617, 0.004888586800383003},
            {2.0, 0.9953222650189527, 0.004677734981047265},
            {2.5, 0.999593047982555, 0.0004069520174449589},
            {3.0, 0.9999779095030014, 2.2090496998585438e-05},
            {4.5, 0.9999999998033839, 1.9661604415428873e-10},
            {6.0, 1.0, 2.1519736712498916e-17},
            {10.0, 1.0, 2.088487583762545e-45},
            {20.0, 1.0, 5.3958656116079005e-176},
            {26.5, 1.0, 2.2109076642637343e-307},
    };

    @Test
    void matchesReferenceValues() {
        for (double[] r : REF) {
            double x = r[0];
            assertEquals(r[1], Erf.erf(x), 1e-15 * r[1], "erf(" + x + ")");
            assertEquals(-r[1], Erf.erf(-x), 1e-15 * r[1], "erf(" + -x + ")");
            assertEquals(r[2], Erf.erfc(x), 1e-13 * r[2], "erfc(" + x + ")");
            assertEquals(2 - r[2], Erf.erfc(-x), 1e-15 * 2, "erfc(" + -x + ")");
        }
    }

    @Test
    void limitsAndNaN() {
        assertEquals(1.0, Erf.erf(Double.POSITIVE_INFINITY));
        assertEquals(-1.0, Erf.erf(Double.NEGATIVE_INFINITY));
        assertEquals(0.0, Erf.erfc(Double.POSITIVE_INFINITY));
        assertEquals(2.0, Erf.erfc(Double.NEGATIVE_INFINITY));
        assertEquals(0.0, Erf.erfc(27.5));
        assertEquals(0.0, Erf.erf(0.0));
        assertTrue(Double.isNaN(Erf.erf(Double.NaN)) && Double.isNaN(Erf.erfc(Double.NaN)));
    }
}
