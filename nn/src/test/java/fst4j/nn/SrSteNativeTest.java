package fst4j.nn;

import fst4j.shim.Native;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** The native SR-STE decay equals the Java loop (and so S(W) of Sparsifier.Magnitude24), ties and NaN included. */
class SrSteNativeTest {
    @Test
    void nativeEqualsJava() {
        int[][] shapes = {{1, 1}, {3, 7}, {17, 36}, {64, 577}, {5, 4}};
        try (Scope s = Scope.open()) {
            Rng r = new Rng(5);
            for (int[] sh : shapes) {
                Tensor w = r.normal(0, 1, sh);
                int n = (int) w.numel();
                for (int i = 0; i < n; i += 7) w.setFlat(i, w.getFlat(Math.max(0, i - 1)));   // ties
                if (n > 10) { w.setFlat(3, Float.NaN); w.setFlat(9, -0.0); w.setFlat(10, 0.0); }
                Tensor g1 = r.normal(0, 1, sh), g2 = g1.copy();
                SrSte.decayPruned(w.data(), g1.data(), sh[0], sh[1], 0.5f);
                Native.srsteDecay(w.data(), g2.data(), sh[0], sh[1], 0.5f, 2);
                assertArrayEquals(g1.toFloatArray(), g2.toFloatArray(), java.util.Arrays.toString(sh));
            }
        }
    }
}
