package fst4j.sparse;

import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class RestorationTest {
    /** The definition: out[j] = dy[j] + coeff * dy[j + shift] inside each segment (wrapping or not). */
    static float[] definition(float[] dy, int seg, float coeff, int shift, boolean circular) {
        float[] out = new float[dy.length];
        for (int s = 0; s < dy.length; s += seg)
            for (int j = 0; j < seg; j++) {
                int nb = j + shift;
                float add = 0;
                if (nb >= 0 && nb < seg) add = coeff * dy[s + nb];
                else if (circular) add = coeff * dy[s + Math.floorMod(nb, seg)];
                out[s + j] = dy[s + j] + add;
            }
        return out;
    }

    /** {@link #definition} in double: out[j] = dy[j] + coeff * dy[j + shift] inside each segment of seg (wrapping or not). */
    static double[] definitionF64(double[] dy, int seg, float coeff, int shift, boolean circular) {
        double[] out = new double[dy.length];
        for (int b = 0; b < dy.length; b += seg)
            for (int j = 0; j < seg; j++) {
                int nb = j + shift;
                boolean in = nb >= 0 && nb < seg;
                out[b + j] = in ? dy[b + j] + (double) coeff * dy[b + nb] : circular ? dy[b + j] + (double) coeff * dy[b + Math.floorMod(nb, seg)] : dy[b + j];
            }
        return out;
    }

    /** float64 (a layer run in float64): the definition in double, bit for bit; a float64 CUDA tensor or another dtype is refused by name. */
    @Property(tries = 60)
    void shiftAddOfFloat64IsTheDefinitionInDouble(@ForAll @IntRange(min = 1, max = 40) int segments, @ForAll @IntRange(min = 1, max = 9) int seg,
                                                  @ForAll boolean plus, @ForAll boolean circular, @ForAll long seed) {
        int shift = plus ? 1 : -1;
        float coeff = (float) ((seed % 11) / 7.0);
        try (Scope s = Scope.open()) {
            java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
            double[] v = new double[segments * seg];
            for (int i = 0; i < v.length; i++) v[i] = r.nextGaussian();
            double[] expect = definitionF64(v, seg, coeff, shift, circular);
            Tensor dy = Tensor.of(v, segments, seg);
            Tensor out = Restoration.shiftAdd(dy, seg, coeff, shift, circular);
            assertEquals(fst4j.tensor.DType.F64, out.dtype());
            assertArrayEquals(expect, out.toDoubleArray());
            // a strided view: read in its logical order
            Tensor t = Tensor.of(v, seg, segments).t();
            assertArrayEquals(definitionF64(t.contiguous().toDoubleArray(), seg, coeff, shift, circular), Restoration.shiftAdd(t, seg, coeff, shift, circular).toDoubleArray());
        }
    }

    @Property(tries = 100)
    void shiftAddMatchesDefinition(@ForAll @IntRange(min = 1, max = 3) int n, @ForAll @IntRange(min = 1, max = 4) int c,
                                   @ForAll @IntRange(min = 1, max = 7) int h, @ForAll @IntRange(min = 1, max = 7) int w,
                                   @ForAll boolean plus, @ForAll boolean circular, @ForAll long seed) {
        int shift = plus ? 1 : -1;
        float coeff = (float) ((seed % 7) / 3.0);
        try (Scope s = Scope.open()) {
            float[] v = TestData.values(n * c * h * w, seed);
            Tensor dy = Tensor.of(v, n, c, h, w);
            float[] expect = definition(v, h * w, coeff, shift, circular);
            assertArrayEquals(expect, Restoration.shiftAddNCHW(dy, coeff, shift, circular).toFloatArray(), 1e-6f);
            // the [C, N*H*W] layout: same segments of H*W
            Tensor cm = dy.permute(1, 0, 2, 3).contiguous().reshape(c, n * h * w);
            float[] cv = cm.toFloatArray();
            assertArrayEquals(definition(cv, h * w, coeff, shift, circular),
                    Restoration.shiftAdd(cm, h * w, coeff, shift, circular).toFloatArray(), 1e-6f);
            // a non-contiguous input is copied first
            Tensor perm = cm.t();
            assertArrayEquals(definition(perm.contiguous().toFloatArray(), c, coeff, shift, circular),
                    Restoration.shiftAdd(perm, c, coeff, shift, circular).toFloatArray(), 1e-6f);
        }
    }

    @Test
    void paperAndAuthorsVariants() {
        try (Scope s = Scope.open()) {
            Tensor dy = Tensor.of(new float[]{1, 2, 3, 4, 10, 20, 30, 40}, 2, 1, 2, 2);
            assertArrayEquals(new float[]{3, 5, 7, 4, 30, 50, 70, 40}, Restoration.paper(dy).toFloatArray());
            // roll(dy, 1) per image segment: [4, 1, 2, 3]
            assertArrayEquals(new float[]{1 + 0.03f * 4, 2 + 0.03f * 1, 3 + 0.03f * 2, 4 + 0.03f * 3,
                    10 + 0.03f * 40, 20 + 0.03f * 10, 30 + 0.03f * 20, 40 + 0.03f * 30}, Restoration.authors(dy).toFloatArray(), 1e-6f);
            assertThrows(IllegalArgumentException.class, () -> Restoration.shiftAdd(dy, 3, 1f, 1, false));
            assertThrows(IllegalArgumentException.class, () -> Restoration.shiftAdd(dy, 4, 1f, 2, false));
        }
    }
}
